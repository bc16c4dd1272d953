"""A playlist in a real Chromium against a real web worker: its dashboards in turn in
kiosk mode, paused and stepped with the keyboard (also while a dashboard's frame has
the focus), the state announced; and a shared playlist for a viewer without an
account, rotating through the share links the share made.

Screenshots go to test-artifacts/screenshots/.
"""

import pytest
from django.urls import NoReverseMatch, reverse

from boards import playlists, store
from boards.tests.documents import board
from tests.e2e.conftest import ARTIFACTS
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
INTERVAL = playlists.MIN_INTERVAL
STATUS = "#playlist-status"
CURRENT = "iframe.playlist-frame.is-current"
PANEL = {
    "id": 1,
    "title": "Orders",
    "type": "stat",
    "series": ["orders"],
    "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
}


def _has_share_page():
    try:
        reverse("share", args=["x" * 43])
    except NoReverseMatch:
        return False
    return True


# The share page itself (/s/TOKEN/) comes with its own change; until it is there, what a
# shared playlist's frames show cannot be checked, only what they load.
SHARE_PAGE = _has_share_page()


@pytest.fixture
def base_url(daphne_workers):
    (url,) = daphne_workers(1)
    return url


@pytest.fixture
def wall(alice):
    author = store.Author(name="alice", owner=alice)
    for uid, title in (("first", "First"), ("second", "Second")):
        store.save(board(uid, title=title, variables=[], panels=[PANEL]), author=author)
    document = {
        "uid": "wall",
        "title": "Wall",
        "interval": INTERVAL,
        "entries": [{"dashboard": "first"}, {"dashboard": "second"}],
    }
    return playlists.save(document, author=playlists.Author(name="alice", owner=alice))


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"playlist-{name}.png"))


def wait_status(page, text, timeout=INTERVAL * 4000):
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent === text",
        arg=[STATUS, text],
        timeout=timeout,
    )


def current_src(page):
    return page.get_attribute(CURRENT, "src")


def test_a_playlist_rotates_and_the_keyboard_pauses_and_steps_it(chromium, open_page, base_url, alice, wall):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    name, value = next(iter(session_cookie(alice).items()))
    context.add_cookies([{"name": name, "value": value, "url": base_url}])
    page = open_page("alice-playlist", context=context)
    page.goto(base_url + "/playlists/wall/")
    assert page.get_attribute(STATUS, "aria-live") == "polite"

    wait_status(page, "Showing First (1 of 2)")
    assert current_src(page) == "/d/first/?kiosk=1"
    frame = page.frame_locator(CURRENT)
    assert frame.locator("#board-title").inner_text() == "First"
    screenshot(page, "first")
    # On its own, after the interval: the next one, then round again.
    wait_status(page, "Showing Second (2 of 2)")
    assert current_src(page) == "/d/second/?kiosk=1"
    assert page.frame_locator(CURRENT).locator("#board-title").inner_text() == "Second"
    # Only one dashboard page is open at a time: the other frame was emptied.
    assert (
        page.evaluate("[...document.querySelectorAll('iframe')].filter(f => f.src.includes('/d/')).length")
        == 1
    )

    page.keyboard.press("Space")
    wait_status(page, "Paused: Second (2 of 2)")
    screenshot(page, "paused")
    # Paused: nothing moves for longer than the interval (a wait for something that
    # must not happen has to last that long).
    page.wait_for_timeout(INTERVAL * 1000 + 2000)
    assert page.locator(STATUS).inner_text() == "Paused: Second (2 of 2)"
    assert current_src(page) == "/d/second/?kiosk=1"

    # The arrows step while paused, and it stays paused.
    page.keyboard.press("ArrowLeft")
    wait_status(page, "Paused: First (1 of 2)")
    assert current_src(page) == "/d/first/?kiosk=1"
    # Keys reach the playlist while the dashboard's own frame has the focus, too.
    page.frame_locator(CURRENT).locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowRight")
    wait_status(page, "Paused: Second (2 of 2)")
    page.frame_locator(CURRENT).locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Space")
    wait_status(page, "Showing Second (2 of 2)")
    wait_status(page, "Showing First (1 of 2)")
    assert not [line for line in page.console_lines if "pageerror" in line or "Content Security" in line]


def test_a_shared_playlist_rotates_through_its_share_links_for_a_viewer_without_account(
    chromium, open_page, base_url, alice, wall
):
    shared, token = playlists.share(wall, user=alice, may_share=lambda board: board.can_edit(alice))
    context = chromium.new_context(viewport={"width": 1280, "height": 800})  # no cookie at all
    page = open_page("anonymous-playlist", context=context)
    links = [playlists.entry_token(token, uid) for uid in ("first", "second")]
    wanted = [f"{base_url}/s/{link}/?kiosk=1" for link in links]
    # The frames load the share's links in turn, each as a viewer without a session.
    with page.expect_request(wanted[0]) as first:
        page.goto(f"{base_url}/playlists/wall/?share={token}")
    with page.expect_request(wanted[1], timeout=INTERVAL * 4000) as second:
        pass
    for request in (first.value, second.value):
        assert request.frame != page.main_frame
        assert "cookie" not in request.all_headers()
    # Every link reads its own dashboard's series only, anonymously.
    for link in links:
        history = page.evaluate(
            "(t) => fetch('/api/metrics/history/?minutes=5&share=' + t).then(r => r.status)", link
        )
        assert history == 200
        outside = page.evaluate(
            "(t) => fetch('/api/metrics/history/?minutes=5&match=secret&share=' + t).then(r => r.status)",
            link,
        )
        assert outside == 403
    if SHARE_PAGE:
        wait_status(page, "Showing First (1 of 2)")
        wait_status(page, "Showing Second (2 of 2)")
        assert page.frame_locator(CURRENT).locator("#board-title").inner_text() == "Second"
        page.keyboard.press("Space")
        wait_status(page, "Paused: Second (2 of 2)")
    screenshot(page, "shared")

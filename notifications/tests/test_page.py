"""The bell and the toasts in a real Chromium, against a real web worker."""

import time

import pytest
from django.conf import settings

from notifications.models import NotificationRead
from notifications.services import notify
from tests.browser import headless_chromium
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow


def orm(function, *args, **kwargs):
    """Run database work on its own thread, and close its connection there.

    Playwright's sync API runs an event loop in this thread; Django would refuse
    ORM calls here, and with the refusal waived it opens a second connection
    that nothing closes (PostgreSQL then cannot drop the test database)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def work():
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


def read_exists(**lookups):
    return orm(lambda: NotificationRead.objects.filter(**lookups).exists())


def wait_for(predicate, timeout=15, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def browser():
    # Started and stopped per test: Playwright's sync API runs an event loop in
    # this thread, and one left running would break every later async or ORM test.
    with headless_chromium() as browser:
        yield browser


@pytest.fixture
def alice_cookie(alice):
    return session_cookie(alice)[settings.SESSION_COOKIE_NAME]


# Fixtures that touch the database come before `browser` in each signature, so
# they run before Playwright's event loop starts (and are torn down after it stops).
@pytest.fixture
def page_for_alice(alice_cookie, web_workers, browser):
    base = web_workers(1)[0]
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": alice_cookie, "url": base}])
    page.base_url = base
    return page


def test_the_bell_counts_shows_toasts_and_marks_read(alice, bob, page_for_alice, tmp_path):
    page = page_for_alice
    earlier = orm(notify, alice, "While you were away", body="Sent before the page opened")
    orm(notify, bob, "Only for bob")

    failed = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.goto(page.base_url + "/")
    badge = page.locator("#bell-badge")
    badge.wait_for(state="visible")
    assert badge.text_content() == "1"
    assert page.locator(".toast").count() == 0  # Known at load: in the bell, not toasted.

    live = orm(notify, alice, "Disk almost full", body="93% used on /var", level="warning")
    toast = page.locator(".toast.level-warning", has_text="Disk almost full")
    toast.wait_for(state="visible")
    wait_for(lambda: badge.text_content() == "2", message="the badge to count 2")
    page.screenshot(path=str(tmp_path / "toast.png"))

    page.locator("#bell-button").click()
    menu = page.locator("#bell-menu")
    menu.wait_for(state="visible")
    items = menu.locator(".item")
    assert items.count() == 2
    assert "Only for bob" not in menu.inner_text()
    first = items.nth(0)
    assert "Disk almost full" in first.inner_text()
    assert "level-warning" in first.get_attribute("class")
    assert "unread" in first.get_attribute("class")
    assert "ago" in first.locator("time").inner_text() or "just now" in first.inner_text()
    page.screenshot(path=str(tmp_path / "menu.png"))

    first.click()
    wait_for(lambda: badge.text_content() == "1", message="the badge to count 1")
    wait_for(lambda: read_exists(user=alice, notification=live), message="the read to be stored")
    assert not read_exists(notification=earlier)

    menu.locator("[data-action=mark-all]").click()
    badge.wait_for(state="hidden")
    wait_for(lambda: read_exists(user=alice, notification=earlier), message="mark all to be stored")
    assert page.evaluate("livedash.state.lastNotificationId") == live.pk
    assert not page.errors, page.errors
    assert not failed, failed


def test_a_second_tab_follows_the_first_and_shows_each_notification_once(alice, page_for_alice):
    first_tab = page_for_alice
    second_tab = first_tab.context.new_page()
    for tab in (first_tab, second_tab):
        tab.goto(first_tab.base_url + "/")
        wait_for(
            lambda tab=tab: tab.evaluate("document.getElementById('ws-status').dataset.state") == "connected",
            message="the socket",
        )

    orm(notify, alice, "Deploy finished", level="success")
    for tab in (first_tab, second_tab):
        tab.locator(".toast.level-success").wait_for(state="visible")
        tab.locator("#bell-badge").wait_for(state="visible")

    first_tab.locator("#bell-button").click()
    first_tab.locator("#bell-menu [data-action=mark-all]").click()
    second_tab.locator("#bell-badge").wait_for(state="hidden")

    second_tab.locator("#bell-button").click()
    assert second_tab.locator("#bell-menu .item").count() == 1
    assert second_tab.locator("#bell-menu .item.unread").count() == 0
    assert second_tab.locator(".toast").count() == 1


def test_the_bell_menu_lists_and_pauses_my_delivery_channels(alice, bob, page_for_alice):
    from notifications.models import DeliveryChannel

    mine = orm(DeliveryChannel.objects.create, kind="email", target="alice@example.org", owner_user=alice)
    orm(DeliveryChannel.objects.create, kind="email", target="bob@example.org", owner_user=bob)
    page = page_for_alice
    page.goto(page.base_url + "/")
    page.get_by_role("button", name="Notifications").click()
    section = page.locator("#my-channels")
    section.get_by_text("email · alice@example.org").wait_for()
    assert "bob@example.org" not in section.inner_text()

    section.get_by_role("button", name="Pause email alice@example.org").click()
    section.get_by_role("button", name="Resume email alice@example.org").wait_for()
    wait_for(lambda: orm(lambda: DeliveryChannel.objects.get(pk=mine.pk).paused), message="paused")
    assert page.errors == []


@pytest.fixture
def alice_adds_channels(alice):
    from django.contrib.auth.models import Permission

    alice.user_permissions.add(Permission.objects.get(codename="add_deliverychannel"))


@pytest.fixture
def receiver():
    from tests.receivers import WebhookReceiver

    server = WebhookReceiver(signed=False).start()
    yield server
    server.stop()


def test_the_bell_menu_adds_tests_and_removes_an_apprise_channel_of_mine(
    alice_adds_channels, receiver, page_for_alice, tmp_path
):
    from notifications.models import DeliveryChannel

    page = page_for_alice
    page.goto(page.base_url + "/")
    page.get_by_role("button", name="Notifications").click()
    section = page.locator("#my-channels")
    url = f"json://hook-user:hunter2-pass@127.0.0.1:{receiver.port}/mine"
    section.get_by_label("apprise URL of a channel of yours").fill(url)
    section.get_by_role("button", name="Add").click()
    row = section.locator("[data-channel]").first
    row.wait_for()
    assert "apprise · json://hook-user:" in row.inner_text() and "hunter2-pass" not in section.inner_text()
    assert section.get_by_label("apprise URL of a channel of yours").input_value() == ""

    row.get_by_role("button", name="Test").click()
    section.get_by_text("Test sent.").wait_for()
    (request,) = receiver.requests
    assert request.path == "/mine" and request.payload["title"] == "Test from livedash"
    page.locator("#bell-menu").screenshot(path=str(tmp_path / "bell-channels.png"))

    row.get_by_role("button", name="Remove").click()
    section.locator("[data-channel]").first.wait_for(state="detached")
    wait_for(lambda: not orm(DeliveryChannel.objects.exists), message="removed")
    assert page.errors == []


def test_an_acknowledgement_on_one_page_shows_on_another(alice, admin_user, daphne_workers, browser):
    from alerts.models import AlertRule
    from dashboard.models import Metric

    rule = orm(
        lambda: AlertRule.objects.create(
            name="Disk filling up", metric=Metric.objects.create(key="disk"), threshold=80, firing=True
        )
    )
    base = daphne_workers(1)[0]
    pages = {}
    for name, user in (("alice", alice), ("admin", admin_user)):
        cookie = orm(session_cookie, user)[settings.SESSION_COOKIE_NAME]
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(15_000)
        page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
        page.goto(base + "/")
        pages[name] = page
    watcher, operator = pages["alice"], pages["admin"]
    watcher.locator("#alerts").get_by_text("Disk filling up").wait_for()
    assert watcher.locator("#alerts button").count() == 0  # alice may not acknowledge

    operator.get_by_role("button", name="Acknowledge Disk filling up").click()
    watcher.locator("#alerts").get_by_text("acknowledged by admin").wait_for()
    wait_for(lambda: orm(lambda: AlertRule.objects.get(pk=rule.pk).acknowledged_by_id) == admin_user.pk)

    operator.get_by_role("button", name="Silence 1 h Disk filling up").click()
    watcher.locator("#alerts").get_by_text("silenced until").wait_for()


# Links the server's validation refuses, stored anyway (an older row, a direct ORM write):
# the page is the last line and must not link them. Browsers drop tabs and newlines
# from URLs, so "/\t/evil.example" is "//evil.example", another site.
HOSTILE_LINKS = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "\t//evil.example",
    "//evil.example",
    "/\\evil.example",
    "javascript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,x",
    "https://ok.example/\t",
]
SAFE_LINKS = ["/admin/", "https://status.example.org/incident/1"]


def test_the_page_links_only_safe_urls(alice, page_for_alice):
    from notifications.models import Notification

    page = page_for_alice
    for link in HOSTILE_LINKS + SAFE_LINKS:
        orm(Notification.objects.create, recipient_user=alice, title=f"link {link!r}", link=link)
    page.goto(page.base_url + "/")
    page.locator("#bell-badge").wait_for(state="visible")
    page.locator("#bell-button").click()
    page.locator("#bell-menu .item").nth(len(HOSTILE_LINKS + SAFE_LINKS) - 1).wait_for()
    hrefs = page.eval_on_selector_all("#bell-menu a.link", "links => links.map(a => a.getAttribute('href'))")
    assert sorted(hrefs) == sorted(SAFE_LINKS)
    assert not page.errors, page.errors

"""Share links and kiosk mode in a real Chromium against real web workers, with values
pushed from other processes:

- alice makes a link on her dashboard's page; someone without an account opens it and
  sees the panels fill from history and then live, with no cookie and no socket; alice
  sees the viewer in her list, revokes the link in one click, and the open page stops
  (its stream ends) and says the link was revoked;
- kiosk mode shows the panels only, fitted to the screen, with no pointer once it rests;
- a kiosk page stays live, without a reload, across a worker killed and started again,
  and across a Redis restart.

Screenshots go to test-artifacts/screenshots/.
"""

import os
import signal
import subprocess
import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from boards import sharing, store
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_boards_page import DOCUMENT, panel, push
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
AXE = Axe()
BLOCKING = ("serious", "critical")
HISTORY = (
    "import time\n"
    "start = time.time() - 20\n"
    "for i in range(5):\n"
    "    publish_metric('load', 1 + i, ts=start + i, labels={'host': 'a'})\n"
    "    publish_metric('load', 10 + i, ts=start + i, labels={'host': 'b'})\n"
    "    publish_metric('disk_used', 85, ts=start + i)\n"
    "    publish_metric('orders', 7, ts=start + i)\n"
)


def blocking_violations(page, context=None):
    results = AXE.run(page, context=context)
    found = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
    return [(v["id"], [node["target"] for node in v["nodes"]][:5]) for v in found]


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"share-{name}.png"), full_page=True)


@pytest.fixture
def night(alice):
    return store.save(dict(DOCUMENT), author=store.Author(name="alice", owner=alice))


def signed_in(chromium, open_page, base_url, user, path, name, width=1440, height=900):
    context = chromium.new_context(viewport={"width": width, "height": height}, timezone_id="Europe/Madrid")
    cookie_name, value = next(iter(session_cookie(user).items()))
    context.add_cookies([{"name": cookie_name, "value": value, "url": base_url}])
    page = open_page(name, context=context)
    page.goto(base_url + path)
    page.wait_for_function("() => window.livedash && window.livedash.charts && window.livedash.board")
    return page


def anonymous(chromium, open_page, url, name, width=1440, height=900):
    """A browser with no account and no cookie: what the link's holder has."""
    context = chromium.new_context(viewport={"width": width, "height": height}, timezone_id="Europe/Madrid")
    page = open_page(name, context=context)
    page.sockets = []
    page.on("websocket", lambda socket: page.sockets.append(socket.url))
    # Streams the server ended (a stream the page closes itself fails instead).
    page.streams_ended = []
    page.on("requestfinished", lambda r: "/events/" in r.url and page.streams_ended.append(r.url))
    page.goto(url)
    page.wait_for_function("() => window.livedash && window.livedash.charts && window.livedash.share")
    return page


def value_of(key):
    return f'document.querySelector("{panel(key)} .chart-value").textContent'


def test_a_link_made_on_the_page_shows_the_dashboard_live_until_it_is_revoked(
    chromium, open_page, daphne_workers, manage, alice, night
):
    (base_url,) = daphne_workers(1)
    push(manage, HISTORY)
    owner = signed_in(chromium, open_page, base_url, alice, "/d/night/", "alice")
    owner.click("#share-button")
    owner.fill("#share-note", "wall screen")
    owner.select_option("#share-expiry", "86400")
    owner.click("#share-create")
    owner.wait_for_selector("#share-made", state="visible")
    url = owner.input_value("#share-url")
    assert url.startswith(base_url + "/s/") and url.endswith("/")
    owner.wait_for_function("() => document.querySelectorAll('#share-rows tr').length === 1")
    cells = owner.locator("#share-rows tr td").all_inner_texts()
    assert cells[0] == "wall screen" and cells[1] == "alice" and cells[4] == "not yet"
    assert blocking_violations(owner, "#share-dialog") == []
    screenshot(owner, "dialog")

    viewer = anonymous(chromium, open_page, url, "viewer")
    # History, through the link: the first host's load, the disk gauge, the orders.
    viewer.wait_for_function("() => livedash.charts.points('panel-1') === 5")
    assert viewer.evaluate("livedash.charts.seriesIds('panel-1')") == ['load{host="a"}']
    assert viewer.locator("#var-host option").all_inner_texts() == ["a", "b"]
    viewer.wait_for_function(f"() => {value_of('panel-3')} === '85.0'")
    # Live values reach it over the link's stream.
    viewer.wait_for_function("() => livedash.stream.isOpen()")
    push(manage, "publish_metric('orders', 42)")
    viewer.wait_for_function(f"() => {value_of('panel-2')} === '42'")
    # Another host, picked on the page: its series, through the same link.
    viewer.select_option("#var-host", "b")
    viewer.wait_for_function(
        "() => livedash.charts.series('panel-1') && livedash.charts.series('panel-1')[1][0] === 10"
    )
    # No session, no cookie of any kind, no WebSocket; nothing trips the policy.
    assert viewer.context.cookies() == []
    assert viewer.sockets == []
    assert not [line for line in viewer.console_lines if "Content Security Policy" in line]
    assert viewer.locator("#share-ended").is_hidden()
    assert blocking_violations(viewer) == []
    screenshot(viewer, "page")
    phone = anonymous(chromium, open_page, url, "viewer-390", width=390, height=844)
    phone.wait_for_function("() => livedash.charts.points('panel-1') === 5")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert blocking_violations(phone) == []
    screenshot(phone, "page-390")

    # alice sees the viewer and the link's first use, then revokes it in one click.
    # (the open page, and the phone's while it is still counted)
    owner.wait_for_function(
        "() => ['1', '2'].includes(document.querySelector('#share-rows .share-viewers').textContent)",
        timeout=20_000,
    )
    assert owner.locator("#share-rows tr td").nth(4).inner_text() != "not yet"
    ended_before = len(viewer.streams_ended)
    owner.click("#share-rows .share-revoke")
    owner.wait_for_function("() => !document.getElementById('share-none').hidden")

    # The server ends the open page's stream, and the page says the link was revoked.
    deadline = time.monotonic() + 10
    while len(viewer.streams_ended) == ended_before and time.monotonic() < deadline:
        viewer.wait_for_timeout(50)  # lets Playwright deliver the page's events
    assert len(viewer.streams_ended) > ended_before, "the stream was not ended by the server"
    viewer.wait_for_selector("#share-ended", state="visible", timeout=10_000)
    assert viewer.inner_text("#share-ended h2") == "This share link was revoked"
    assert not viewer.evaluate("livedash.stream.isOpen()")
    assert viewer.get_attribute("#sse-status", "data-state") == "offline"
    assert blocking_violations(viewer) == []
    screenshot(viewer, "revoked")
    # Reloaded, it is the revoked link's page.
    answer = viewer.goto(url)
    assert answer.status == 410 and "Share link revoked" in viewer.inner_text("h2")


def kiosk_checks(page):
    """Only the panels, fitted to the screen's height, and no pointer once it rests."""
    for selector in (".board-head", ".toolbar", "#board-variables", ".window-picker"):
        assert page.locator(selector).first.is_hidden(), selector
    assert (
        page.locator(".topbar").is_hidden() or page.get_attribute("#sse-status", "data-state") != "connected"
    )
    page.wait_for_function("() => livedash.kiosk && livedash.kiosk.cellHeight() > 100")
    # The grid ends at the screen's bottom edge (once the grid has taken its new rows).
    page.wait_for_function(
        "() => { const bottom = document.getElementById('board-grid').getBoundingClientRect().bottom;"
        " return bottom <= innerHeight + 1 && bottom > innerHeight - 80; }"
    )
    page.wait_for_function("() => document.body.classList.contains('kiosk-idle')")
    cursor = f'getComputedStyle(document.querySelector("{panel("panel-1")}")).cursor'
    assert page.evaluate(cursor) == "none"
    page.mouse.move(300, 300)
    page.mouse.move(320, 310)
    assert page.evaluate(cursor) != "none"
    page.wait_for_function("() => document.body.classList.contains('kiosk-idle')", timeout=10_000)


def test_kiosk_shows_the_panels_only_on_the_dashboard_and_through_a_link(
    chromium, open_page, daphne_workers, manage, alice, night
):
    (base_url,) = daphne_workers(1)
    push(manage, HISTORY)
    page = signed_in(chromium, open_page, base_url, alice, "/d/night/?kiosk=1", "alice-kiosk", 1920, 1080)
    page.wait_for_function("() => livedash.charts.points('panel-1') === 5")
    assert page.locator("#share-button").is_hidden() and page.locator("#edit-button").is_hidden()
    kiosk_checks(page)
    screenshot(page, "kiosk-board-1920")

    _, token = sharing.create(night, user=alice)
    viewer = anonymous(chromium, open_page, f"{base_url}/s/{token}/?kiosk=1", "viewer-kiosk", 1920, 1080)
    viewer.wait_for_function("() => livedash.charts.points('panel-1') === 5")
    kiosk_checks(viewer)
    assert blocking_violations(viewer) == []
    screenshot(viewer, "kiosk-1920")
    # A smaller screen: the rows are fitted again.
    before = viewer.evaluate("livedash.kiosk.cellHeight()")
    viewer.set_viewport_size({"width": 1280, "height": 720})
    viewer.wait_for_function(f"() => livedash.kiosk.cellHeight() < {before}")
    kiosk_checks(viewer)
    screenshot(viewer, "kiosk-1280")


def start_worker_on(subprocess_env, port, log_path, env=None):
    from deploy.supervisor import Supervisor, wait_for_port

    supervisor = Supervisor(env=subprocess_env)
    log = open(log_path, "wb")  # noqa: SIM115
    process = supervisor.worker(f"again-{port}", port, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process=process)
    return supervisor


@pytest.mark.servers
def test_a_kiosk_page_stays_live_across_a_worker_killed_and_started_again(
    chromium, open_page, web_workers, subprocess_env, manage, alice, night, tmp_path
):
    (base_url,) = web_workers(1)
    worker = web_workers.workers[0]
    push(manage, HISTORY)
    _, token = sharing.create(night, user=alice)
    viewer = anonymous(chromium, open_page, f"{base_url}/s/{token}/?kiosk=1", "viewer-restart")
    viewer.wait_for_function("() => livedash.stream.isOpen() && livedash.charts.points('panel-2') === 5")
    viewer.evaluate("window.sameDocument = true")

    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    viewer.wait_for_function("() => document.getElementById('sse-status').dataset.state !== 'connected'")
    # The corner says the stream is down; the panels stay.
    assert viewer.locator("#sse-status").is_visible()
    push(manage, "publish_metric('orders', 31)")  # while no worker answers: kept in Redis
    supervisor = start_worker_on(subprocess_env, worker.port, tmp_path / "again.log")
    try:
        # Resumed from its last event id: the value published meanwhile arrives, then new ones.
        viewer.wait_for_function(f"() => {value_of('panel-2')} === '31'", timeout=20_000)
        viewer.wait_for_function("() => livedash.stream.isOpen()")
        push(manage, "publish_metric('orders', 32)")
        viewer.wait_for_function(f"() => {value_of('panel-2')} === '32'")
        assert viewer.evaluate("window.sameDocument") is True  # no reload
        viewer.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
        assert viewer.locator(".topbar").is_hidden()
        assert viewer.locator("#share-ended").is_hidden()
    finally:
        supervisor.stop()


def test_a_kiosk_page_stays_live_across_a_redis_restart(
    chromium, open_page, web_workers, own_redis, manage, alice, night
):
    env = {"REDIS_URL": own_redis.url}
    (base_url,) = web_workers(1, env=env)

    def push_here(script):
        result = manage("shell", "-c", "from dashboard.live import publish_metric\n" + script, env=env)
        assert result.returncode == 0, result.stderr

    push_here(HISTORY)
    _, token = sharing.create(night, user=alice)
    viewer = anonymous(chromium, open_page, f"{base_url}/s/{token}/?kiosk=1", "viewer-redis")
    viewer.wait_for_function("() => livedash.stream.isOpen() && livedash.charts.points('panel-2') === 5")
    viewer.evaluate("window.sameDocument = true")
    push_here("publish_metric('orders', 21)")
    viewer.wait_for_function(f"() => {value_of('panel-2')} === '21'")

    own_redis.stop()
    own_redis.start()  # empty, as after a restart without persistence
    push_here("publish_metric('orders', 22)")
    viewer.wait_for_function(f"() => {value_of('panel-2')} === '22'", timeout=30_000)
    push_here("publish_metric('orders', 23)")
    viewer.wait_for_function(f"() => {value_of('panel-2')} === '23'", timeout=20_000)
    assert viewer.evaluate("window.sameDocument") is True
    assert viewer.locator("#share-ended").is_hidden()


def test_an_open_page_says_so_when_its_link_expires_in_spanish_too(
    chromium, open_page, daphne_workers, manage, alice, night
):
    import datetime

    from django.utils import timezone

    (base_url,) = daphne_workers(1)
    push(manage, HISTORY)
    expires = timezone.now() + datetime.timedelta(seconds=8)
    _, token = sharing.create(night, user=alice, expires=expires)
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="es-ES")
    viewer = open_page("viewer-es", context=context)
    viewer.goto(f"{base_url}/s/{token}/")
    viewer.wait_for_function("() => window.livedash && livedash.share && livedash.stream.isOpen()")
    assert viewer.inner_text(".share-badge").startswith("Vista compartida, solo lectura · hasta ")
    screenshot(viewer, "page-es")
    # At its expiry the server ends the stream and the page says why, in the page's language.
    viewer.wait_for_selector("#share-ended", state="visible", timeout=20_000)
    assert viewer.inner_text("#share-ended h2") == "Este enlace compartido ha caducado"
    assert viewer.get_attribute("#sse-status", "data-state") == "offline"
    screenshot(viewer, "expired-es")
    assert viewer.goto(f"{base_url}/s/{token}/").status == 410
    assert "Enlace compartido caducado" in viewer.inner_text("h2")

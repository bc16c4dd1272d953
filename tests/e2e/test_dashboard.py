"""One user journey in a real Chromium against the native stack (`make stack`'s
start_stack: nginx -> two daphne workers, the collector; this run's Redis and database).

Everything reaches the page the way it does in production: the login form, the SSE
stream and the control socket through nginx, metrics and notifications from a
separate `manage.py` process.
"""

import statistics

import pytest

from conftest import PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.servers]


def log_in(page, base_url, username):
    page.goto(base_url + "/")
    assert "/accounts/login/" in page.url, "an anonymous visitor must land on the login form"
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    page.goto(base_url + "/all/")
    page.wait_for_function("() => window.livedash && window.livedash.charts")


def points(page, key):
    return page.evaluate(f"livedash.charts.points({key!r})")


def frame_times(page, key="cpu"):
    return page.evaluate(f"livedash.charts.series({key!r})")[0]


def median_spacing(times):
    return statistics.median(b - a for a, b in zip(times, times[1:], strict=False))


def badge(page):
    node = page.locator("#bell-badge")
    return node.inner_text() if node.is_visible() else "0"


def shell(manage, *args):
    result = manage(*args)
    assert result.returncode == 0, result.stderr
    return result


def test_a_day_on_the_dashboard(stack, open_page, manage, alice, staff):
    base_url = stack.base_url
    alice_page = open_page("alice")
    log_in(alice_page, base_url, "alice")

    # The charts draw (one card per metric, a canvas each) and move.
    alice_page.wait_for_function("() => livedash.charts.points('cpu') >= 2", timeout=20_000)
    assert alice_page.locator(".chart-card canvas").count() >= 1
    drawn = points(alice_page, "cpu")
    alice_page.wait_for_function(f"() => livedash.charts.points('cpu') > {drawn}")

    # A metric pushed from another process appears on screen.
    shell(manage, "shell", "-c", "from dashboard.live import publish_metric; publish_metric('orders', 42)")
    card = alice_page.locator(".chart-card[data-key=orders]")
    card.wait_for()
    assert card.locator(".chart-value").inner_text().strip().startswith("42")

    # A notification sent from the shell shows a toast and raises the badge.
    shell(manage, "shell", "-c", "from notifications.services import notify; notify('alice', 'Deploy done')")
    alice_page.locator("#toasts .toast", has_text="Deploy done").wait_for()
    alice_page.wait_for_function("() => document.getElementById('bell-badge').textContent.trim() === '1'")
    assert badge(alice_page) == "1"

    # Marking it read in a second tab lowers the badge in the first.
    second_tab = open_page("alice-second-tab", context=alice_page.context)
    second_tab.goto(base_url + "/all/")
    second_tab.wait_for_function("() => document.getElementById('bell-badge').textContent.trim() === '1'")
    second_tab.click("#bell-button")
    second_tab.locator("#bell-menu .item.unread", has_text="Deploy done").click()
    alice_page.wait_for_function("() => document.getElementById('bell-badge').hidden")
    assert badge(alice_page) == "0"

    # A non-staff user does not see the sampling controls.
    assert alice_page.locator("#controls").is_hidden()
    assert alice_page.locator("#interval-select").count() == 0

    # Staff changes the interval in the UI and the frames come closer together.
    staff_page = open_page("staff")
    log_in(staff_page, base_url, "staff")
    assert staff_page.locator("#interval-select").is_visible()
    alice_page.wait_for_function("() => livedash.charts.points('cpu') >= 6", timeout=20_000)
    before = frame_times(alice_page)[-5:]
    seen = len(frame_times(alice_page))
    staff_page.select_option("#interval-select", "0.25")
    alice_page.locator("#sampling-info", has_text="set by staff").wait_for()
    alice_page.wait_for_function(f"() => livedash.charts.points('cpu') >= {seen + 14}", timeout=20_000)
    after = frame_times(alice_page)[-10:]
    assert median_spacing(before) == pytest.approx(1.0, abs=0.15)
    assert median_spacing(after) == pytest.approx(0.25, abs=0.08)

    errors = [line for page in (alice_page, second_tab, staff_page) for line in page.console_lines]
    assert not [line for line in errors if line.startswith(("[pageerror]", "[error]"))], errors

"""Alerts on the page, in a real Chromium against a real web worker: a chart of many
series marks the ones an alert fires for (drawn even when it would be folded away),
the alert says when it will escalate and to whom, and those who may silence alerts
manage maintenance windows from the page.

The collector's evaluator runs in the test process (its clock is the test's); what it
decides reaches the page as the collector's would, over the channel layer.

Screenshots go to test-artifacts/screenshots/.
"""

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group

from alerts import actions
from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule, EscalationStep, MaintenanceWindow, SeriesAlert
from audit.models import AuditEntry
from dashboard import frames
from dashboard.live import publish_metric
from notifications.models import DeliveryChannel
from tests.e2e.conftest import ARTIFACTS
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
HOSTS = [f"h{n}" for n in range(10)]
HOT = 'load{host="h9"}'
MADRID = ZoneInfo("Europe/Madrid")


class Published:
    """The evaluator's feed: the values the test says were published since the last tick."""

    def __init__(self):
        self.values = {}

    def __call__(self):
        points = []
        for host, value in self.values.items():
            data = frames.metric("load", value, time.time(), {"host": host})
            points.extend(frames.points_of(frames.METRIC, data))
        return points


@pytest.fixture
def base_url(web_workers):
    (url,) = web_workers(1)
    return url


@pytest.fixture
def browse(chromium, open_page, base_url):
    def open_(user, lang="en", name=None, width=1280):
        context = chromium.new_context(
            viewport={"width": width, "height": 900}, locale=lang, timezone_id="Europe/Madrid"
        )
        cookie_name, value = next(iter(session_cookie(user).items()))
        context.add_cookies([{"name": cookie_name, "value": value, "url": base_url}])
        page = open_page(name or f"{user.username}-{lang}", context=context)
        page.goto(base_url + "/")
        page.wait_for_function("() => window.livedash && window.livedash.charts")
        return page

    return open_


@pytest.fixture
def operator(db):
    from conftest import _make_user

    return _make_user("oscar", "dashboard.view_metric", "alerts.change_alertrule")


def test_it_marks_the_firing_series_and_says_when_the_alert_escalates(browse, manage, alice, operator):
    pushed = manage(
        "shell",
        "-c",
        "from dashboard.live import publish_metric\n"
        f"for n, host in enumerate({HOSTS!r}):\n"
        "    publish_metric('load', 10 + n, labels={'host': host})\n",
    )
    assert pushed.returncode == 0, pushed.stderr
    oncall = Group.objects.create(name="On-call B")
    rule = AlertRule.objects.create(
        name="Load high",
        match='load{host=~"h.*"}',
        threshold=50,
        sustain_seconds=0,
        cooldown_seconds=0,
        group_wait=0,
        group_interval=0,
    )
    channel = DeliveryChannel.objects.create(
        kind="webhook", target="https://hooks.example.org/oncall-b/token", owner_group=oncall
    )
    EscalationStep.objects.create(rule=rule, delay_minutes=30, channel=channel)
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    feed.values = dict.fromkeys(HOSTS, 10.0)
    evaluator.evaluate({}, time.time())

    page = browse(alice)
    page.wait_for_function("() => livedash.charts.seriesIds('load').length === 10")
    page.wait_for_function("() => livedash.charts.lines('load') === 8")  # h8 and h9 folded away
    assert page.evaluate("livedash.charts.firing('load')") == []
    assert page.locator(".legend-entry.firing").count() == 0

    # h9 crosses the threshold: its value and the collector's alert reach the page.
    publish_metric("load", 97, labels={"host": "h9"})
    feed.values["h9"] = 97.0
    evaluator.evaluate({}, time.time())
    page.wait_for_function(f"() => livedash.charts.firing('load').includes({HOT!r})")
    assert page.evaluate("livedash.charts.firing('load')") == [HOT]
    # Drawn first (it would have been folded), thicker, and named as firing in the legend.
    page.wait_for_function("() => livedash.charts.lineWidths('load')[0] === 3")
    assert page.evaluate("livedash.charts.lineWidths('load')") == [3] + [1.5] * 7
    first = page.locator(".chart-card[data-key='load'] .chart-legend .legend-entry").first
    assert first.get_attribute("data-series") == HOT
    assert "firing" in first.get_attribute("class")
    assert first.locator(".legend-firing").inner_text().lower() == "firing"
    assert page.locator(".legend-entry.firing").count() == 1
    label = page.get_attribute(".chart-card[data-key='load'] .chart-plot", "aria-label")
    assert "host=h9 97 (alert firing)" in label

    # The alert says when it escalates, and to whom (the channel's owner, not its address).
    fired = SeriesAlert.objects.get(rule=rule).last_fired_at
    due = (fired + timedelta(minutes=30)).astimezone(MADRID).strftime("%I:%M")
    strip = page.locator(f"#alerts .alert[data-rule='{rule.pk}'] .escalation")
    strip.wait_for()
    text = strip.inner_text()
    assert re.fullmatch(rf"will notify On-call B at {due} [AP]M", text), text
    assert "hooks.example.org" not in page.inner_text("#alerts")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "alerts-firing-series.png"), full_page=True)

    # Someone acknowledges: no escalation is coming any more.
    state = actions.acknowledge(rule.pk, operator, series=HOT)
    actions.broadcast(state, "acknowledged", by=operator.username, series=HOT)
    strip.wait_for(state="detached")

    # A reload reads the firing series from the socket's hello.
    page.reload()
    page.wait_for_function(f"() => livedash.charts.firing('load').includes({HOT!r})")
    page.wait_for_function("() => livedash.charts.lineWidths('load')[0] === 3")

    # Back in range: unmarked.
    feed.values["h9"] = 12.0
    evaluator.evaluate({}, time.time() + 1)
    page.wait_for_function("() => livedash.charts.firing('load').length === 0")
    page.wait_for_function("() => livedash.charts.lineWidths('load').every((width) => width === 1.5)")
    assert page.locator(".legend-entry.firing").count() == 0
    assert [line for line in page.console_lines if "error" in line.lower()] == []


def test_it_lets_operators_manage_maintenance_windows_from_the_page(browse, alice, operator):
    page = browse(operator, name="operator")
    panel = page.locator("#windows")
    panel.locator("summary").click()
    page.wait_for_function("() => livedash.windows.loaded()")
    assert panel.locator(".windows-empty").is_visible()

    form = page.locator("#window-form")
    assert form.locator("[name=timezone]").input_value() == "Europe/Madrid"  # the browser's zone
    form.locator("[name=name]").fill("nightly backup")
    form.locator("[name=match]").fill('disk{host="db1"}')
    form.locator("[name=start]").fill("2026-03-28T01:30")
    form.locator("[name=minutes]").fill("45")
    form.locator("[name=repeat]").select_option("cron")
    # A bad expression is refused, saying why, and nothing is stored.
    form.locator("[name=expression]").fill("30 1 * *")
    form.get_by_role("button", name="Add window").click()
    error = form.locator(".form-error")
    error.wait_for()
    assert error.inner_text().startswith("Window not added: cron: a cron expression has five fields")
    assert not MaintenanceWindow.objects.exists()

    form.locator("[name=expression]").fill("30 1 * * *")
    form.get_by_role("button", name="Add window").click()
    item = panel.locator(".window-item")
    item.wait_for()
    assert error.is_hidden()
    window = MaintenanceWindow.objects.get()
    # The start is read in the browser's clock (Madrid, UTC+1 that night), the recurrence
    # in the window's own zone.
    assert window.starts_at == datetime(2026, 3, 28, 0, 30, tzinfo=UTC)
    assert (window.name, window.match, window.cron, window.timezone, window.duration_minutes) == (
        "nightly backup",
        'disk{host="db1"}',
        "30 1 * * *",
        "Europe/Madrid",
        45,
    )
    assert "cron 30 1 * * * in Europe/Madrid" in item.inner_text()
    assert 'disk{host="db1"}' in item.inner_text()
    assert AuditEntry.objects.filter(action="maintenancewindow.created", actor="oscar").exists()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "maintenance-windows-panel.png"), full_page=True)

    page.get_by_role("button", name="Delete window nightly backup").click()
    item.wait_for(state="detached")
    assert not MaintenanceWindow.objects.exists()
    assert panel.locator(".windows-empty").is_visible()

    # In Spanish; and a viewer has no such panel.
    spanish = browse(operator, lang="es", name="operator-es")
    assert spanish.locator("#windows summary").inner_text() == "Ventanas de mantenimiento"
    viewer = browse(alice, name="viewer")
    assert viewer.locator("#windows").count() == 0
    assert viewer.evaluate("livedash.config.windowsUrl") is None
    # The one error is the refused window's 400, which the browser logs.
    errors = [line for line in page.console_lines if "error" in line.lower()]
    assert [line for line in errors if "status of 400" not in line] == [] and len(errors) <= 1

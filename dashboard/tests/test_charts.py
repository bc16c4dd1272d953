"""The live charts in a real Chromium, against a real web worker, Redis and collector."""

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.live import publish_metric
from dashboard.models import Metric
from deploy.supervisor import Supervisor
from tests.browser import headless_chromium
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop running in this thread; the test's
    # own ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def collector(subprocess_env):
    supervisor = Supervisor(env=subprocess_env)
    supervisor.python("collector", "manage.py", "collect_metrics")
    yield supervisor
    supervisor.stop()


@pytest.fixture
def dashboard(chromium, web_workers, alice):
    """The dashboard page of a logged-in user with view_metric, and its page errors."""
    (base_url,) = web_workers(1)
    # Predicates are functions: Playwright evaluates a bare expression with eval,
    # which the page's enforced CSP (rightly) refuses.
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    name, value = next(iter(session_cookie(alice).items()))
    context.add_cookies([{"name": name, "value": value, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))

    def open_():
        page.goto(base_url + "/")
        page.wait_for_function("() => window.livedash && window.livedash.charts")
        return page

    yield open_
    context.close()


def wait_for_points(page, key, count):
    page.wait_for_function(f"() => livedash.charts.points({key!r}) >= {count}")
    return page.evaluate(f"livedash.charts.series({key!r})")


def test_it_fills_from_history_and_continues_live_without_gap_or_duplicate(dashboard):
    start = time.time() - 30
    for i in range(5):
        publish_metric("orders", i, ts=start + i)
    page = dashboard()
    xs, ys = wait_for_points(page, "orders", 5)
    assert ys == [0, 1, 2, 3, 4]
    for i in range(5, 10):
        publish_metric("orders", i, ts=start + i)
    xs, ys = wait_for_points(page, "orders", 10)
    time.sleep(0.5)  # a duplicate at the seam would arrive now
    xs, ys = page.evaluate("livedash.charts.series('orders')")
    assert ys == list(range(10))
    assert xs == sorted(set(xs))
    assert page.errors == []


def test_it_charts_each_enabled_metric_live_from_the_collector(dashboard, collector, db):
    page = dashboard()
    page.wait_for_function("() => livedash.charts.points('cpu') >= 2", timeout=30_000)
    keys = page.evaluate("livedash.charts.keys()")
    assert keys[:3] == ["cpu", "memory", "load_1m"]
    assert page.get_attribute(".chart-card[data-key='cpu']", "data-level") in ("ok", "warning", "critical")
    assert page.inner_text(".chart-card[data-key='cpu'] .chart-unit") == "%"
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    xs, _ = wait_for_points(page, "cpu", 4)
    assert xs == sorted(set(xs)), "frames charted twice or out of order"
    assert page.errors == []


def test_it_leaves_out_disabled_metrics(dashboard, collector, db):
    from dashboard.collector.collector import register_builtin_metrics

    register_builtin_metrics()
    Metric.objects.filter(key="processes").update(enabled=False)
    page = dashboard()
    page.wait_for_function("() => livedash.charts.points('cpu') >= 2", timeout=30_000)
    time.sleep(1.5)  # unknown keys in a frame would make the page refetch by now
    assert "processes" not in page.evaluate("livedash.charts.keys()")
    assert page.query_selector(".chart-card[data-key='processes']") is None


def test_it_adds_a_chart_for_a_custom_metric_first_seen_live(dashboard):
    page = dashboard()
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    publish_metric("signups", 12)
    page.wait_for_selector(".chart-card[data-key='signups']")
    page.wait_for_function(
        "() => document.querySelector(\".chart-card[data-key='signups'] .chart-value\").textContent === '12'"
    )


def test_it_colours_a_value_over_its_threshold(dashboard):
    Metric.objects.create(key="queue", label="Queue", warning_threshold=10, critical_threshold=20)
    publish_metric("queue", 15)
    page = dashboard()
    page.wait_for_function("() => livedash.charts.points('queue') >= 1")
    page.wait_for_function(
        "() => document.querySelector(\".chart-card[data-key='queue']\").dataset.level === 'warning'"
    )
    publish_metric("queue", 25)
    page.wait_for_function(
        "() => document.querySelector(\".chart-card[data-key='queue']\").dataset.level === 'critical'"
    )


def test_switching_the_window_reloads_history_for_it(dashboard):
    page = dashboard()
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    with page.expect_response(lambda r: "/api/metrics/history/?minutes=60" in r.url) as response:
        page.click("[data-window='60']")
    assert response.value.status == 200
    assert page.evaluate("livedash.charts.windowMinutes()") == 60
    assert "active" in page.get_attribute("[data-window='60']", "class")
    assert "active" not in page.get_attribute("[data-window='15']", "class")


def test_it_re_emits_each_stream_event_on_the_bus_for_any_listener(dashboard):
    page = dashboard()
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    # A second consumer of the stream: it only subscribes, the EventSource stays stream.js's.
    page.evaluate("window.seen = []; livedash.on('sse:metric', (point) => window.seen.push(point))")
    publish_metric("signups", 7)
    page.wait_for_function("() => window.seen.length === 1")
    assert page.evaluate("window.seen[0].name") == "signups"
    assert page.evaluate("window.seen[0].value") == 7
    page.wait_for_function("() => livedash.charts.points('signups') === 1")


def test_it_opens_the_stream_for_the_channels_the_page_config_names(dashboard):
    page = dashboard()
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    with page.expect_request(lambda r: "/events/" in r.url) as request:
        page.evaluate("livedash.charts.reload()")
    url = urlsplit(request.value.url)
    assert url.path == "/events/"
    assert parse_qs(url.query)["channel"] == ["metrics"]


def test_it_formats_with_the_helpers_from_their_own_file(dashboard):
    page = dashboard()
    assert page.evaluate("livedash.format.withUnit(2048, 'B/s')") == {"text": "2.0", "unit": "KiB/s"}
    assert page.evaluate("livedash.format.axis([0, 1536], 'B/s', 512)") == ["0.0 KiB/s", "1.5 KiB/s"]
    assert page.evaluate("livedash.format.age(90)") == "1 min ago"


def fill_rollups(key, days, low=0.0, high=2.0):
    """A week and a day of 1 s samples of `key`, as the collector's writer leaves them."""
    from dashboard import rollups
    from dashboard.models import MetricRollup

    now = time.time()
    rows = []
    for step, retention in rollups.tiers():
        start = rollups.bucket_of(now - min(days * 86400, retention), step)
        for bucket in range(start, rollups.bucket_of(now, step) + step, step):
            rows.append(
                MetricRollup(key=key, tier=step, bucket=bucket, count=step, sum=step, min=low, max=high)
            )
    MetricRollup.objects.bulk_create(rows, batch_size=5000)


def test_it_switches_to_seven_days_with_bands_zooms_into_a_range_and_back(dashboard, tmp_path):
    Metric.objects.create(key="orders", label="Orders")
    fill_rollups("orders", days=8)
    page = dashboard()
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")

    with page.expect_response(lambda r: "/api/metrics/history/?minutes=10080" in r.url):
        page.click("[data-window='10080']")
    page.wait_for_function("() => livedash.charts.step() > 0 && livedash.charts.points('orders') > 300")
    week_step = page.evaluate("livedash.charts.step()")
    xs, ys = page.evaluate("livedash.charts.series('orders')")
    lows, highs = page.evaluate("livedash.charts.bands('orders')")
    assert xs[-1] - xs[0] > 6.9 * 86400
    assert all(x % week_step == 0 for x in xs)
    assert lows[:-1] == [0.0] * (len(xs) - 1) and highs[:-1] == [2.0] * (len(xs) - 1)

    # The live tail folds into the last bucket rather than adding a point.
    publish_metric("orders", 50)
    page.wait_for_function("() => livedash.charts.bands('orders')[1].slice(-1)[0] === 50")
    assert page.evaluate("livedash.charts.points('orders')") in (len(xs), len(xs) + 1)

    # CSV of what the chart shows.
    with page.expect_download() as download:
        page.click(".chart-card[data-key='orders'] .chart-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    # A column per series, headed by its id; bucketed windows add its min and max.
    assert lines[0] == "time,orders,orders min,orders max"
    assert len(lines) - 1 == page.evaluate("livedash.charts.points('orders')")

    # Drag across a tenth of the chart: finer buckets are fetched for that range.
    box = page.locator(".chart-card[data-key='orders'] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    with page.expect_response(lambda r: "/api/metrics/history/?start=" in r.url) as zoomed:
        page.mouse.move(box["x"] + box["width"] * 0.40, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
        page.mouse.move(box["x"] + box["width"] * 0.50, y, steps=5)
        page.mouse.up()
    assert zoomed.value.status == 200
    page.wait_for_function(f"() => livedash.charts.zoomed() !== null && livedash.charts.step() < {week_step}")
    zoom = page.evaluate("livedash.charts.zoomed()")
    assert 0.05 * 7 * 86400 < zoom["end"] - zoom["start"] < 0.15 * 7 * 86400
    xs, _ = page.evaluate("livedash.charts.series('orders')")
    assert zoom["start"] - page.evaluate("livedash.charts.step()") <= xs[0] and xs[-1] <= zoom["end"]

    # Double-click: back to the live week.
    with page.expect_response(lambda r: "/api/metrics/history/?minutes=10080" in r.url):
        page.dblclick(".chart-card[data-key='orders'] .u-over")
    page.wait_for_function(
        f"() => livedash.charts.zoomed() === null && livedash.charts.step() === {week_step}"
    )
    assert page.errors == []


def region_tint(page, key, x0, x1):
    """The mean blue minus red of the chart's canvas between CSS x0 and x1 (within the plot).

    A region, not a column: the line's dots and the gaps between them average out.
    """
    return page.evaluate(
        """([key, x0, x1]) => {
            const canvas = document.querySelector(`.chart-card[data-key='${key}'] canvas`);
            const over = document.querySelector(`.chart-card[data-key='${key}'] .u-over`);
            const ratio = window.devicePixelRatio || 1;
            const left = Math.round((x0 + over.offsetLeft) * ratio);
            const width = Math.max(1, Math.round((x1 - x0) * ratio));
            const top = Math.round(over.offsetTop * ratio);
            const height = Math.round(over.clientHeight * ratio);
            const pixels = canvas.getContext('2d').getImageData(left, top, width, height).data;
            let tint = 0;
            for (let i = 0; i < pixels.length; i += 4) tint += pixels[i + 2] - pixels[i];
            return tint / (pixels.length / 4);
        }""",
        [key, x0, x1],
    )


def test_it_draws_annotations_on_the_charts_they_belong_on_with_their_text_on_hover(dashboard, tmp_path):
    from datetime import UTC, datetime

    from alerts.models import Annotation, MaintenanceWindow

    Metric.objects.create(key="orders", label="Orders")
    now = time.time()
    for i in range(120):
        publish_metric("orders", 1, ts=now - 240 + 2 * i)
    moment = datetime.fromtimestamp(now - 180, tz=UTC)
    Annotation.objects.create(time=moment, text="deploy 1.4", tags=["deploy"], match='orders{host="web1"}')
    Annotation.objects.create(time=moment, text="cpu swap", match="cpu")
    MaintenanceWindow.objects.create(
        name="db upgrade",
        match="orders",
        starts_at=datetime.fromtimestamp(now - 90, tz=UTC),
        duration_minutes=30,
    )
    page = dashboard()
    page.wait_for_function("() => livedash.charts.points('orders') >= 100")
    page.wait_for_function("() => livedash.charts.annotations('orders').length === 2")
    assert page.evaluate("livedash.charts.annotations('orders')") == ["deploy 1.4", "Maintenance: db upgrade"]
    # The banner says the window is on.
    assert "db upgrade" in page.inner_text("#maintenance")

    # Hovering the marker shows its text; hovering the band, the window's.
    over = page.locator(".chart-card[data-key='orders'] .u-over")
    box = over.bounding_box()
    marker = page.evaluate(f"livedash.charts.xOf('orders', {now - 180})")
    band = page.evaluate(f"livedash.charts.xOf('orders', {now - 30})")
    page.mouse.move(box["x"] + marker, box["y"] + box["height"] / 2)
    title = "() => document.querySelector(\".chart-card[data-key='orders'] .u-over\").title"
    page.wait_for_function(f"{title}.includes('deploy 1.4')")
    assert "deploy 1.4" in page.inner_text(".chart-card[data-key='orders'] .chart-readout")
    page.mouse.move(box["x"] + band, box["y"] + box["height"] / 2)
    page.wait_for_function(f"{title}.includes('db upgrade')")
    # A look at it: the card with its marker and band, the banner above.
    page.locator(".chart-card[data-key='orders']").screenshot(path=str(tmp_path / "annotated-chart.png"))
    page.screenshot(path=str(tmp_path / "annotated-page.png"))

    # Drawn: the band tints the plot bluer than before it starts.
    def x_of(moment):
        return page.evaluate(f"livedash.charts.xOf('orders', {moment})")

    inside = region_tint(page, "orders", x_of(now - 80), x_of(now - 20))
    before = region_tint(page, "orders", x_of(now - 170), x_of(now - 110))
    assert inside > before + 3

    # The CSV has them in a last column, each on a row at its time.
    page.mouse.move(0, 0)
    with page.expect_download() as download:
        page.click(".chart-card[data-key='orders'] .chart-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].endswith(",annotation")
    noted = [line for line in lines if line.endswith("deploy 1.4")]
    assert noted and noted[0].startswith(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    assert any("Maintenance: db upgrade (until " in line for line in lines)
    assert not any("cpu swap" in line for line in lines)
    assert page.errors == []

"""Metrics with labels on the page, in a real Chromium against a real web worker, with
the values pushed from other processes: one chart per metric name draws a line per
series, a legend names each by its labels (the lines past eight folded into "N more"),
the hover text lists each series' value, and a metric without labels looks as before.

Screenshots of a chart of several series at 390, 768 and 1440 px in light and dark go
to test-artifacts/screenshots/.
"""

import csv
import re
import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from dashboard.live import publish_metric
from dashboard.models import UserPreference
from tests.e2e.conftest import ARTIFACTS
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"
AXE = Axe()


@pytest.fixture
def base_url(daphne_workers):
    (url,) = daphne_workers(1)
    return url


@pytest.fixture
def browse(chromium, open_page, base_url):
    def open_(user, width=1280, lang="en", name=None):
        context = chromium.new_context(
            viewport={"width": width, "height": 900}, locale=lang, timezone_id="Europe/Madrid"
        )
        cookie_name, value = next(iter(session_cookie(user).items()))
        context.add_cookies([{"name": cookie_name, "value": value, "url": base_url}])
        page = open_page(name or f"{user.username}-{lang}-{width}", context=context)
        page.goto(base_url + "/")
        page.wait_for_function("() => window.livedash && window.livedash.charts")
        return page

    return open_


def push(manage, script):
    """Publish from another process, as an operator's script would."""
    result = manage("shell", "-c", "from dashboard.live import publish_metric\n" + script)
    assert result.returncode == 0, result.stderr


def card(name):
    return f".chart-card[data-key='{name}']"


def readout_of(name):
    """The text of a chart's readout, as a script expression."""
    return f'document.querySelector("{card(name)} .chart-readout").textContent'


def legend_names(page, name):
    return page.locator(f"{card(name)} .chart-legend:not(.chart-more-list) .legend-name").all_inner_texts()


def blocking_violations(page, context):
    results = AXE.run(page, context=context)
    found = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    return [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in found]


def test_a_metric_of_three_hosts_is_one_chart_with_a_line_and_a_legend_entry_each(
    browse, manage, alice, tmp_path
):
    # Twenty seconds of three hosts (a at 10.., b at 20.., c at 30..) and a metric without labels.
    push(
        manage,
        "import time\n"
        "start = time.time() - 20\n"
        "for i in range(5):\n"
        "    for host, base in (('a', 10), ('b', 20), ('c', 30)):\n"
        "        publish_metric('load', base + i, ts=start + i, labels={'host': host})\n"
        "    publish_metric('orders', i, ts=start + i)\n",
    )
    page = browse(alice, width=1440)
    page.wait_for_function("() => livedash.charts.seriesIds('load').length === 3")
    assert page.evaluate("livedash.charts.seriesIds('load')") == [
        'load{host="a"}',
        'load{host="b"}',
        'load{host="c"}',
    ]
    assert page.evaluate("livedash.charts.points('load', 'load{host=\"b\"}')") == 5
    page.wait_for_function("() => livedash.charts.lines('load') === 3")
    assert legend_names(page, "load") == ["host=a", "host=b", "host=c"]
    # Each entry's current value, and the head says how many series there are.
    values = page.locator(f"{card('load')} .legend-value")
    page.wait_for_function(
        "() => document.querySelector(\".chart-card[data-key='load'] .legend-value\").textContent === '14'"
    )
    assert values.all_inner_texts() == ["14", "24", "34"]
    assert page.inner_text(f"{card('load')} .chart-unit") == "3 series"
    assert page.locator(f"{card('load')} .chart-more").is_hidden()

    # A metric without labels: one line, no legend, its value in the head, as ever.
    assert page.evaluate("livedash.charts.lines('orders')") == 1
    assert page.locator(f"{card('orders')} .chart-legend").first.is_hidden()
    assert page.locator(f"{card('orders')} .chart-more").is_hidden()
    assert page.inner_text(f"{card('orders')} .chart-value") == "4"

    # Hovering lists each series' value at the cursor time, in text.
    box = page.locator(f"{card('load')} .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    readout = page.locator(f"{card('load')} .chart-readout")
    page.wait_for_function(f"() => {readout_of('load')}.includes('host=c')")
    text = readout.text_content()
    found = re.fullmatch(r"(\d\d:\d\d:\d\d) · host=a (\d+) · host=b (\d+) · host=c (\d+)", text)
    assert found, text
    a, b, c = (int(found.group(i)) for i in (2, 3, 4))
    assert (b, c) == (a + 10, a + 20)
    # The legend shows the same values while the cursor is there.
    assert values.all_inner_texts() == [str(a), str(b), str(c)]
    # The cursor leaves: the readout empties, the legend is back to current values.
    page.mouse.move(5, 5)
    page.wait_for_function(f"() => {readout_of('load')} === ''")
    assert values.all_inner_texts() == ["14", "24", "34"]

    # A fourth host pushed live from another process joins the same chart.
    page.wait_for_function("() => document.getElementById('sse-status').dataset.state === 'connected'")
    result = manage("push_metric", "load", "44", "--label", "host=d")
    assert result.returncode == 0, result.stderr
    page.wait_for_function("() => livedash.charts.lines('load') === 4")
    page.wait_for_function(
        "() => document.querySelectorAll(\".chart-card[data-key='load'] .legend-entry\").length === 4"
    )
    assert legend_names(page, "load") == ["host=a", "host=b", "host=c", "host=d"]
    assert page.locator(f"{card('load')} .legend-value").last.inner_text() == "44"
    # The text alternative names each series with its value.
    page.wait_for_function(
        "() => document.querySelector(\".chart-card[data-key='load'] .chart-plot\")"
        ".getAttribute('aria-label').includes('host=d 44')",
        timeout=10_000,
    )
    label = page.get_attribute(f"{card('load')} .chart-plot", "aria-label")
    assert "4 series" in label and "host=a 14" in label

    # CSV: a column per series, headed by its id.
    with page.expect_download() as download:
        page.click(f"{card('load')} .chart-csv")
    with open(download.value.path(), newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["time", 'load{host="a"}', 'load{host="b"}', 'load{host="c"}', 'load{host="d"}']
    assert [row[1:4] for row in rows[1:6]] == [[str(10 + i), str(20 + i), str(30 + i)] for i in range(5)]
    assert rows[-1][1:] == ["", "", "", "44"]
    assert blocking_violations(page, card("load")) == []

    # Another window: history brings all four back, by id, in the same chart.
    with page.expect_response(lambda r: "/api/metrics/history/?minutes=60" in r.url):
        page.click("[data-window='60']")
    page.wait_for_function(
        "() => livedash.charts.windowMinutes() === 60 && livedash.charts.lines('load') === 4"
    )
    assert legend_names(page, "load") == ["host=a", "host=b", "host=c", "host=d"]
    assert not [line for line in page.console_lines if line.startswith(("[pageerror]", "[error]"))]


def publish_hosts(count, now):
    """`count` hosts of `cpu_used`, web1 to webN, each with values of its own."""
    for i in range(1, count + 1):
        for step in range(4):
            publish_metric("cpu_used", 5 * i + step, ts=now - 30 + 5 * step, labels={"host": f"web{i}"})


def test_past_eight_series_the_rest_fold_into_n_more_which_lists_them(browse, alice):
    publish_hosts(11, time.time())
    page = browse(alice, width=1440)
    page.wait_for_function("() => livedash.charts.seriesIds('cpu_used').length === 11")
    page.wait_for_function("() => livedash.charts.lines('cpu_used') === 8")
    # Hosts in their numeric order, the first eight drawn and named.
    assert legend_names(page, "cpu_used") == [f"host=web{i}" for i in range(1, 9)]
    more = page.locator(f"{card('cpu_used')} .chart-more")
    assert more.is_visible()
    assert more.locator("summary").inner_text() == "3 more"
    listed = more.locator(".legend-name")
    assert listed.first.is_hidden()
    more.locator("summary").click()
    assert listed.all_inner_texts() == ["host=web9", "host=web10", "host=web11"]
    page.wait_for_function(
        "() => document.querySelectorAll(\".chart-card[data-key='cpu_used'] .chart-more .legend-value\")[2]"
        ".textContent === '58'"
    )
    assert more.locator(".legend-value").all_inner_texts() == ["48", "53", "58"]
    # Past the fourth line, lines and swatches are also dashed: never colour alone.
    styles = page.locator(f"{card('cpu_used')} .legend-swatch").evaluate_all(
        "nodes => nodes.map(n => getComputedStyle(n).borderTopStyle)"
    )
    assert styles == ["solid"] * 4 + ["dashed"] * 4
    colours = page.locator(f"{card('cpu_used')} .legend-swatch").evaluate_all(
        "nodes => nodes.map(n => getComputedStyle(n).borderTopColor)"
    )
    assert len(set(colours)) == 8
    assert blocking_violations(page, card("cpu_used")) == []


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_a_chart_of_many_series_at_every_width(browse, alice, theme):
    UserPreference.objects.update_or_create(user=alice, defaults={"theme": theme})
    now = time.time()
    publish_hosts(10, now)
    for i in range(5):
        publish_metric("orders", 3 + i, ts=now - 30 + 5 * i)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (390, 768, 1440):
        page = browse(alice, width=width, name=f"series-{theme}-{width}")
        page.wait_for_function("() => livedash.charts.lines('cpu_used') === 8")
        assert page.get_attribute("html", "data-theme") == theme
        scroll = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert scroll <= 0, f"{theme} {width}px scrolls sideways by {scroll} px"
        page.locator(f"{card('cpu_used')} .chart-more summary").click()
        box = page.locator(f"{card('cpu_used')} .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.98, box["y"] + box["height"] / 2)
        page.wait_for_function(f"() => {readout_of('cpu_used')} !== ''")
        page.locator(".charts").screenshot(path=str(SCREENSHOTS / f"series-{theme}-{width}.png"))
        if width == 1440:
            assert blocking_violations(page, ".charts") == [], f"axe on the charts, {theme}"
        page.context.close()


def test_a_series_that_stopped_reporting_is_marked_stale_in_words(browse, alice):
    now = time.time()
    publish_metric("queue_depth", 3, ts=now - 2, labels={"queue": "mail"})
    publish_metric("queue_depth", 9, ts=now - 150, labels={"queue": "sms"})
    page = browse(alice)
    page.wait_for_function("() => livedash.charts.lines('queue_depth') === 2")
    sms = page.locator(f"{card('queue_depth')} .legend-entry[data-series='queue_depth{{queue=\"sms\"}}']")
    mail = page.locator(f"{card('queue_depth')} .legend-entry[data-series='queue_depth{{queue=\"mail\"}}']")
    page.wait_for_function(
        '() => document.querySelector(".legend-entry[data-series=\'queue_depth{queue=\\"sms\\"}\']")'
        ".classList.contains('stale')"
    )
    # The words are there for screen readers (visually hidden); the value is muted and italic.
    assert sms.locator(".sr-only").evaluate("n => !n.hidden && n.textContent") == ", no recent value"
    assert sms.locator(".legend-value").evaluate("n => getComputedStyle(n).fontStyle") == "italic"
    assert mail.locator(".sr-only").evaluate("n => n.hidden")
    assert "stale" not in mail.get_attribute("class")
    assert mail.locator(".legend-value").inner_text() == "3"

"""A dashboard people built, in a real Chromium against a real web worker, with values
pushed from other processes: its panels on the grid fill from history and then live,
a variable picker changes what they show (and the address), and its owner moves,
resizes, adds and saves panels in the editor, meets a conflict when someone saved
meanwhile, and restores an old version.

Screenshots of the view and of edit mode go to test-artifacts/screenshots/.
"""

import pytest

from boards import store
from boards.models import Dashboard
from tests.e2e.conftest import ARTIFACTS
from tests.realclients import session_cookie

pytestmark = pytest.mark.slow

SCREENSHOTS = ARTIFACTS / "screenshots"

DOCUMENT = {
    "uid": "night",
    "title": "Night shift",
    "tags": ["on-call"],
    "variables": [{"name": "host", "label": "Host", "label_of": "host", "match": "load"}],
    "visibility": "everyone",
    "panels": [
        {
            "id": 1,
            "title": "Load",
            "type": "timeseries",
            "series": ['load{host="$host"}'],
            "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
        },
        {
            "id": 2,
            "title": "Orders",
            "type": "stat",
            "series": ["orders"],
            "grid": {"x": 6, "y": 0, "w": 3, "h": 2},
        },
        {
            "id": 3,
            "title": "Disk",
            "type": "gauge",
            "series": ["disk_used"],
            "unit": "%",
            "thresholds": {"warning": 80, "critical": 90},
            "grid": {"x": 9, "y": 0, "w": 3, "h": 2},
        },
        {
            "id": 4,
            "title": "Every host",
            "type": "table",
            "series": ["load"],
            "grid": {"x": 6, "y": 2, "w": 6, "h": 2},
        },
    ],
}


@pytest.fixture
def base_url(daphne_workers):
    (url,) = daphne_workers(1)
    return url


@pytest.fixture
def night(alice):
    return store.save(dict(DOCUMENT), author=store.Author(name="alice", owner=alice))


@pytest.fixture
def browse(chromium, open_page, base_url):
    def open_(user, path, width=1440, name=None):
        context = chromium.new_context(viewport={"width": width, "height": 900}, timezone_id="Europe/Madrid")
        cookie_name, value = next(iter(session_cookie(user).items()))
        context.add_cookies([{"name": cookie_name, "value": value, "url": base_url}])
        page = open_page(name or f"{user.username}-{width}", context=context)
        page.goto(base_url + path)
        page.wait_for_function("() => window.livedash && window.livedash.charts && window.livedash.board")
        return page

    return open_


def push(manage, script):
    result = manage("shell", "-c", "from dashboard.live import publish_metric\n" + script)
    assert result.returncode == 0, result.stderr


def panel(key):
    return f".grid-stack-item[gs-id='{key}'] .chart-card"


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"board-{name}.png"), full_page=True)


def test_a_dashboard_fills_its_panels_live_and_follows_its_variable(browse, manage, alice, night):
    push(
        manage,
        "import time\n"
        "start = time.time() - 20\n"
        "for i in range(5):\n"
        "    publish_metric('load', 1 + i, ts=start + i, labels={'host': 'a'})\n"
        "    publish_metric('load', 10 + i, ts=start + i, labels={'host': 'b'})\n"
        "    publish_metric('disk_used', 85, ts=start + i)\n",
    )
    page = browse(alice, "/d/night/")
    # The picker has the label's values; the first is chosen and written in the address.
    page.wait_for_function("() => document.querySelectorAll('#var-host option').length === 2")
    assert page.locator("#var-host option").all_inner_texts() == ["a", "b"]
    page.wait_for_function("() => livedash.charts.seriesIds('panel-1').length === 1")
    assert page.evaluate("livedash.charts.seriesIds('panel-1')") == ['load{host="a"}']
    assert page.evaluate("livedash.charts.points('panel-1')") == 5
    assert "var-host=a" in page.url
    # The table panel takes every host; the gauge shows its value against 100 %.
    page.wait_for_function(f'() => document.querySelectorAll("{panel("panel-4")} tbody tr").length === 2')
    assert page.locator(f"{panel('panel-4')} tbody th").all_inner_texts() == ["host=a", "host=b"]
    page.wait_for_function(
        f"() => document.querySelector(\"{panel('panel-3')} .chart-value\").textContent === '85.0'"
    )
    assert page.get_attribute(f"{panel('panel-3')} .chart-gauge", "aria-valuenow") == "85"
    assert page.get_attribute(f"{panel('panel-3')}", "data-level") == "warning"

    # A live value from another process reaches its panel over the stream.
    page.wait_for_function("() => livedash.stream.isOpen()")
    push(manage, "publish_metric('orders', 42)")
    page.wait_for_function(
        f"() => document.querySelector(\"{panel('panel-2')} .chart-value\").textContent === '42'"
    )
    screenshot(page, "view-1440")

    # Another host: the panel shows its series only, the address says so, and live values follow.
    # The stream is opened again for the panels' series with the new value (history too).
    with page.expect_request(lambda r: "/events/" in r.url and "match=load%7Bhost%3D%22b%22%7D" in r.url):
        page.select_option("#var-host", "b")
    page.wait_for_function(
        "() => JSON.stringify(livedash.charts.seriesIds('panel-1')) === JSON.stringify(['load{host=\"b\"}'])"
    )
    assert page.evaluate("livedash.charts.series('panel-1')[1]") == [10, 11, 12, 13, 14]
    assert "var-host=b" in page.url
    page.wait_for_function("() => livedash.stream.isOpen()")
    push(
        manage,
        "publish_metric('load', 99, labels={'host': 'b'})\npublish_metric('load', 55, labels={'host': 'a'})",
    )
    page.wait_for_function("() => livedash.charts.series('panel-1')[1].includes(99)")
    assert 55 not in page.evaluate("livedash.charts.series('panel-1')[1]")
    # Reloaded, the address keeps the choice.
    page.reload()
    page.wait_for_function("() => livedash.charts.seriesIds('panel-1').length === 1")
    assert page.evaluate("livedash.charts.seriesIds('panel-1')") == ['load{host="b"}']
    assert page.eval_on_selector("#var-host", "node => node.value") == "b"
    # Nothing the page does (the grid places panels with style properties) trips the policy.
    assert not [line for line in page.console_lines if "Content Security Policy" in line]
    narrow = browse(alice, "/d/night/", width=390, name="alice-390")
    narrow.wait_for_function("() => livedash.charts.seriesIds('panel-1').length === 1")
    screenshot(narrow, "view-390")

    # The list links to it; following the link opens it.
    narrow.goto(page.url.split("/d/")[0] + "/dashboards/?q=night")
    assert narrow.locator("table.board-table tbody tr").count() == 1
    screenshot(narrow, "list-390")
    narrow.click("text=Night shift")
    narrow.wait_for_function("() => window.livedash && window.livedash.board")
    assert narrow.url.split("?")[0].endswith("/d/night/")


def test_the_owner_moves_resizes_adds_and_saves_panels_then_restores_a_version(browse, alice, bob, night):
    page = browse(alice, "/d/night/")
    page.wait_for_function("() => livedash.charts.keys().length === 4")
    assert page.locator("#editor-bar").is_hidden()
    page.click("#edit-button")
    assert page.locator("#editor-bar").is_visible()

    # Resize the load panel to the full width by its corner handle.
    # The handle shows while the pointer is on the panel.
    page.hover(".grid-stack-item[gs-id='panel-1'] .chart-title")
    handle = page.locator(".grid-stack-item[gs-id='panel-1'] .ui-resizable-se")
    handle.wait_for(state="visible")
    box = handle.bounding_box()
    grid = page.locator("#board-grid").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(grid["x"] + grid["width"] - 4, box["y"] + box["height"] / 2, steps=12)
    page.mouse.up()
    page.wait_for_function("() => livedash.board.layout()['1'].w === 12")

    # Move the orders panel by its head, three columns to the right.
    before = page.evaluate("livedash.board.layout()['2']")
    head = page.locator(".grid-stack-item[gs-id='panel-2'] .chart-title").bounding_box()
    column = grid["width"] / 12
    page.mouse.move(head["x"] + 5, head["y"] + 5)
    page.mouse.down()
    page.mouse.move(head["x"] + 5 + 3 * column, head["y"] + 5, steps=12)
    page.mouse.up()
    page.wait_for_function(f"() => livedash.board.layout()['2'].x === {before['x'] + 3}")

    # Add a panel through the dialog.
    page.click("#add-panel")
    page.fill("#panel-title", "Errors")
    page.select_option("#panel-type", "stat")
    page.fill("#panel-series", "errors_total")
    page.click("#panel-form button[value='apply']")
    page.wait_for_function("() => livedash.charts.keys().includes('panel-5')")
    screenshot(page, "edit-1440")

    # Remove the table panel; undo brings it back; remove it again.
    page.click(".grid-stack-item[gs-id='panel-4'] .panel-edit")
    page.click("#panel-remove")
    page.wait_for_function("() => !livedash.charts.keys().includes('panel-4')")
    page.click("#undo-edit")
    page.wait_for_function("() => livedash.charts.keys().includes('panel-4')")
    page.click(".grid-stack-item[gs-id='panel-4'] .panel-edit")
    page.click("#panel-remove")
    page.wait_for_function("() => !livedash.charts.keys().includes('panel-4')")
    assert not [line for line in page.console_lines if "Content Security Policy" in line]
    page.fill("#save-message", "wider load, errors")
    page.click("#save-board")
    page.wait_for_function("() => !document.body.classList.contains('editing')")

    stored = Dashboard.objects.get(uid="night")
    assert stored.version == 2
    assert stored.versions.get(version=2).message == "wider load, errors"
    panels = {p["id"]: p for p in stored.document["panels"]}
    assert sorted(panels) == [1, 2, 3, 5]
    assert panels[1]["grid"]["w"] == 12
    assert panels[2]["grid"]["x"] == before["x"] + 3
    assert panels[5] == {
        "id": 5,
        "title": "Errors",
        "type": "stat",
        "series": ["errors_total"],
        "grid": panels[5]["grid"],
    }
    # The other panels made room: none overlaps another.
    cells = [
        (x, y)
        for p in panels.values()
        for x in range(p["grid"]["x"], p["grid"]["x"] + p["grid"]["w"])
        for y in range(p["grid"]["y"], p["grid"]["y"] + p["grid"]["h"])
    ]
    assert len(cells) == len(set(cells))

    # Someone else saves meanwhile: saving again is refused with a clear message, edits kept.
    page.wait_for_function("() => livedash.stream.isOpen()")
    other = {**stored.export(), "title": "Night shift (bob)"}
    store.save(other, author=store.Author(name="bob", owner=bob), expected_version=2)
    page.click("#edit-button")
    page.click(".grid-stack-item[gs-id='panel-5'] .panel-edit")
    page.fill("#panel-title", "Errors now")
    page.click("#panel-form button[value='apply']")
    page.click("#save-board")
    page.wait_for_function("() => document.querySelector('#editor-status').dataset.level === 'error'")
    assert "Someone saved this dashboard after you opened it" in page.inner_text("#editor-status")
    assert "stored version is 3" in page.inner_text("#editor-status")
    assert page.inner_text(".grid-stack-item[gs-id='panel-5'] .chart-title") == "Errors now"
    assert Dashboard.objects.get(uid="night").version == 3
    # The page heard of bob's save.
    page.wait_for_function("() => document.querySelector('#board-notice').textContent.includes('bob')")

    # Version history, and a restore of version 1 as version 4.
    page.reload()
    page.wait_for_function("() => livedash.charts.keys().includes('panel-5')")
    page.click("#versions-button")
    page.wait_for_function("() => document.querySelectorAll('#versions-list li').length === 3")
    page.click("#versions-list li[data-version='1'] button")
    page.wait_for_function("() => livedash.charts.keys().includes('panel-4')")
    assert page.evaluate("livedash.charts.keys()") == ["panel-1", "panel-2", "panel-3", "panel-4"]
    restored = Dashboard.objects.get(uid="night")
    assert restored.version == 4
    assert restored.document["panels"] == DOCUMENT["panels"]
    assert restored.versions.get(version=4).author == "alice"

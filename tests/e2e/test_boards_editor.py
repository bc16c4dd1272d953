"""The dashboard editor's second half, in a real Chromium against a real web worker: the
panel dialog picks series from what exists with a live preview, panels are duplicated
and moved and resized with the keyboard, a dashboard is exported, imported under
another uid (a bad file refused with the API's own words) and saved as a copy; a save
by someone else while the page reads history again still reaches the page; axe finds
no serious or critical violation on the list, the view and edit mode.

Screenshots at 390, 768 and 1440 px go to test-artifacts/screenshots/.
"""

import json
import re
import time

import pytest
from axe_playwright_python.sync_playwright import Axe

from boards import store
from boards.models import Dashboard
from tests.e2e import test_boards_page as boards_page
from tests.e2e.test_boards_page import DOCUMENT, push, screenshot

# The fixtures of the editor's first half: a worker, a logged-in Chromium, the "night" dashboard.
base_url = boards_page.base_url
browse = boards_page.browse
night = boards_page.night

pytestmark = pytest.mark.slow

AXE = Axe()
BLOCKING = ("serious", "critical")


def blocking_violations(page, context=None):
    results = AXE.run(page, context=context)
    found = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
    return [(v["id"], [node["target"] for node in v["nodes"]][:5]) for v in found]


def edit(page):
    page.wait_for_function("() => livedash.charts.keys().length === 4")
    page.click("#edit-button")
    page.wait_for_function("() => document.body.classList.contains('editing')")


def layout(page, panel):
    return page.evaluate(f"livedash.board.layout()['{panel}']")


def test_the_panel_dialog_picks_series_from_what_exists_with_a_preview(browse, manage, alice, night):
    push(
        manage,
        "publish_metric('load', 1, labels={'host': 'a'})\n"
        "publish_metric('load', 2, labels={'host': 'b'})\n"
        "publish_metric('load', 3, labels={'host': 'c'})\n"
        "publish_metric('disk_used', 50)\n",
    )
    page = browse(alice, "/d/night/")
    edit(page)
    page.click("#add-panel")
    # The metrics that exist, then the labels of the one chosen, with the dashboard's variable.
    page.wait_for_function("() => document.querySelectorAll('#pick-metric option').length >= 3")
    assert {"load", "disk_used"} <= set(page.locator("#pick-metric option").all_inner_texts())
    page.select_option("#pick-metric", "load")
    page.wait_for_selector("#pick-label-host")
    assert page.locator("#pick-label-host option").all_inner_texts() == ["$host", "a", "b", "c"]
    page.wait_for_function("() => document.querySelector('#pick-preview').dataset.count === '3'")
    assert page.inner_text("#pick-selector") == "load"
    assert 'load{host="a"}' in page.inner_text("#pick-preview")
    # Two hosts: the selector and its preview follow.
    page.select_option("#pick-label-host", ["a", "c"])
    assert page.inner_text("#pick-selector") == 'load{host=~"a|c"}'
    page.wait_for_function("() => document.querySelector('#pick-preview').dataset.count === '2'")
    assert page.inner_text("#pick-preview") == '2 series match now: load{host="a"}, load{host="c"}'
    screenshot(page, "picker-1440")
    page.click("#pick-add")
    assert page.input_value("#panel-series") == 'load{host=~"a|c"}'
    # Typed selectors are previewed too, with the variable's value in them; a bad one says why.
    page.fill("#panel-series", 'load{host="b"}\nload{host="$host"}')
    page.wait_for_function("() => document.querySelector('#panel-preview').textContent.includes('\"b\"')")
    assert page.inner_text("#panel-preview") == '2 series match now: load{host="a"}, load{host="b"}'
    page.fill("#panel-series", "load{host=")
    page.wait_for_function("() => document.querySelector('#panel-preview').dataset.level === 'error'")
    assert page.inner_text("#panel-preview").startswith("Not a selector: ")
    page.fill("#panel-series", 'load{host=~"a|c"}')
    page.fill("#panel-title", "Two hosts")
    page.click("#panel-form button[value='apply']")
    page.wait_for_function("() => livedash.charts.seriesIds('panel-5').length === 2")
    assert sorted(page.evaluate("livedash.charts.seriesIds('panel-5')")) == [
        'load{host="a"}',
        'load{host="c"}',
    ]


def test_panels_are_duplicated_moved_and_resized_with_the_keyboard(browse, alice, night):
    page = browse(alice, "/d/night/")
    edit(page)
    # Duplicate the orders panel: the same panel with the next id, below it.
    page.click(".grid-stack-item[gs-id='panel-2'] .panel-edit")
    page.click("#panel-duplicate")
    page.wait_for_function("() => livedash.charts.keys().includes('panel-5')")
    assert page.inner_text(".grid-stack-item[gs-id='panel-5'] .chart-title") == "Orders"

    # The keyboard: Tab reaches the Move handle; arrows move, Shift and arrows resize.
    start = layout(page, "3")
    handle = page.locator(".grid-stack-item[gs-id='panel-3'] .panel-move")
    assert handle.get_attribute("aria-label") == "Move or resize panel Disk"
    handle.focus()
    page.keyboard.press("ArrowLeft")
    assert layout(page, "3")["x"] == start["x"] - 1
    assert "Column " in page.inner_text("#editor-status")
    page.keyboard.press("Shift+ArrowDown")
    assert layout(page, "3")["h"] == start["h"] + 1
    page.keyboard.press("Shift+ArrowLeft")
    assert layout(page, "3")["w"] == start["w"] - 1
    # Down goes past the panel below (the grid packs panels upwards), up comes back.
    page.keyboard.press("ArrowDown")
    moved = layout(page, "3")
    assert moved["y"] > start["y"]
    page.keyboard.press("ArrowUp")
    assert layout(page, "3")["y"] < moved["y"]
    # Each key press is a change undo takes back.
    page.click("#undo-edit")
    assert layout(page, "3")["y"] == moved["y"]
    handle.focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("End")  # not ours: nothing moves
    final = layout(page, "3")
    screenshot(page, "keyboard-1440")
    page.click("#save-board")
    page.wait_for_function("() => !document.body.classList.contains('editing')")
    panels = {p["id"]: p for p in Dashboard.objects.get(uid="night").document["panels"]}
    assert panels[3]["grid"] == final
    assert panels[5] == {**panels[2], "id": 5, "grid": panels[5]["grid"]}
    assert panels[5]["grid"]["w"] == panels[2]["grid"]["w"]


def test_export_import_under_another_uid_and_save_a_copy(browse, alice, night, tmp_path):
    page = browse(alice, "/d/night/")
    page.wait_for_function("() => livedash.charts.keys().length === 4")
    with page.expect_download() as download:
        page.click("#export-board")
    exported = json.loads(download.value.path().read_text())
    assert download.value.suggested_filename == "night.json"
    assert exported == Dashboard.objects.get(uid="night").export()

    # A file the API refuses: the dialog says what the API says, nothing is stored.
    bad = {**exported, "uid": "night-bad"}
    bad["panels"] = [dict(exported["panels"][0], grid={"x": 4, "y": 0, "w": 9, "h": 4})]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "night.json").write_text(json.dumps(exported))
    (tmp_path / "broken.json").write_text("{not json")
    page.click("#import-board")
    page.set_input_files("#import-file", str(tmp_path / "broken.json"))
    page.wait_for_function("() => document.querySelector('#copy-status').dataset.level === 'error'")
    assert page.inner_text("#copy-status").startswith("Not JSON")
    page.set_input_files("#import-file", str(tmp_path / "bad.json"))
    page.wait_for_function("() => document.querySelector('#copy-uid').value === 'night-bad'")
    page.click("#copy-save")
    page.wait_for_function("() => document.querySelector('#copy-status').textContent.includes('panels[0]')")
    assert page.inner_text("#copy-status") == (
        "Not saved: panels[0].grid.w: x + w must be at most 12 columns, got 4 + 9"
    )
    assert not Dashboard.objects.filter(uid="night-bad").exists()
    screenshot(page, "import-1440")

    # The exported file under another uid: the same dashboard.
    page.set_input_files("#import-file", str(tmp_path / "night.json"))
    page.wait_for_function("() => document.querySelector('#copy-uid').value === 'night'")
    page.fill("#copy-uid", "night-2")
    with page.expect_navigation():
        page.click("#copy-save")
    page.wait_for_function("() => window.livedash && window.livedash.board")
    assert page.url.split("?")[0].endswith("/d/night-2/")
    imported = Dashboard.objects.get(uid="night-2")
    assert imported.export() == {**exported, "uid": "night-2", "version": 1}
    assert imported.owner == alice

    # Save a copy of a dashboard that follows a file (no Edit): a private one of alice's.
    Dashboard.objects.filter(uid="night").update(provisioned_from="night.json")
    page.goto(page.url.split("/d/")[0] + "/d/night/")
    page.wait_for_function("() => livedash.charts.keys().length === 4")
    assert page.locator("#edit-button").count() == 0
    page.click("#copy-board")
    assert page.input_value("#copy-uid") == "night-copy"
    assert page.input_value("#copy-title") == "Copy of Night shift"
    with page.expect_navigation():
        page.click("#copy-save")
    page.wait_for_function("() => window.livedash && window.livedash.board")
    copy = Dashboard.objects.get(uid="night-copy")
    assert (copy.owner, copy.visibility, copy.title) == (alice, "private", "Copy of Night shift")
    assert copy.document["panels"] == DOCUMENT["panels"]
    assert page.locator("#edit-button").count() == 1


def test_a_save_while_the_page_reads_history_again_is_not_lost(browse, alice, bob, night):
    page = browse(alice, "/d/night/")
    page.wait_for_function("() => livedash.charts.keys().length === 4 && livedash.stream.isOpen()")
    held = []
    page.route(re.compile(r"/api/metrics/history/"), lambda route: held.append(route))
    with page.expect_request(lambda request: "/api/metrics/history/" in request.url):
        page.evaluate("() => { livedash.charts.reload(); }")  # not awaited: its fetch is held
    deadline = time.monotonic() + 15
    while not held and time.monotonic() < deadline:
        page.evaluate("0")  # lets Playwright hand the request to the route
    assert held, "the history request never reached the route"
    assert not page.evaluate("livedash.stream.isOpen()")
    # bob saves while the stream is closed; history then ends after his event.
    stored = Dashboard.objects.get(uid="night")
    store.save(
        {**stored.export(), "title": "Night (bob)"}, author=store.Author(name="bob"), expected_version=1
    )
    held[0].continue_()
    page.wait_for_function("() => document.querySelector('#board-notice').textContent.includes('bob')")
    assert page.inner_text("#board-notice") == "updated by bob: reload to see it"


def test_axe_finds_nothing_serious_on_the_list_the_view_and_edit_mode(browse, alice, night):
    for width in (390, 768, 1440):
        page = browse(alice, "/d/night/", width=width, name=f"alice-axe-{width}")
        page.wait_for_function("() => livedash.charts.keys().length === 4")
        assert blocking_violations(page) == [], f"the view at {width}"
        screenshot(page, f"view-{width}")
        if width >= 700:  # one column below: the editor asks for a wider window
            edit(page)
            assert blocking_violations(page) == [], f"edit mode at {width}"
            screenshot(page, f"edit-{width}")
            page.click(".grid-stack-item[gs-id='panel-1'] .panel-edit")
            page.select_option("#pick-metric", "")
            assert blocking_violations(page, "#panel-dialog") == [], f"the panel dialog at {width}"
            screenshot(page, f"panel-dialog-{width}")
            page.keyboard.press("Escape")
            page.click("#copy-board")
            assert blocking_violations(page, "#copy-dialog") == [], f"the copy dialog at {width}"
            page.keyboard.press("Escape")
            page.click("#versions-button")
            page.wait_for_function("() => document.querySelectorAll('#versions-list li').length === 1")
            assert blocking_violations(page, "#versions-dialog") == [], f"the versions dialog at {width}"
            page.keyboard.press("Escape")
        page.goto(page.url.split("/d/")[0] + "/dashboards/")
        page.wait_for_selector("table.board-table")
        assert blocking_violations(page) == [], f"the list at {width}"
        screenshot(page, f"list-{width}")

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boards import spec
from boards.tests.documents import board


def refusal(document):
    with pytest.raises(spec.InvalidDashboard) as caught:
        spec.validate(document)
    return str(caught.value)


def test_a_valid_document_comes_back_unchanged_in_the_documented_order():
    document = board(version=3)
    shuffled = json.loads(json.dumps(dict(reversed(list(document.items())))))
    shuffled["panels"][0] = dict(reversed(list(shuffled["panels"][0].items())))
    checked = spec.validate(shuffled)
    assert checked == document
    assert list(checked) == [key for key in spec.DOCUMENT_KEYS if key in document]
    assert list(checked["panels"][0]) == list(spec.PANEL_KEYS)
    assert list(checked["panels"][0]["grid"]) == ["x", "y", "w", "h"]


def test_the_smallest_dashboard_is_a_uid_a_title_and_panels():
    assert spec.validate({"uid": "a", "title": "A", "panels": []}) == {"uid": "a", "title": "A", "panels": []}


def with_panel(index, **changes):
    document = board()
    document["panels"][index].update(changes)
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (with_panel(2, grid={"x": 4, "y": 0, "w": 9, "h": 2}), "panels[2].grid.w: x + w must be at most 12"),
        (with_panel(1, grid={"x": 0, "y": 0, "w": 0, "h": 2}), "panels[1].grid.w: must be at least 1"),
        (with_panel(1, grid={"x": 0, "y": 0, "w": 2, "h": -1}), "panels[1].grid.h: must be at least 1"),
        (with_panel(0, grid={"x": 0, "y": 0, "w": 2}), "panels[0].grid.h: is required"),
        (with_panel(0, grid={"x": 1.5, "y": 0, "w": 2, "h": 1}), "panels[0].grid.x: must be an integer"),
        (with_panel(1, type="pie"), "panels[1].type: must be one of timeseries, stat, gauge, table"),
        (with_panel(2, series=['cpu{host=~"("}']), "panels[2].series[0]:"),
        (with_panel(2, series=["cpu{"]), "panels[2].series[0]:"),
        (with_panel(0, series=['cpu{host="$nope"}']), "panels[0].series[0]: $nope is not a variable"),
        (with_panel(1, series=[]), "panels[1].series: must have at least one selector"),
        (with_panel(1, id=1), "panels[1].id: repeats the panel id 1"),
        (with_panel(1, colour="red"), "panels[1].colour: unknown key"),
        (
            with_panel(0, thresholds={"warning": "high"}),
            "panels[0].thresholds.warning: must be a finite number",
        ),
        (with_panel(0, decimals=True), "panels[0].decimals: must be an integer"),
        (board(uid="no spaces"), "uid: must be letters, digits, - and _ only"),
        (board(title=""), "title: must not be empty"),
        (board(window="1w"), "window: must be a number and a unit m, h or d"),
        (board(window="31d"), "window: must be at most 30 days"),
        (board(tags=["a", "a"]), "tags[1]: repeats the tag 'a'"),
        (board(visibility="public"), "visibility: must be 'private', 'everyone'"),
        (board(visibility={"groups": []}), "visibility.groups: must name at least one group"),
        (board(version=0), "version: must be at least 1"),
        (board(variables=[{"name": "1x", "label_of": "host"}]), "variables[0].name: must match"),
        (
            board(variables=[{"name": "h", "label_of": "__name"}]),
            "variables[0].label_of: label name must not start",
        ),
        (
            board(variables=[{"name": "h", "label_of": "host", "match": 'cpu{h="$h"}'}]),
            "variables[0].match: $h is not",
        ),
        (board(panels={"id": 1}), "panels: must be a list, got an object"),
        ([], "a dashboard must be a JSON object, got a list"),
    ],
)
def test_a_refusal_names_the_panel_and_the_field(document, message):
    assert refusal(document).startswith(message)


def test_a_variable_stands_anywhere_a_value_or_a_name_does():
    document = board(variables=[{"name": "metric", "label_of": "host"}])
    document["panels"] = [
        {
            "id": 1,
            "title": "",
            "type": "stat",
            "series": ['$metric{host="$metric"}'],
            "grid": {"x": 0, "y": 0, "w": 1, "h": 1},
        }
    ]
    assert spec.validate(document)["panels"][0]["series"] == ['$metric{host="$metric"}']


def test_the_shipped_dashboards_are_valid():
    from django.conf import settings

    from boards.provisioning import read_document

    uids = set()
    for path in sorted(settings.DASHBOARDS_DIR.iterdir()):
        uids.add(spec.validate(read_document(path))["uid"])
    assert uids == {"host-overview", "livedash", "django-app"}


def test_a_document_past_the_size_limit_is_refused():
    document = board()
    panel = document["panels"][1]
    document["panels"] = [
        {**panel, "id": index + 1, "title": "x" * 200, "series": [f'm{{a="{"v" * 200}"}}' for n in range(32)]}
        for index in range(200)
    ]
    assert refusal(document).startswith("a dashboard must be at most 1048576 bytes of JSON")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def replace_at(document, path, value):
    """`document` with the value at `path` (keys and indexes, as far as they reach) replaced."""
    target = document
    for step in path[:-1]:
        try:
            target = target[step % len(target)] if isinstance(target, list) else target[step]
        except (KeyError, IndexError, TypeError, ZeroDivisionError):
            return document
    last = path[-1]
    if isinstance(target, list) and target:
        target[last % len(target) if isinstance(last, int) else 0] = value
    elif isinstance(target, dict):
        target[last] = value
    return document


PATHS = st.lists(
    st.sampled_from(
        [*spec.DOCUMENT_KEYS, *spec.PANEL_KEYS, *spec.VARIABLE_KEYS, "x", "w", "groups", 0, 1, 2]
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(path=PATHS, value=json_values)
def test_whatever_a_field_holds_the_answer_is_the_document_or_a_named_refusal(path, value):
    document = replace_at(board(), path, value)
    try:
        checked = spec.validate(document)
    except spec.InvalidDashboard as exc:
        assert str(exc)
    else:
        assert checked == document


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_any_json_at_all_is_a_dashboard_or_a_named_refusal(value):
    try:
        spec.validate(value)
    except spec.InvalidDashboard as exc:
        assert str(exc)

"""The `metrics` events' shapes, read back the same whether stored before labels or after."""

import math

import pytest

from dashboard import frames

NEW_METRIC = frames.metric("latency", 0.25, 100.0, {"region": "eu", "service": "checkout"})
OLD_METRIC = {"name": "orders", "value": 7, "ts": 101.0}  # stored before labels
NEW_FRAME = frames.frame(3, 102.0, {"cpu": 12.5, "memory": 40}, ["cpu"], host="web1")
OLD_FRAME = {"seq": 2, "ts": 99.0, "values": {"cpu": 11.0}, "firing": []}  # before hosts


def test_a_metric_event_names_its_series():
    assert NEW_METRIC == {
        "name": "latency",
        "labels": {"region": "eu", "service": "checkout"},
        "series": 'latency{region="eu",service="checkout"}',
        "value": 0.25,
        "ts": 100.0,
    }
    assert frames.metric("orders", 1, 5.0) == {
        "name": "orders",
        "labels": {},
        "series": "orders",
        "value": 1,
        "ts": 5.0,
    }


def test_a_frame_names_its_host_and_keys_values_by_metric_name():
    assert NEW_FRAME == {
        "seq": 3,
        "ts": 102.0,
        "values": {"cpu": 12.5, "memory": 40},
        "firing": ["cpu"],
        "host": "web1",
    }


def test_points_of_reads_every_shape_as_series():
    assert list(frames.points_of("metric", NEW_METRIC)) == [
        ('latency{region="eu",service="checkout"}', "latency", NEW_METRIC["labels"], 100.0, 0.25)
    ]
    assert list(frames.points_of("metric", OLD_METRIC)) == [("orders", "orders", {}, 101.0, 7)]
    web1 = {"host": "web1"}
    assert list(frames.points_of("frame", NEW_FRAME)) == [
        ('cpu{host="web1"}', "cpu", web1, 102.0, 12.5),
        ('memory{host="web1"}', "memory", web1, 102.0, 40),
    ]
    assert list(frames.points_of("frame", OLD_FRAME)) == [("cpu", "cpu", {}, 99.0, 11.0)]
    assert list(frames.points_of("metric-config", {"key": "cpu"})) == []


def test_a_host_that_needs_escaping_is_escaped_in_the_ids():
    frame = frames.frame(1, 1.0, {"cpu": 1}, host='a"b')
    assert [point[0] for point in frames.points_of("frame", frame)] == ['cpu{host="a\\"b"}']


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("metric", None),
        ("metric", []),
        ("metric", {"name": "x", "value": 1}),
        ("metric", {"name": "x", "value": 1, "ts": math.nan}),
        ("metric", {"name": "x", "value": True, "ts": 1}),
        ("metric", {"name": "x", "value": math.inf, "ts": 1}),
        ("metric", {"name": 3, "value": 1, "ts": 1}),
        ("metric", {"value": 1, "ts": 1}),
        ("frame", {"ts": 1, "values": [1, 2]}),
        ("frame", {"ts": "1", "values": {"cpu": 1}}),
        ("frame", {"ts": 1, "values": {"cpu": "1", "mem": None}}),
    ],
)
def test_points_of_skips_whatever_is_malformed(event_type, data):
    assert list(frames.points_of(event_type, data)) == []


def test_points_of_without_a_stored_id_formats_one():
    data = {"name": "x", "labels": {"b": "2", "a": "1"}, "value": 1, "ts": 1.0}
    [(series, *_rest)] = frames.points_of("metric", data)
    assert series == 'x{a="1",b="2"}'
    data = {"name": "x", "labels": {"a": 1}, "value": 1, "ts": 1.0}
    assert list(frames.points_of("metric", data)) == []


def test_latest_values_keeps_frames_by_name_and_metrics_by_series():
    newest_first = [
        ("metric", frames.metric("cpu", 99, 104.0, {"host": "web2"})),
        ("metric", frames.metric("orders", 8, 103.0)),
        ("metric", frames.metric("orders", 7, 102.5)),
        ("frame", NEW_FRAME),
        ("metric", frames.metric("queue", 1, 50.0)),  # before the newest frame: not read
    ]
    values, ts = frames.latest_values(newest_first)
    assert values == {'cpu{host="web2"}': 99, "orders": 8, "cpu": 12.5, "memory": 40}
    assert ts == 104.0
    assert frames.latest_values([]) == ({}, None)


def selection(*texts):
    from dashboard import selectors

    return selectors.selection(texts)


def test_select_keeps_a_wanted_metric_whole_and_drops_the_rest():
    assert frames.select(frames.METRIC, NEW_METRIC, selection('latency{region="eu"}')) is NEW_METRIC
    assert frames.select(frames.METRIC, NEW_METRIC, selection('latency{region="us"}')) is None
    assert frames.select(frames.METRIC, OLD_METRIC, selection("orders")) is OLD_METRIC


def test_select_trims_a_frame_to_its_wanted_values():
    trimmed = frames.select(frames.FRAME, NEW_FRAME, selection('memory{host="web1"}'))
    assert trimmed["values"] == {"memory": 40}
    assert trimmed["firing"] == []  # cpu's alert is not this selection's
    assert trimmed["host"] == "web1" and trimmed["seq"] == 3
    assert NEW_FRAME["values"] == {"cpu": 12.5, "memory": 40}  # the shared event is untouched
    assert frames.select(frames.FRAME, NEW_FRAME, selection('{host="web1"}')) is NEW_FRAME
    assert frames.select(frames.FRAME, NEW_FRAME, selection('{host="web2"}')) is None
    # Frames stored before hosts were named are the bare names' series.
    assert frames.select(frames.FRAME, OLD_FRAME, selection("cpu")) is OLD_FRAME


def test_select_passes_notes_and_drops_what_it_cannot_read():
    note = {"key": "cpu"}
    assert frames.select(frames.CONFIG, note, selection("mem")) is note
    assert frames.select(frames.METRIC, {"name": "x"}, selection("x")) is None
    assert frames.select(frames.FRAME, None, selection("x")) is None
    assert frames.select_json(frames.METRIC, "not json", selection("x")) is None

"""The live series index in real Redis: what publishing records, the cardinality limits,
expiry, and the rebuild from storage after Redis lost the index."""

import threading
import time

import pytest
from django.test import override_settings

from dashboard import rollups, selectors, series, seriesindex, telemetry
from dashboard.live import publish_frame, publish_metric, publish_metrics
from dashboard.models import Series
from dashboard.redis import get_sync_client
from dashboard.storage import retention_seconds
from dashboard.stream.channels import METRICS_CHANNEL


def point(name, labels, value, ts=None):
    labels = series.validate_labels(labels)
    return (series.format_id(name, labels), name, labels, time.time() if ts is None else ts, value)


def ids(found):
    return [entry["id"] for entry in found]


def wipe_index():
    """What a Redis restart does to the index (this run's keys only)."""
    client = get_sync_client()
    keys = list(client.scan_iter(match=seriesindex.key("series", "*"), count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def index(transactional_db, redis_url):
    return seriesindex


def test_publishing_records_series_labels_and_the_newest_value(index):
    now = time.time()
    publish_metric("orders", 3, ts=now - 5)
    publish_metric("orders", 4, ts=now - 10)  # late: not the last value
    publish_metric("cpu", 1.5, ts=now, labels={"host": "a"})
    publish_metrics([("cpu", 2.5, now, {"host": "b"}), ("cpu", 2.0, now - 1, {"host": "b"})])

    found, truncated = index.find()

    assert truncated is False
    assert found == [
        {"id": 'cpu{host="a"}', "name": "cpu", "labels": {"host": "a"}, "last": [now, 1.5]},
        {"id": 'cpu{host="b"}', "name": "cpu", "labels": {"host": "b"}, "last": [now, 2.5]},
        {"id": "orders", "name": "orders", "labels": {}, "last": [now - 5, 3]},
    ]


def test_frames_are_series_of_the_collector_host(index):
    now = time.time()
    publish_frame(1, now, {"cpu": 12.5, "memory": 40}, host="web1")
    found, _ = index.find()
    assert {entry["id"]: entry["last"] for entry in found} == {
        'cpu{host="web1"}': [now, 12.5],
        'memory{host="web1"}': [now, 40],
    }
    assert found[0]["labels"] == {"host": "web1"}


def test_selectors_narrow_by_name_and_labels(index):
    index.admit(
        [point("cpu", {"host": h, "dc": dc}, 1) for h, dc in (("a", "eu"), ("b", "eu"), ("c", "us"))]
        + [point("mem", {"host": "a", "dc": "eu"}, 2)]
    )
    eu_cpu = selectors.selection(['cpu{dc="eu"}'])
    assert ids(index.find(eu_cpu)[0]) == ['cpu{dc="eu",host="a"}', 'cpu{dc="eu",host="b"}']
    by_label = selectors.selection(['{host=~"a|c"}'])
    assert ids(index.find(by_label)[0]) == [
        'cpu{dc="eu",host="a"}',
        'cpu{dc="us",host="c"}',
        'mem{dc="eu",host="a"}',
    ]
    assert index.label_values("host") == ["a", "b", "c"]
    assert index.label_values("dc", selectors.selection(['{host="c"}'])) == ["us"]
    assert index.label_values("__name__") == ["cpu", "mem"]
    assert index.label_values("nope") == []


def test_an_answer_past_the_limit_says_truncated(index):
    index.admit([point("cpu", {"host": f"h{i}"}, i) for i in range(5)])
    found, truncated = index.find(limit=3)
    assert truncated is True
    assert ids(found) == ['cpu{host="h0"}', 'cpu{host="h1"}', 'cpu{host="h2"}']


@override_settings(MAX_SERIES_PER_METRIC=3)
def test_a_batch_past_the_per_metric_limit_is_refused_whole(index):
    index.admit([point("cpu", {"host": f"h{i}"}, i) for i in range(2)])
    with pytest.raises(seriesindex.TooManySeries, match="MAX_SERIES_PER_METRIC") as refused:
        index.admit(
            [point("cpu", {"host": "h0"}, 9), point("cpu", {"host": "x"}, 1), point("cpu", {"host": "y"}, 1)]
        )
    assert isinstance(refused.value, ValueError)
    found, _ = index.find()
    # Nothing of the refused batch: no new series, no new last value.
    assert {entry["id"]: entry["last"][1] for entry in found} == {'cpu{host="h0"}': 0, 'cpu{host="h1"}': 1}
    # Existing series keep taking points; other names have their own budget.
    index.admit([point("cpu", {"host": "h0"}, 7), point("cpu", {"host": "z"}, 1)])
    index.admit([point("mem", {"host": f"h{i}"}, i) for i in range(3)])
    assert len(index.find()[0]) == 6


@override_settings(MAX_SERIES=4)
def test_publishing_past_max_series_raises_value_error_and_publishes_nothing(index):
    from dashboard.storage import DashboardRedisStorage

    publish_metrics([("a", 1, None), ("b", 1, None), ("c", 1, None)])
    storage = DashboardRedisStorage()
    mark = storage.get_current_id(METRICS_CHANNEL)
    with pytest.raises(ValueError, match="MAX_SERIES"):
        publish_metrics([("a", 2, None), ("d", 1, None), ("e", 1, None)])
    publish_metric("d", 1)
    with pytest.raises(ValueError, match="MAX_SERIES"):
        publish_metric("e", 1)
    assert storage.get_current_id(METRICS_CHANNEL) == mark + 1  # only "d" went out
    assert index.live_count() == 4
    telemetry.flush()
    counts = get_sync_client().hgetall(telemetry.counters_key())
    assert int(counts[b"ingest_refusals|too_many_series"]) == 2
    assert int(counts[b"series_refusals|MAX_SERIES"]) == 4  # the points refused


def test_the_collector_is_never_refused(index):
    with override_settings(MAX_SERIES=1):
        index.admit([point("custom", {}, 1)])
        publish_frame(1, time.time(), {"cpu": 1, "memory": 2})
    assert index.live_count() == 3


@override_settings(MAX_SERIES=50)
def test_processes_racing_cannot_pass_the_limit_together(index):
    errors = []

    def push(worker):
        for i in range(30):
            try:
                index.admit([point("race", {"worker": str(worker), "i": str(i)}, 1)])
            except seriesindex.TooManySeries:
                errors.append(worker)

    threads = [threading.Thread(target=push, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert index.live_count() == 50
    assert len(errors) == 4 * 30 - 50


def test_series_not_pushed_within_the_retention_expire(index):
    now = time.time()
    index.admit([point("old", {"host": "a"}, 1), point("kept", {}, 1)])
    # Age one series past the retention, as if it stopped being pushed a day ago.
    client = get_sync_client()
    stale = series.storage_key('old{host="a"}')
    client.zadd(seriesindex.live_key(), {stale: now - retention_seconds() - 1})
    client.zadd(seriesindex.metric_key("old"), {stale: now - retention_seconds() - 1})
    assert ids(index.find()[0]) == ["kept"]
    with override_settings(MAX_SERIES=2):
        index.admit([point("new", {}, 1)])  # the expired one no longer counts
    # ... and the admission dropped it from every structure.
    assert client.zscore(seriesindex.live_key(), stale) is None
    assert client.hget(seriesindex.meta_key(), stale) is None
    assert index.label_values("__name__") == ["kept", "new"]


def test_the_index_is_rebuilt_from_rollups_and_events_after_redis_lost_it(index):
    now = time.time()
    # History the rollups hold (written by the collector's writer) ...
    labelled = 'cpu{host="web1"}'
    Series.objects.create(
        key=series.storage_key(labelled), series_id=labelled, name="cpu", labels={"host": "web1"}
    )
    step = rollups.tiers()[-1][0]
    rollups.upsert(
        step, [(series.storage_key(labelled), rollups.bucket_of(now - 3600, step), 1, 5.0, 5.0, 5.0)]
    )
    rollups.upsert(step, [("orders", rollups.bucket_of(now - 60, step), 1, 2.0, 2.0, 2.0)])
    # ... one too old to be live ...
    old = now - retention_seconds() - 2 * step
    rollups.upsert(step, [("gone", rollups.bucket_of(old, step), 1, 1.0, 1.0, 1.0)])
    # ... and events the store still keeps, whose values are the last ones.
    publish_metric("orders", 7, ts=now - 1)
    wipe_index()

    found, _ = index.find()

    assert {entry["id"]: entry["last"] for entry in found} == {labelled: None, "orders": [now - 1, 7]}
    assert found[0]["labels"] == {"host": "web1"}
    # The rebuilt series count against the limit.
    with override_settings(MAX_SERIES=2), pytest.raises(seriesindex.TooManySeries):
        index.admit([point("third", {}, 1)])


def test_a_publish_after_a_wipe_rebuilds_before_counting(index):
    index.admit([point("cpu", {"host": "a"}, 1)])
    Series.objects.create(key="orders", series_id="orders", name="orders", labels={})
    step = rollups.tiers()[-1][0]
    rollups.upsert(step, [("orders", rollups.bucket_of(time.time(), step), 1, 2.0, 2.0, 2.0)])
    wipe_index()
    with override_settings(MAX_SERIES=1), pytest.raises(seriesindex.TooManySeries):
        index.admit([point("cpu", {"host": "a"}, 1)])
    assert get_sync_client().exists(seriesindex.built_key())


@override_settings(MAX_SERIES_PER_METRIC=2)
def test_publish_metric_with_labels_past_the_per_metric_limit_is_refused(index):
    publish_metrics([("cpu", 1, None, {"host": "a"}), ("cpu", 1, None, {"host": "b"})])
    with pytest.raises(ValueError, match="MAX_SERIES_PER_METRIC"):
        publish_metric("cpu", 1, labels={"host": "c"})
    publish_metric("cpu", 2, labels={"host": "a"})
    publish_metric("mem", 1, labels={"host": "c"})
    assert ids(index.find()[0]) == ['cpu{host="a"}', 'cpu{host="b"}', 'mem{host="c"}']


def test_after_redis_lost_everything_the_rollups_alone_rebuild_it(index):
    from django.conf import settings

    now = time.time()
    publish_metric("cpu", 3, ts=now - 1, labels={"host": "web1"})
    rollups.write_pending()  # what the collector's writer does every few seconds
    client = get_sync_client()
    client.delete(*client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000))  # events too

    found, _ = index.find(selectors.selection(["cpu"]))

    assert found == [{"id": 'cpu{host="web1"}', "name": "cpu", "labels": {"host": "web1"}, "last": None}]
    publish_metric("cpu", 4, ts=now, labels={"host": "web1"})
    assert index.find()[0][0]["last"] == [now, 4]


class Clock:
    """The index's clock, moved by hand."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)

    def __init__(self):
        self.now = time.time()

    def time(self):
        return self.now


def test_a_read_keeps_the_live_set_until_a_series_joins_or_leaves_it(index, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(seriesindex, "time", clock)
    index.admit([point("cpu", {"host": "a"}, 1, clock.now)])
    assert ids(index.find()[0]) == ['cpu{host="a"}']
    kept = seriesindex._live_kept
    # Pushed again: no series joined, the set is not read again.
    index.admit([point("cpu", {"host": "a"}, 2, clock.now)])
    assert index.find()[0][0]["last"] == [clock.now, 2]
    assert seriesindex._live_kept is kept
    # A new series is there at once, by name and by label.
    index.admit([point("cpu", {"host": "b"}, 1, clock.now)])
    assert ids(index.find(selectors.selection(["cpu"]))[0]) == ['cpu{host="a"}', 'cpu{host="b"}']
    assert index.label_values("host", selectors.selection(['{host=~"a|b"}'])) == ["a", "b"]

    # A day without a publish: both expired, though nothing dropped them from Redis.
    clock.now += retention_seconds() + 10
    assert index.find()[0] == []
    assert index.find(selectors.selection(["cpu"]))[0] == []
    # One is pushed again: it is live again at once.
    index.admit([point("cpu", {"host": "b"}, 3, clock.now)])
    assert ids(index.find(selectors.selection(["cpu"]))[0]) == ['cpu{host="b"}']
    assert index.label_values("host", selectors.selection(["cpu"])) == ["b"]


def test_the_same_selection_on_the_same_live_set_is_answered_from_memory(index):
    index.admit([point("cpu", {"host": f"h{i}"}, i) for i in range(20)])
    selection = selectors.selection(['{host=~"h1.*"}'])
    asked = []
    wants = selection.wants

    def counted(*args):
        asked.append(args[0])
        return wants(*args)

    selection.wants = counted
    first = ids(index.find(selection)[0])
    assert len(first) == 11 and len(asked) == 20
    assert ids(index.find(selection)[0]) == first
    assert index.label_values("host", selection) == sorted(f"h{i}" for i in [1, *range(10, 20)])
    assert len(asked) == 20
    # A new series: the set is read again, and so is the answer.
    index.admit([point("cpu", {"host": "h100"}, 1)])
    assert len(ids(index.find(selection)[0])) == 12


def test_numbers_and_metas_are_written_as_json_would_write_them():
    import json

    class Float(float):
        def __repr__(self):  # as numpy's scalars: not JSON
            return f"Float({float(self)})"

    for number in [0, -7, 10**30, 0.1, 1e-300, 1.5e300, -2.0, 12.345678901234567, Float(3.25)]:
        assert seriesindex._number_text(number) == json.dumps(number), number
    labels = {"host": "wéb\n1", "dc": 'e"u'}
    series_id = series.format_id("cpu", labels)
    store = series.storage_key(series_id)
    expected = json.dumps([series_id, "cpu", labels], ensure_ascii=False, separators=(",", ":"))
    assert seriesindex._meta_text(store, series_id, "cpu", labels) == expected
    assert seriesindex._meta_text(store, series_id, "cpu", labels) is seriesindex._meta_text(
        store, series_id, "cpu", labels
    )

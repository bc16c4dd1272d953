import json
import math
import time

import pytest
from django.db import transaction

from dashboard.live import (
    events_published_last_second,
    publish_frame,
    publish_metric,
    publish_metrics,
    validate_metrics,
)
from dashboard.models import Metric
from dashboard.storage import DashboardRedisStorage


@pytest.fixture
def storage(redis_url):
    return DashboardRedisStorage()


def last_event(storage):
    import json

    event = storage.get_events("metrics", storage.get_current_id("metrics") - 1)[0]
    return event.type, json.loads(event.data)


@pytest.mark.django_db(transaction=True)
def test_publish_metric_stores_a_metric_event_and_registers_the_metric(storage):
    ts = round(time.time() - 3600, 1)
    publish_metric("orders", 42, ts=ts)
    assert last_event(storage) == (
        "metric",
        {"name": "orders", "labels": {}, "series": "orders", "value": 42, "ts": ts},
    )
    metric = Metric.objects.get(key="orders")
    assert metric.source == Metric.Source.CUSTOM


@pytest.mark.django_db(transaction=True)
def test_publish_metric_keeps_an_existing_definition(storage):
    Metric.objects.create(key="cpu", source=Metric.Source.SYSTEM, label="CPU")
    publish_metric("cpu", 1.5)
    assert Metric.objects.get(key="cpu").source == Metric.Source.SYSTEM
    assert last_event(storage)[1]["value"] == 1.5


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "value", "ts", "problem"),
    [
        ("", 1, None, "empty"),
        ("x" * 65, 1, None, "at most 64"),
        ("has space", 1, None, "slug"),
        ("dots.no", 1, None, "slug"),
        (42, 1, None, "string"),
        ("orders", True, None, "int or a float"),
        ("orders", "42", None, "int or a float"),
        ("orders", None, None, "int or a float"),
        ("orders", math.nan, None, "finite"),
        ("orders", math.inf, None, "finite"),
        ("orders", -math.inf, None, "finite"),
        ("orders", 1, "yesterday", "timestamp"),
        ("orders", 1, math.nan, "timestamp"),
        # Older than the longest history tier keeps (a year by default), or from the future
        # (by far: these are computed when the tests are collected, maybe minutes before).
        ("orders", 1, time.time() - 366 * 86400, "older than the history keeps"),
        ("orders", 1, time.time() + 7 * 86400, "in the future"),
    ],
)
def test_publish_metric_refuses_bad_input_and_publishes_nothing(storage, name, value, ts, problem):
    before = storage.get_current_id("metrics")
    with pytest.raises(ValueError, match=problem):
        publish_metric(name, value, ts=ts)
    assert storage.get_current_id("metrics") == before
    assert not Metric.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_publish_metric_publishes_nothing_when_the_transaction_rolls_back(storage):
    before = storage.get_current_id("metrics")
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_metric("orders", 1)
        raise RuntimeError("the caller's work failed")
    assert storage.get_current_id("metrics") == before
    assert not Metric.objects.filter(key="orders").exists()


def test_publish_frame_sends_a_frame_event_of_the_collector_host(storage, settings):
    settings.COLLECTOR_HOST = "web1"
    event = publish_frame(7, 1700000000.0, {"cpu": 12.5}, firing=["cpu"])
    assert event.type == "frame"
    assert last_event(storage) == (
        "frame",
        {"seq": 7, "ts": 1700000000.0, "values": {"cpu": 12.5}, "firing": ["cpu"], "host": "web1"},
    )
    publish_frame(8, 1700000001.0, {"cpu": 1}, host="db1")
    assert last_event(storage)[1]["host"] == "db1"


@pytest.mark.django_db(transaction=True)
def test_publish_metric_with_labels_publishes_one_series_of_the_metric(storage):
    ts = round(time.time() - 60, 1)
    data = publish_metric("latency", 0.25, ts=ts, labels={"service": "checkout", "region": "eu", "zone": ""})
    expected = {
        "name": "latency",
        "labels": {"region": "eu", "service": "checkout"},
        "series": 'latency{region="eu",service="checkout"}',
        "value": 0.25,
        "ts": ts,
    }
    assert data == expected
    assert last_event(storage) == ("metric", expected)
    publish_metric("latency", 0.5, labels={"service": "search"})
    # One definition per metric name, whatever its series.
    assert list(Metric.objects.values_list("key", flat=True)) == ["latency"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"bad-name": "x"}, "label name must match"),
        ({"__name__": "x"}, "reserved"),
        ({"host": 1}, "value must be a string"),
        ({"host": "x" * 257}, "at most 256"),
        ({f"l{i}": "v" for i in range(17)}, "at most 16 labels"),
        ("host=web1", "labels must be an object"),
    ],
)
def test_publish_metric_refuses_bad_labels_and_publishes_nothing(storage, labels, problem):
    before = storage.get_current_id("metrics")
    with pytest.raises(ValueError, match=problem):
        publish_metric("orders", 1, labels=labels)
    assert storage.get_current_id("metrics") == before
    assert not Metric.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_publish_metrics_takes_labelled_points_and_names_a_bad_one(storage):
    shared = {"host": "web1"}
    published = publish_metrics([("cpu", 1, None, shared), ("mem", 2, None, shared), ("load", 3, None)])
    assert [p["series"] for p in published] == ['cpu{host="web1"}', 'mem{host="web1"}', "load"]
    before = storage.get_current_id("metrics")
    bad = {"host": "web1", "1x": "y"}
    with pytest.raises(ValueError, match=r"^point 1: label name must match"):
        publish_metrics([("cpu", 1, None, shared), ("cpu", 1, None, bad), ("cpu", 1, None, bad)])
    assert storage.get_current_id("metrics") == before


def test_events_published_last_second_counts_every_process_publishing(storage, monkeypatch):
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - 1)
    for seq in range(3):
        publish_frame(seq, 0.0, {})
    monkeypatch.setattr(time, "time", lambda: now)
    assert events_published_last_second() == 3


@pytest.mark.django_db(transaction=True)
def test_publish_metrics_publishes_a_batch_in_order_and_registers_new_names(storage):
    Metric.objects.create(key="cpu", source=Metric.Source.SYSTEM)
    before = storage.get_current_id("metrics")
    recent = int(time.time()) - 3600
    published = publish_metrics([("cpu", 1, recent), ("queue", 2.5, None), ("queue", 3, None)])
    events = storage.get_events("metrics", before)
    assert [json.loads(e.data) for e in events] == published
    assert [(p["name"], p["value"]) for p in published] == [("cpu", 1), ("queue", 2.5), ("queue", 3)]
    assert Metric.objects.get(key="cpu").source == Metric.Source.SYSTEM
    assert Metric.objects.get(key="queue").source == Metric.Source.CUSTOM


@pytest.mark.django_db(transaction=True)
def test_publish_metrics_is_all_or_nothing_and_names_the_bad_point(storage):
    before = storage.get_current_id("metrics")
    with pytest.raises(ValueError, match=r"^point 2: metric value must be finite"):
        publish_metrics([("a", 1, None), ("b", 2, None), ("c", math.nan, None)])
    with pytest.raises(ValueError, match=r"^point 0: metric value is out of range"):
        publish_metrics([("a", 10**400, None)])
    assert storage.get_current_id("metrics") == before
    assert not Metric.objects.filter(key__in=["a", "b", "c"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_the_callers_transaction(storage):
    before = storage.get_current_id("metrics")
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_metrics([("rolled", 1, None)])
        raise RuntimeError("the caller's work failed")
    assert storage.get_current_id("metrics") == before
    assert not Metric.objects.filter(key="rolled").exists()


def test_it_validates_a_label_set_met_before_as_strictly_as_a_new_one(db):
    """Label sets are remembered once checked: a bad one is never remembered, and the
    same names with a bad value are refused whatever was accepted before."""
    good = {"host": "web1", "dc": "eu"}
    assert validate_metrics([("cpu", 1, None, good)])[0]["labels"] == {"dc": "eu", "host": "web1"}
    assert validate_metrics([("cpu", 1, None, dict(good))])[0]["labels"] == {"dc": "eu", "host": "web1"}
    for bad in ({"host": 1, "dc": "eu"}, {"host": ["web1"]}, {"__host": "web1"}):
        for _ in range(2):
            with pytest.raises(ValueError, match="point 0: label"):
                validate_metrics([("cpu", 1, None, bad)])

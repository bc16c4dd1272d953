import time

import httpx
import pytest

from dashboard.live import publish_frame, send
from dashboard.models import Metric
from tests.realclients import SSEReader, events_url

URL = "/api/metrics/history/"


@pytest.fixture(autouse=True)
def _frames_without_a_host(settings):
    """These tests follow values through the event store and the rollups by metric name:
    frames here name no host (as frames stored before hosts were named), so their values
    are the unlabelled series `cpu`, the same series as a custom `cpu` value.
    test_history_series.py covers labelled series."""
    settings.COLLECTOR_HOST = ""


@pytest.fixture
def as_alice(client, alice, redis_url):
    client.force_login(alice)
    return client


def test_it_refuses_anonymous_clients(client, db):
    response = client.get(URL)
    assert response.status_code == 403
    assert "Log in" in response.json()["error"]


def test_it_refuses_users_without_the_view_permission(client, charlie):
    client.force_login(charlie)
    response = client.get(URL)
    assert response.status_code == 403
    assert "dashboard.view_metric" in response.json()["error"]


@pytest.mark.parametrize("minutes", ["abc", "0", "-5", "43201", "15.5", "9" * 40])
def test_it_rejects_a_bad_window_with_400(as_alice, minutes):
    response = as_alice.get(URL, {"minutes": minutes})
    assert response.status_code == 400
    assert "minutes must be" in response.json()["error"]


def test_it_returns_the_window_ending_at_the_current_event_id(as_alice):
    now = time.time()
    publish_frame(1, now - 20 * 60, {"cpu": 1.0})  # outside a 15-minute window
    publish_frame(2, now - 60, {"cpu": 2.0}, firing=["cpu"])
    send("metrics", "metric", {"name": "orders", "value": 5, "ts": now - 30})
    last = publish_frame(3, now, {"cpu": 3.0})

    body = as_alice.get(URL).json()

    assert body["window"] == 15
    # Few values: raw ones (step 0), avg = min = max.
    assert body["step"] == 0
    assert body["series"] == {
        "cpu": [[now - 60, 2.0, 2.0, 2.0], [now, 3.0, 3.0, 3.0]],
        "orders": [[now - 30, 5, 5, 5]],
    }
    assert body["last_event_id"] == f"metrics:{last.id}"


def test_a_longer_window_reaches_further_back(as_alice):
    now = time.time()
    publish_frame(1, now - 20 * 60, {"cpu": 1})
    publish_frame(2, now, {"cpu": 2})
    series = as_alice.get(URL, {"minutes": "60"}).json()["series"]
    assert [point[1] for point in series["cpu"]] == [1, 2]


def test_it_lists_enabled_metric_definitions_in_display_order(as_alice):
    Metric.objects.create(key="mem", label="Memory", unit="%", display_order=2, warning_threshold=80)
    Metric.objects.create(key="cpu", label="CPU", unit="%", display_order=1, critical_threshold=95)
    Metric.objects.create(key="off", enabled=False)
    metrics = as_alice.get(URL).json()["metrics"]
    assert [m["key"] for m in metrics] == ["cpu", "mem"]
    assert metrics[1] == {
        "key": "mem",
        "label": "Memory",
        "unit": "%",
        "source": "custom",
        "warning": 80.0,
        "critical": None,
        "order": 2,
        "rules": [],
    }


def test_it_gives_each_metric_its_enabled_alert_rules_to_draw(as_alice):
    from alerts.models import AlertRule

    cpu = Metric.objects.create(key="cpu", label="CPU", unit="%")
    AlertRule.objects.create(metric=cpu, threshold=90, level="error")
    AlertRule.objects.create(metric=cpu, threshold=5, comparison="below", enabled=False)
    (metric,) = as_alice.get(URL).json()["metrics"]
    assert metric["rules"] == [{"threshold": 90.0, "comparison": "above", "level": "error"}]


def test_built_in_labels_come_in_the_viewers_language(as_alice):
    Metric.objects.create(key="memory", label="Memory used", unit="%")
    Metric.objects.create(key="orders", label="Orders placed")
    metrics = as_alice.get(URL, headers={"accept-language": "es"}).json()["metrics"]
    assert [m["label"] for m in metrics] == ["Memoria usada", "Orders placed"]


def test_an_hour_of_frames_not_yet_rolled_up_comes_back_in_buckets(as_alice):
    now = time.time()
    for seq in range(3600):
        publish_frame(seq, now - 3000 + seq * 0.8, {"cpu": 1.0 + seq % 2, "mem": 2.0})
    body = as_alice.get(URL, {"minutes": "60"}).json()
    # 3,600 values are more than 1,000: 10 s buckets, folded from the event store
    # since nothing wrote rollups yet.
    assert body["step"] == 10
    cpu = body["series"]["cpu"]
    assert len(cpu) <= 1000
    assert all(ts % 10 == 0 for ts, *_ in cpu)
    assert all((low, high) == (1.0, 2.0) for _, _, low, high in cpu[1:-1])
    assert all(1.4 < avg < 1.6 for _, avg, _, _ in cpu[1:-1])


@pytest.mark.slow
async def test_history_then_live_has_no_gap_and_no_duplicate_at_the_seam(web_workers, alice_cookies):
    [worker] = web_workers(1)
    now = time.time()
    for seq in range(1, 6):
        publish_frame(seq, now, {"cpu": seq})
    async with httpx.AsyncClient(cookies=alice_cookies) as client:
        history = (await client.get(f"{worker}{URL}")).json()
    # Frames published between the history answer and the stream opening.
    for seq in range(6, 9):
        publish_frame(seq, now, {"cpu": seq})

    url = events_url(worker, "metrics", last_event_id=history["last_event_id"])
    async with SSEReader(url, alice_cookies) as stream:
        await stream.wait_for(lambda events: len(stream.of_type("frame")) >= 3)
        publish_frame(9, now, {"cpu": 9})
        await stream.wait_for(lambda events: len(stream.of_type("frame")) >= 4)

    assert history["step"] == 0
    seqs = [avg for _, avg, _, _ in history["series"]["cpu"]]
    seqs += [e["data"]["seq"] for e in stream.of_type("frame")]
    assert seqs == list(range(1, 10))

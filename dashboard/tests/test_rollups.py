"""Long-range history: bucket arithmetic, the writer, the history endpoint over rollups,
retention, a Redis flush and a database outage. Runs on the suite's database (PostgreSQL
in CI) and, through `test_it_passes_on_sqlite_too`, again on SQLite."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.models import Sum

from conftest import drop_stored_events
from dashboard import rollups, series
from dashboard.live import publish_frame, publish_metric, send
from dashboard.models import MetricRollup, RollupCursor
from dashboard.redis import get_sync_client
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.history import MAX_POINTS
from tests.test_faults import switchable_database  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/metrics/history/"
DAY = 86400


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


def rows(key, step):
    return {r.bucket: (r.count, r.sum, r.min, r.max) for r in MetricRollup.objects.filter(key=key, tier=step)}


def wait_until(predicate, timeout=20.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.05)


def flush_redis_of_this_run():
    """Redis loses everything (a container recreated): every key of this run goes."""
    from django.conf import settings

    client = get_sync_client()
    keys = list(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)


# ---- bucket arithmetic -------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "step", "bucket"),
    [
        (1_700_000_010.0, 10, 1_700_000_010),  # exactly on a boundary opens that bucket
        (1_700_000_009.999, 10, 1_700_000_000),  # just before it belongs to the one before
        (1_700_000_019.999, 10, 1_700_000_010),
        (1_699_999_999.5, 60, 1_699_999_980),
        # Days and hours are UTC: a day bucket starts at midnight UTC, whatever the zone.
        (19_700 * DAY + 1, DAY, 19_700 * DAY),
        (19_700 * DAY - 0.001, DAY, 19_699 * DAY),
        (19_700 * DAY + 3599.99, 3600, 19_700 * DAY),
    ],
)
def test_a_value_lands_in_the_bucket_that_starts_at_or_before_it(ts, step, bucket):
    assert rollups.bucket_of(ts, step) == bucket


def test_buckets_keep_count_sum_min_and_max():
    buckets = rollups.Buckets(10)
    for ts, value in [(100.0, 3), (109.9, -1), (110.0, 7), (105, 2)]:
        buckets.add("cpu", ts, value)
    assert buckets.rows() == [("cpu", 100, 3, 4, -1, 3), ("cpu", 110, 1, 7, 7, 7)]


# ---- the writer --------------------------------------------------------------------


@pytest.fixture
def storage(redis_url):
    return DashboardRedisStorage()


def test_the_writer_folds_frames_and_custom_values_into_every_tier(storage, transactional_db):
    base = rollups.bucket_of(time.time(), 900) - 900  # a 15-minute boundary, in the past
    publish_frame(1, base + 0.0, {"cpu": 10.0, "memory": 50})
    publish_frame(2, base + 9.999, {"cpu": 30.0, "memory": 52})
    publish_frame(3, base + 10.0, {"cpu": 20.0, "memory": 54})
    publish_metric("orders", 5, ts=base + 61)

    assert rollups.write_pending(storage) == 4

    assert rows("cpu", 10) == {base: (2, 40.0, 10.0, 30.0), base + 10: (1, 20.0, 20.0, 20.0)}
    assert rows("cpu", 60) == {base: (3, 60.0, 10.0, 30.0)}
    assert rows("cpu", 900) == {base: (3, 60.0, 10.0, 30.0)}
    assert rows("memory", 60) == {base: (3, 156.0, 50.0, 54.0)}
    assert rows("orders", 10) == {base + 60: (1, 5.0, 5.0, 5.0)}
    assert rows("orders", 60) == {base + 60: (1, 5.0, 5.0, 5.0)}
    assert RollupCursor.objects.get().last_event_id == storage.get_current_id("metrics")


def test_late_and_out_of_order_values_merge_into_their_own_buckets(storage, transactional_db):
    now = time.time()
    late = rollups.bucket_of(now - 3 * DAY, 900) + 5  # three days ago
    publish_metric("orders", 4, ts=now)
    rollups.write_pending(storage)
    # Published later, but about earlier times, in no particular order.
    publish_metric("orders", 1, ts=late)
    publish_metric("orders", 9, ts=late + 2)
    publish_metric("orders", 3, ts=now - 1)
    assert rollups.write_pending(storage) == 3

    old = rollups.bucket_of(late, 10)
    assert rows("orders", 10)[old] == (2, 10.0, 1.0, 9.0)
    assert rows("orders", 900)[rollups.bucket_of(late, 900)] == (2, 10.0, 1.0, 9.0)
    newest = rows("orders", 60)[rollups.bucket_of(now, 60)]
    if rollups.bucket_of(now - 1, 60) == rollups.bucket_of(now, 60):
        assert newest == (2, 7.0, 3.0, 4.0)


def test_writing_twice_counts_each_event_once(storage, transactional_db):
    publish_frame(1, time.time(), {"cpu": 1.0})
    assert rollups.write_pending(storage) == 1
    assert rollups.write_pending(storage) == 0
    publish_frame(2, time.time(), {"cpu": 1.0})
    rollups.write_pending(storage)
    assert MetricRollup.objects.filter(key="cpu", tier=10).aggregate(n=Sum("count"))["n"] == 2


def test_events_that_expired_before_they_were_written_are_skipped_not_waited_for(storage, transactional_db):
    first = publish_frame(1, time.time(), {"cpu": 1.0})
    rollups.write_pending(storage)
    gone = [publish_frame(seq, time.time(), {"cpu": 100.0}) for seq in (2, 3)]
    publish_frame(4, time.time(), {"cpu": 2.0})
    # The store dropped 2 and 3 (retention) before the writer came back.
    drop_stored_events("metrics", *[e.id for e in gone])

    rollups.write_pending(storage)

    assert first.id < RollupCursor.objects.get().last_event_id == storage.get_current_id("metrics")
    assert MetricRollup.objects.filter(key="cpu", tier=10).aggregate(n=Sum("sum"))["n"] == 3.0


def test_publish_metric_accepts_timestamps_the_history_keeps(storage, transactional_db):
    now = time.time()
    publish_metric("orders", 1, ts=now - 364 * DAY)
    publish_metric("orders", 1, ts=now + 240)
    with pytest.raises(ValueError, match="older than the history keeps"):
        publish_metric("orders", 1, ts=now - 366 * DAY)


def test_values_past_a_tiers_retention_are_pruned(storage, transactional_db, manage):
    now = time.time()
    MetricRollup.objects.bulk_create(
        [
            MetricRollup(
                key="cpu", tier=10, bucket=rollups.bucket_of(now - 8 * DAY, 10), count=1, sum=1, min=1, max=1
            ),
            MetricRollup(
                key="cpu", tier=10, bucket=rollups.bucket_of(now - 6 * DAY, 10), count=1, sum=1, min=1, max=1
            ),
            MetricRollup(
                key="cpu", tier=60, bucket=rollups.bucket_of(now - 8 * DAY, 60), count=1, sum=1, min=1, max=1
            ),
            MetricRollup(
                key="cpu",
                tier=900,
                bucket=rollups.bucket_of(now - 400 * DAY, 900),
                count=1,
                sum=1,
                min=1,
                max=1,
            ),
            MetricRollup(
                key="cpu", tier=7, bucket=0, count=1, sum=1, min=1, max=1
            ),  # a tier no longer configured
        ]
    )
    result = manage("prune_history")
    assert result.returncode == 0, result.stderr
    assert "tier 10 s, kept 604800 s: 1 buckets deleted" in result.stdout
    assert sorted(MetricRollup.objects.values_list("tier", flat=True)) == [10, 60]


# ---- the history endpoint over rollups --------------------------------------------


def fill_rollups(key, days=30, value=1.0):
    """Rows of every tier for `days` up to now, as the writer would have left them."""
    now = time.time()
    objects = []
    for step, retention in rollups.tiers():
        start = rollups.bucket_of(now - min(days * DAY, retention), step)
        for bucket in range(start, int(now), step):
            objects.append(
                MetricRollup(
                    key=key, tier=step, bucket=bucket, count=step, sum=value * step, min=0, max=value * 2
                )
            )
    MetricRollup.objects.bulk_create(objects, batch_size=5000)


def test_every_window_answers_at_most_a_thousand_points_per_metric(as_alice):
    fill_rollups("cpu", days=30)
    publish_frame(1, time.time(), {"cpu": 1.0})
    for minutes in [1, 5, 15, 60, 61, 360, 1440, 4321, 10080, 20000, 43199, 43200]:
        body = as_alice.get(URL, {"minutes": minutes}).json()
        points = body["series"]["cpu"]
        assert 0 < len(points) <= MAX_POINTS, minutes
        step = body["step"]
        assert step > 0  # the rollups know older values than the (new) event store: buckets
        assert all(ts % step == 0 for ts, *_ in points)
        assert [ts for ts, *_ in points] == sorted({ts for ts, *_ in points})
        # Enough of them to be worth a chart: the finest tier that can answer (less the
        # few buckets that passed while the rows were loaded).
        assert len(points) >= min(minutes * 60 / 10 - 4, 240), minutes
        assert points[0][0] <= time.time() - minutes * 60 + step
        # The buckets' min and max travel with the average (a one-second spike stays visible).
        assert all(low == 0 and high == 2.0 for _, _, low, high in points[:-1])


def test_a_zoomed_range_is_answered_from_finer_buckets(as_alice):
    fill_rollups("cpu", days=8)
    now = time.time()
    wide = as_alice.get(URL, {"minutes": 7 * 1440}).json()
    start, end = now - 3 * DAY, now - 3 * DAY + 3600
    zoomed = as_alice.get(URL, {"start": start, "end": end}).json()
    assert zoomed["step"] < wide["step"]
    assert zoomed["step"] == 10
    points = zoomed["series"]["cpu"]
    assert 350 <= len(points) <= 362
    assert all(rollups.bucket_of(start, 10) <= ts <= end for ts, *_ in points)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"start": "1", "end": "x"}, "end must be unix seconds"),
        ({"start": "nan", "end": "5"}, "start must be unix seconds"),
        ({"start": "100", "end": "105"}, "end must be 10 s to 43200 minutes after start"),
        ({"start": "100", "end": str(100 + 31 * DAY)}, "after start"),
        ({"start": "100"}, "end must be unix seconds"),
        ({"start": "100", "end": "1000", "minutes": "5"}, "either minutes or start and end"),
    ],
)
def test_it_rejects_a_bad_range_with_400(as_alice, params, problem):
    response = as_alice.get(URL, params)
    assert response.status_code == 400
    assert problem in response.json()["error"]


def test_buckets_end_exactly_at_the_event_the_stream_resumes_after(as_alice, storage):
    now = time.time()
    publish_frame(1, now - 30, {"cpu": 1.0})
    rollups.write_pending(storage)  # the writer has the first value ...
    publish_frame(2, now - 20, {"cpu": 3.0})  # ... not yet these two
    last = send("metrics", "metric", {"name": "cpu", "value": 5.0, "ts": now - 10})
    fill_rollups("memory", days=1)  # enough values that 60 minutes come in buckets

    body = as_alice.get(URL, {"minutes": 60}).json()

    assert body["step"] == 10
    assert body["last_event_id"] == f"metrics:{last.id}"
    # Each value once: from the rollups up to their cursor, from the store after it.
    assert body["series"]["cpu"] == [
        [rollups.bucket_of(now - 30, 10), 1.0, 1.0, 1.0],
        [rollups.bucket_of(now - 20, 10), 3.0, 3.0, 3.0],
        [rollups.bucket_of(now - 10, 10), 5.0, 5.0, 5.0],
    ]
    assert body["last_counts"]["cpu"] == 1


def test_values_the_writer_has_not_written_join_the_rolled_up_bucket_they_fall_in(as_alice, storage):
    start = rollups.bucket_of(time.time() - 60, 10)
    publish_frame(1, start + 1, {"cpu": 1.0})
    rollups.write_pending(storage)
    publish_frame(2, start + 2, {"cpu": 3.0})  # the same bucket, from the store only
    send("metrics", "metric", {"name": "cpu", "value": 7.0, "ts": start - 9})  # late, an older bucket
    fill_rollups("memory", days=1)

    body = as_alice.get(URL, {"minutes": 60}).json()

    assert body["step"] == 10
    assert body["series"]["cpu"] == [[start - 10, 7.0, 7.0, 7.0], [start, 2.0, 1.0, 3.0]]
    assert body["last_counts"]["cpu"] == 2


def test_long_windows_survive_a_redis_flush(as_alice, storage):
    now = time.time()
    for seq in range(1, 1201):
        publish_frame(seq, now - 7200 + seq * 6, {"cpu": float(seq % 7)})
    rollups.write_pending(storage)
    before = as_alice.get(URL, {"minutes": 180}).json()

    flush_redis_of_this_run()
    after = as_alice.get(URL, {"minutes": 180}).json()
    short = as_alice.get(URL, {"minutes": 5}).json()

    assert after["step"] == before["step"] > 0
    assert after["series"]["cpu"] == before["series"]["cpu"]
    # Five minutes fit in raw values, but the store lost them: the rollups answer.
    assert short["step"] == 10
    assert len(short["series"]["cpu"]) >= 25


# ---- the collector process writes them, and a database outage loses nothing --------


def frames_in_store():
    storage = DashboardRedisStorage()
    values = []
    for event in storage.read_back("metrics", storage.get_current_id("metrics")):
        data = json.loads(event.data)
        if event.type == "frame" and "cpu" in data["values"]:
            values.append(data["values"]["cpu"])
    return values


# The collector's cpu, as the writer keys it: the series of the collector's host.
CPU = series.storage_key('cpu{host="rollup-test"}')


@pytest.mark.slow
def test_the_collector_writes_rollups_and_catches_up_after_a_database_outage(
    switchable_database,  # noqa: F811 - the fixture imported above
    subprocess_env,
    tmp_path,
):
    database_url, up, down = switchable_database
    log_path = tmp_path / "collector.log"
    with open(log_path, "wb") as log:
        collector = subprocess.Popen(
            [sys.executable, "manage.py", "collect_metrics"],
            cwd=ROOT,
            env={**subprocess_env, "DATABASE_URL": database_url, "COLLECTOR_HOST": "rollup-test"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # Values reach the database within 10 s of being published.
        wait_until(lambda: len(frames_in_store()) >= 1, 30, "the first frame")
        wait_until(lambda: MetricRollup.objects.filter(key=CPU).exists(), 10, "the first rollup")

        down()
        published = [publish_metric("orders", value)["value"] for value in (3, 4, 5)]
        wait_until(lambda: b"rollups: cannot write" in log_path.read_bytes(), 20, "the writer to notice")
        frames_during = len(frames_in_store())
        wait_until(lambda: len(frames_in_store()) >= frames_during + 2, 20, "frames during the outage")
        assert collector.poll() is None, log_path.read_text()

        up()
        wait_until(lambda: b"rollups: writing again" in log_path.read_bytes(), 20, "the writer to recover")
        wait_until(lambda: MetricRollup.objects.filter(key="orders", tier=10).exists(), 10, "the catch-up")
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(30)
    assert collector.returncode == 0, log_path.read_text()

    # Exactly once: every value in the store is in every tier, none twice.
    cpu = frames_in_store()
    for step, _ in rollups.tiers():
        totals = MetricRollup.objects.filter(tier=step)
        assert totals.filter(key=CPU).aggregate(n=Sum("count"), s=Sum("sum")) == {
            "n": len(cpu),
            "s": pytest.approx(sum(cpu)),
        }
        assert totals.filter(key="orders").aggregate(n=Sum("count"), s=Sum("sum")) == {
            "n": 3,
            "s": sum(published),
        }


# ---- the same on SQLite -------------------------------------------------------------


@pytest.mark.slow
def test_it_passes_on_sqlite_too(tmp_path, redis_url):
    """`make test` runs on PostgreSQL (CI's DATABASE_URL); these tests run again on the
    SQLite `make run` uses, in a separate pytest process."""
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip("this run is the SQLite one")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", "not sqlite_too"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

"""The collector in-process: sampling, seq, sampling state, scheduling, Redis outages."""

import json
import logging
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import redis

from dashboard import frames as event_frames
from dashboard.collector import collector as collector_module
from dashboard.collector.collector import (
    Collector,
    HostSampler,
    RedisOutage,
    builtin_metrics,
    external_network_counters,
    register_builtin_metrics,
)
from dashboard.models import Metric
from dashboard.redis import get_sync_client, key
from dashboard.storage import pubsub_channel
from deploy.supervisor import free_port, start_redis

ROOT = Path(__file__).resolve().parents[2]

NO_APP_METRICS = dict  # app_metrics callable returning {}
SYSTEM_KEYS = tuple(spec.key for spec in builtin_metrics() if spec.source == Metric.Source.SYSTEM)
APP_KEYS = tuple(spec.key for spec in builtin_metrics() if spec.source == Metric.Source.APP)


def set_sampling(**fields):
    get_sync_client().hset(key("sampling"), mapping={k: str(v) for k, v in fields.items()})


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def counters(recv, sent):
    return SimpleNamespace(bytes_recv=recv, bytes_sent=sent)


@pytest.fixture
def frames():
    return []


@pytest.fixture
def make_collector(redis_url, frames):
    def make(**kwargs):
        def publish(seq, ts, values, firing=(), host=None):
            frames.append({"seq": seq, "ts": ts, "host": host, "values": values, "firing": list(firing)})

        kwargs.setdefault("app_metrics", NO_APP_METRICS)
        return Collector(publish=publish, **kwargs)

    return make


# Sampling


def test_it_samples_every_host_metric_as_a_finite_number():
    values = HostSampler().sample()
    assert set(values) == set(SYSTEM_KEYS)
    for name, value in values.items():
        assert isinstance(value, int | float) and not isinstance(value, bool), name
        assert math.isfinite(value), name
    for percent in ("cpu", "memory", "disk"):
        assert 0 <= values[percent] <= 100
    assert values["processes"] > 1


def test_it_samples_with_the_host_agents_code_so_the_two_never_drift():
    from livedash_agent import sampling

    assert collector_module.HostSampler is sampling.HostSampler
    assert Collector(publish=lambda *a, **k: None).sampler.__class__ is sampling.HostSampler


def test_it_turns_network_counters_into_bytes_per_second():
    clock = FakeClock()
    readings = iter([counters(1_000, 5_000), counters(3_000, 5_500)])
    sampler = HostSampler(clock=clock, net_counters=lambda: next(readings))
    clock.now += 2.0
    values = sampler.sample()
    assert (values["net_rx"], values["net_tx"]) == (1000.0, 250.0)


def test_it_reports_no_negative_traffic_when_counters_restart():
    clock = FakeClock()
    readings = iter([counters(9_000, 9_000), counters(100, 200)])
    sampler = HostSampler(clock=clock, net_counters=lambda: next(readings))
    clock.now += 1.0
    values = sampler.sample()
    assert (values["net_rx"], values["net_tx"]) == (0.0, 0.0)


def test_it_reports_no_traffic_without_network_interfaces():
    sampler = HostSampler(net_counters=lambda: None)
    values = sampler.sample()
    assert (values["net_rx"], values["net_tx"]) == (0.0, 0.0)


def test_its_network_traffic_leaves_out_loopback():
    external = external_network_counters()
    loopback = psutil.net_io_counters(pernic=True).get("lo")
    everything = psutil.net_io_counters()
    assert external.bytes_recv >= 0 and external.bytes_sent >= 0
    if loopback is not None:
        assert external.bytes_recv <= everything.bytes_recv - loopback.bytes_recv


def test_it_adds_app_metrics_to_the_frame(make_collector, frames):
    app = {"sse_connections": 3, "ws_connections": 2, "events_per_second": 7}
    make_collector(app_metrics=lambda: app).tick()
    assert set(frames[0]["values"]) == set(SYSTEM_KEYS + APP_KEYS)
    assert {k: frames[0]["values"][k] for k in APP_KEYS} == app


def test_it_reads_app_metrics_from_redis(redis_url):
    client = get_sync_client()
    client.set(key("conn", "sse", "worker-a"), 4, ex=5)
    client.set(key("conn", "sse", "worker-b"), 1, ex=5)
    client.set(key("conn", "ws", "worker-a"), 2, ex=5)
    # Workers list themselves as they report; one whose keys expired counts nothing.
    client.zadd(key("conn", "workers"), {"worker-a": time.time(), "worker-b": time.time(), "gone": 1})
    values = collector_module.sample_app_metrics()
    assert values["sse_connections"] == 5
    assert values["ws_connections"] == 2
    assert isinstance(values["events_per_second"], int)


# Frames and seq


def test_it_publishes_one_frame_per_tick_with_ts_and_values(make_collector, frames):
    before = time.time()
    make_collector().tick()
    assert len(frames) == 1
    frame = frames[0]
    # The frame's ts is rounded to the millisecond: it may be up to half of one before `before`.
    assert before - 0.0005 <= frame["ts"] <= time.time() + 0.01
    assert frame["firing"] == []
    assert set(frame["values"]) == set(SYSTEM_KEYS)


def test_its_values_are_the_series_of_its_host(make_collector, frames, settings):
    settings.COLLECTOR_HOST = "web1"
    make_collector().tick()
    make_collector(host="db1").tick()
    assert [f["host"] for f in frames] == ["web1", "db1"]
    [(series, name, labels, _ts, _value)] = [
        point for point in event_frames.points_of("frame", frames[0]) if point[1] == "cpu"
    ]
    assert (series, labels) == ('cpu{host="web1"}', {"host": "web1"})


def test_its_seq_increases_by_one_per_tick(make_collector, frames):
    collector = make_collector()
    for _ in range(3):
        collector.tick()
    seqs = [f["seq"] for f in frames]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]


def test_its_seq_continues_after_a_collector_restart(make_collector, frames):
    first = make_collector()
    first.tick()
    first.tick()
    make_collector().tick()
    assert [f["seq"] for f in frames] == [1, 2, 3]


def test_its_seq_never_goes_back_when_redis_forgets_it(make_collector, frames):
    collector = make_collector()
    for _ in range(5):
        collector.tick()
    get_sync_client().delete(key("collector", "seq"))  # what a Redis restart without persistence does
    collector.tick()
    assert frames[-1]["seq"] == 6


# Sampling state


def test_it_publishes_nothing_while_paused(make_collector, frames):
    set_sampling(paused=1)
    collector = make_collector()
    assert collector.tick() is None
    assert frames == []
    set_sampling(paused=0)
    assert collector.tick() is not None
    assert len(frames) == 1


def test_it_keeps_running_while_paused(make_collector, frames):
    set_sampling(paused=1, interval=0.25)
    assert make_collector().run(max_ticks=3) == 3
    assert frames == []


def test_it_honours_the_interval(make_collector, frames):
    set_sampling(interval=0.25)
    started = time.monotonic()
    make_collector().run(max_ticks=5)
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 1.4  # four intervals between five ticks
    assert len(frames) == 5


def test_a_new_interval_applies_from_the_next_tick(make_collector, frames):
    set_sampling(interval=0.25)
    collector = make_collector()
    collector.run(max_ticks=2)
    set_sampling(interval=0.5)
    started = time.monotonic()
    collector.run(max_ticks=3)
    assert 0.95 <= time.monotonic() - started < 1.4


def test_a_shorter_interval_cuts_a_long_wait_short(make_collector, frames):
    set_sampling(interval=30)

    class ShortenDuringTick(HostSampler):
        def sample(self):
            set_sampling(interval=0.25)  # lands after this tick read 30 s
            return super().sample()

    started = time.monotonic()
    make_collector(sampler=ShortenDuringTick()).run(max_ticks=2)
    assert time.monotonic() - started < 2.5
    assert len(frames) == 2


def test_its_ticks_do_not_drift_when_sampling_takes_time(make_collector, frames):
    set_sampling(interval=0.25)

    class SlowSampler(HostSampler):
        def sample(self):
            time.sleep(0.1)
            return super().sample()

    started = time.monotonic()
    make_collector(sampler=SlowSampler()).run(max_ticks=5)
    # Scheduled from the last tick's end it would take 5 x 0.1 + 4 x 0.25 = 1.5 s.
    assert time.monotonic() - started < 1.3


def test_it_stops_after_the_tick_in_progress(make_collector, frames):
    set_sampling(interval=0.25)
    collector = make_collector()

    class StopDuringSample(HostSampler):
        def sample(self):
            collector.stop()
            return super().sample()

    collector.sampler = StopDuringSample()
    assert collector.run() == 1
    assert len(frames) == 1


# Alerts


def test_it_marks_what_the_alert_evaluator_says_is_firing(make_collector, frames, db):
    calls = []

    class Evaluator:
        def evaluate(self, values, now):
            calls.append((values, now))
            return {"cpu", "disk"}

    make_collector(evaluator=Evaluator()).tick()
    assert frames[0]["firing"] == ["cpu", "disk"]
    values, now = calls[0]
    assert values == frames[0]["values"]
    assert now == pytest.approx(frames[0]["ts"], abs=0.01)


def test_it_runs_the_real_alert_evaluator(make_collector, frames, db):
    from alerts.evaluation import AlertEvaluator

    make_collector(evaluator=AlertEvaluator()).tick()
    assert frames[0]["firing"] == []


# Redis outages


def test_it_keeps_sampling_and_skips_publishing_while_redis_is_away(make_collector, frames, caplog):
    def publish_fails(*args, **kwargs):
        raise ConnectionError("Connection refused")

    collector = make_collector()
    collector.publish = publish_fails
    caplog.set_level(logging.INFO, logger="dashboard.collector.collector")
    assert collector.tick() is None
    assert collector.redis.is_down


def test_it_logs_one_line_per_outage_and_one_when_redis_is_back(caplog):
    clock = FakeClock()
    outage = RedisOutage(clock=clock, first_retry=0.5, max_retry=8)
    caplog.set_level(logging.INFO, logger="dashboard.collector.collector")
    for _ in range(20):
        clock.now += 1
        if outage.may_try():
            outage.failed(ConnectionError("refused"))
    outage.succeeded()
    outage.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "unavailable" in messages[0]
    assert "back after" in messages[1]


def test_it_backs_off_between_retries():
    clock = FakeClock()
    outage = RedisOutage(clock=clock, first_retry=0.5, max_retry=4)
    attempts = []
    for _ in range(200):  # 20 s in steps of 0.1 s
        clock.now += 0.1
        if outage.may_try():
            attempts.append(round(clock.now - 1000, 1))
            outage.failed(ConnectionError("refused"))
    gaps = [round(b - a, 1) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert set(gaps[4:]) == {4.0}


def test_it_publishes_again_once_redis_is_back(make_collector, frames):
    collector = make_collector()
    real_publish = collector.publish
    collector.publish = lambda *a, **kw: (_ for _ in ()).throw(ConnectionError("refused"))
    collector.tick()
    collector.publish = real_publish
    collector.redis._next_try_at = 0  # the backoff has passed
    assert collector.tick() is not None
    assert not collector.redis.is_down
    assert len(frames) == 1


# Metric definitions


def test_it_registers_every_builtin_metric(db):
    created = register_builtin_metrics()
    assert sorted(created) == sorted(spec.key for spec in builtin_metrics())
    cpu = Metric.objects.get(key="cpu")
    assert (cpu.label, cpu.unit, cpu.source) == ("CPU", "%", Metric.Source.SYSTEM)
    assert Metric.objects.get(key="ws_connections").source == Metric.Source.APP


def test_it_keeps_an_admins_edits_on_restart(db):
    register_builtin_metrics()
    Metric.objects.filter(key="cpu").update(label="Processor", warning_threshold=50, enabled=False)
    assert register_builtin_metrics() == []
    cpu = Metric.objects.get(key="cpu")
    assert (cpu.label, cpu.warning_threshold, cpu.enabled) == ("Processor", 50, False)


def test_every_app_metric_sampled_has_a_definition(redis_url):
    # System keys are checked against HostSampler.sample() above.
    assert set(collector_module.sample_app_metrics()) == set(APP_KEYS)


# The collector as a real OS process


class FrameListener:
    """Frames as every worker's SSE hub receives them: from the Redis pub/sub channel."""

    def __init__(self, redis_url):
        self.client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(pubsub_channel())

    def frames(self, count, timeout=15.0):
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.5)
            if message is None:
                continue
            event = json.loads(message["data"])
            if event["type"] == "frame":
                found.append(json.loads(event["data"]))
        assert len(found) == count, f"got {len(found)} of {count} frames within {timeout:.0f}s"
        return found

    def close(self):
        self.pubsub.close()
        self.client.close()


def start_collector(env, log_path):
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "collect_metrics"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process.log = log
    return process


def stop_collector(process, signum=None):
    try:
        process.send_signal(signum or signal.SIGTERM)
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        process.log.close()


@pytest.mark.slow
def test_the_command_publishes_frames_that_reach_storage(subprocess_env, redis_url, tmp_path):
    from django_eventstream.utils import get_storage

    listener = FrameListener(redis_url)
    env = {**subprocess_env, "COLLECTOR_HOST": "collector-under-test"}
    process = start_collector(env, tmp_path / "collector.log")
    try:
        live = listener.frames(2)
    finally:
        assert stop_collector(process) == 0
        listener.close()
    assert live[1]["seq"] == live[0]["seq"] + 1
    assert set(live[0]["values"]) == set(SYSTEM_KEYS + APP_KEYS)
    # Its values are the series of its host.
    assert live[0]["host"] == "collector-under-test"
    assert {point[0] for point in event_frames.points_of("frame", live[0])} == {
        f'{key}{{host="collector-under-test"}}' for key in SYSTEM_KEYS + APP_KEYS
    }
    stored = get_storage().get_events("metrics", 0, limit=100)
    stored_frames = [json.loads(event.data) for event in stored if event.type == "frame"]
    assert [f["seq"] for f in stored_frames[:2]] == [f["seq"] for f in live]
    assert Metric.objects.filter(source=Metric.Source.SYSTEM).count() == len(SYSTEM_KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_the_command_exits_cleanly_on_a_signal(subprocess_env, redis_url, tmp_path, signal_name):
    listener = FrameListener(redis_url)
    log_path = tmp_path / "collector.log"
    process = start_collector(subprocess_env, log_path)
    try:
        listener.frames(1)
    finally:
        listener.close()
    assert stop_collector(process, getattr(signal, signal_name)) == 0
    log = log_path.read_text()
    assert "collector stopped after" in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_the_command_survives_a_redis_outage(subprocess_env, tmp_path):
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    redis_server = start_redis(port)
    log_path = tmp_path / "collector.log"
    process = start_collector({**subprocess_env, "REDIS_URL": redis_url}, log_path)
    try:
        listener = FrameListener(redis_url)
        before = listener.frames(2)
        listener.close()

        redis_server.kill()
        redis_server.wait()
        time.sleep(4)  # several ticks with Redis away
        assert process.poll() is None, "the collector died with Redis"

        redis_server = start_redis(port)
        listener = FrameListener(redis_url)
        after = listener.frames(2, timeout=20)
        listener.close()
    finally:
        rc = stop_collector(process)
        redis_server.kill()
        redis_server.wait()
    assert rc == 0
    assert after[0]["seq"] > before[-1]["seq"]
    assert after[1]["seq"] > after[0]["seq"]
    log = log_path.read_text()
    assert log.count("Redis is unavailable") == 1, log
    assert log.count("Redis is back") == 1, log
    assert "Traceback" not in log

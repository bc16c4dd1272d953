"""The recorder livedash_client's middleware and hooks share: aggregation, bounds, pushing."""

import logging
import threading

import line_protocol_parser
import pytest
from agent_receiver import Receiver
from livedash_client.recorder import Recorder, Summary, get_recorder


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def points(lines):
    parsed = (line_protocol_parser.parse_line(line) for line in lines)
    return {(p["measurement"], tuple(sorted(p["tags"].items()))): p["fields"]["value"] for p in parsed}


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def make(url, **kwargs):
    clock = kwargs.pop("clock", None) or Clock()
    recorder = Recorder(url, "tok", "shop", clock=clock, wallclock_ns=lambda: 5_000_000_000, **kwargs)
    recorder._thread = threading.current_thread()  # these tests flush by hand: no background thread
    return recorder, clock


def test_counters_become_rates_and_fall_to_zero_once_quiet(receiver):
    recorder, clock = make(receiver.url)
    for _ in range(10):
        recorder.count("django_requests", {"view": "users", "status": "200"})
    recorder.count("django_requests", {"view": "users", "status": "500"}, 5)
    clock.now += 5
    assert points(recorder.collect()) == {
        ("django_requests", (("app", "shop"), ("status", "200"), ("view", "users"))): 2.0,
        ("django_requests", (("app", "shop"), ("status", "500"), ("view", "users"))): 1.0,
    }
    recorder.count("django_requests", {"view": "users", "status": "200"})
    clock.now += 1
    assert points(recorder.collect()) == {
        ("django_requests", (("app", "shop"), ("status", "200"), ("view", "users"))): 1.0,
        ("django_requests", (("app", "shop"), ("status", "500"), ("view", "users"))): 0.0,
    }
    clock.now += 1
    assert points(recorder.collect()) == {
        ("django_requests", (("app", "shop"), ("status", "200"), ("view", "users"))): 0.0,
    }
    clock.now += 1
    assert recorder.collect() == []


def test_summaries_give_p50_p95_and_the_exact_maximum(receiver):
    recorder, _ = make(receiver.url)
    for ms in range(1, 101):
        recorder.observe("django_request_ms", {"view": "users"}, float(ms))
    labels = (("app", "shop"), ("view", "users"))
    assert points(recorder.collect()) == {
        ("django_request_ms_p50", labels): 50.0,
        ("django_request_ms_p95", labels): 95.0,
        ("django_request_ms_max", labels): 100.0,
    }


def test_a_summary_keeps_a_bounded_sample_but_counts_and_maxes_everything():
    summary = Summary()
    for value in range(100_000):
        summary.add(float(value))
    assert len(summary.sample) == 512
    assert (summary.count, summary.maximum) == (100_000, 99_999.0)
    assert 30_000 < summary.percentile(0.5) < 70_000


def test_series_beyond_the_bound_are_dropped_with_a_counted_warning(receiver, caplog):
    recorder, _ = make(receiver.url, max_series=3)
    with caplog.at_level(logging.WARNING, logger="livedash_client"):
        for n in range(10):
            recorder.count("django_requests", {"view": f"v{n}"})
    assert len(recorder.collect()) == 3
    assert recorder.dropped_series.total == 7
    assert "over 3 series in an interval" in caplog.text


def test_a_flush_pushes_the_batch_with_the_token(receiver):
    recorder, clock = make(receiver.url)
    recorder.count("celery_task_runs", {"task": "send_mail"}, 3)
    clock.now += 3
    recorder.flush()
    (request,) = receiver.requests
    assert request.headers["Authorization"] == "Token tok"
    assert request.lines == ["celery_task_runs,app=shop,task=send_mail value=1.0 5000000000"]


def test_while_livedash_is_away_batches_wait_bounded_then_go_in_order(receiver, caplog):
    receiver.answer(503)
    recorder, clock = make(receiver.url, max_pending=3)
    with caplog.at_level(logging.WARNING, logger="livedash_client"):
        for n in range(1, 6):
            recorder.count("c", {"n": str(n)})
            clock.now += 0.1
            recorder.flush()  # the first fails, then the backoff (at least 0.5 s) holds the others back
    assert len(recorder.pending) == 3
    assert recorder.dropped_batches.total == 2
    assert "batches wait in memory" in caplog.text and "dropped the oldest 1 batch" in caplog.text
    clock.now += 120
    recorder.flush()
    sent = [points(r.lines) for r in receiver.requests if r.status == 204]
    # This flush's own batch (n=5 falling to 0) pushed out batch 3: batches 4, 5 and it, in order.
    assert [sorted(dict(k[1])["n"] for k, v in batch.items() if v > 0) for batch in sent] == [
        ["4"],
        ["5"],
        [],
    ]
    assert recorder.dropped_batches.total == 3 and not recorder.pending


def test_one_recorder_and_one_thread_per_destination(receiver):
    first = get_recorder(receiver.url, "tok", "shop", 0.05)
    try:
        assert get_recorder(receiver.url, "tok", "shop", 0.05) is first
        first.count("c", {"view": "x"})
        first.count("c", {"view": "x"})
        receiver.wait_for(lambda r: r.stored_lines(), what="a push from the background thread")
        names = [t.name for t in threading.enumerate()]
        assert names.count("livedash-client") >= 1
        assert first._thread.daemon
    finally:
        first.stop()

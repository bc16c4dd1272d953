"""The agent's sender against a real HTTP server: 204, 500, 429, 400 and nothing listening."""

import logging
import socket
import threading
import time

import pytest
from agent_receiver import Receiver
from livedash_agent.agent import Agent
from livedash_agent.buffer import DiskBuffer
from livedash_agent.sender import Backoff, Result, Sender, parse_retry_after, write_url

START_NS = 1_700_000_000_000_000_000


class CountingSampler:
    """Readings that say which sample they are, so every arrival can be checked."""

    def __init__(self):
        self.taken = 0

    def sample(self):
        self.taken += 1
        return {"cpu": float(self.taken), "processes": 100 + self.taken}


class Clock:
    """Wall-clock nanoseconds one second apart per sample, so timestamps are known exactly."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return START_NS + self.n * 1_000_000_000


def expected_lines(count, host="web1"):
    return [
        line
        for n in range(1, count + 1)
        for line in (
            f"cpu,host={host} value={float(n)!r} {START_NS + n * 1_000_000_000}",
            f"processes,host={host} value={float(100 + n)!r} {START_NS + n * 1_000_000_000}",
        )
    ]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def make_agent(tmp_path, url, **kwargs):
    kwargs.setdefault("interval", 0.02)
    return Agent(
        sampler=CountingSampler(),
        buffer=DiskBuffer(tmp_path / "buffer", max_samples=kwargs.pop("max_samples", 10_000)),
        sender=Sender(url, "secret-token", timeout=5),
        host="web1",
        backoff=Backoff(first=0.05, cap=0.2),
        wallclock_ns=Clock(),
        **kwargs,
    )


def run_in_thread(agent, samples=None):
    thread = threading.Thread(target=agent.run, kwargs={"max_samples": samples}, daemon=True)
    thread.start()
    return thread


def stop_and_finish(agent, thread):
    """Stop the agent, then send what its buffer still holds, as its next start would."""
    agent.stop()
    thread.join(10)
    assert not thread.is_alive()
    while (batch := agent.buffer.begin_send(100)) is not None:
        assert agent.sender.push(batch.lines).result is Result.DELIVERED
        agent.buffer.sent(batch)
    return agent.sampler.taken


def test_it_posts_gzipped_line_protocol_with_the_token(tmp_path, receiver):
    agent = make_agent(tmp_path, receiver.url + "/")
    agent.sample_once()
    assert agent.sender.push(agent.buffer.begin_send(10).lines).result is Result.DELIVERED
    (request,) = receiver.requests
    assert request.path == "/api/v2/write?precision=ns"
    assert request.headers["Authorization"] == "Token secret-token"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.lines == expected_lines(1)


def test_every_sample_arrives_once_in_order(tmp_path, receiver):
    agent = make_agent(tmp_path, receiver.url)
    thread = run_in_thread(agent)
    receiver.wait_for(lambda r: len(r.stored_lines()) >= 40, what="20 samples")
    taken = stop_and_finish(agent, thread)
    assert receiver.stored_lines() == expected_lines(taken)


def test_a_5xx_is_retried_and_nothing_is_lost_or_doubled(tmp_path, receiver):
    receiver.answer(500, 503, 502)
    agent = make_agent(tmp_path, receiver.url)
    thread = run_in_thread(agent)
    receiver.wait_for(lambda r: len(r.stored_lines()) >= 20, what="10 samples after the 5xx")
    taken = stop_and_finish(agent, thread)
    assert receiver.stored_lines() == expected_lines(taken)
    assert [r.status for r in receiver.requests][:3] == [500, 503, 502]


def test_a_429_waits_as_long_as_retry_after_says(tmp_path, receiver):
    receiver.answer((429, {"Retry-After": "1"}))
    agent = make_agent(tmp_path, receiver.url, interval=0.05)
    thread = run_in_thread(agent)
    receiver.wait_for(lambda r: len(r.stored_lines()) >= 2, what="the sample after the 429")
    taken = stop_and_finish(agent, thread)
    refused, accepted = receiver.requests[0], receiver.requests[1]
    assert refused.status == 429 and accepted.lines[:2] == expected_lines(1)
    assert accepted.at - refused.at >= 1.0
    assert receiver.stored_lines() == expected_lines(taken)


def test_a_refused_batch_is_dropped_with_an_error_and_later_samples_go_through(tmp_path, receiver, caplog):
    receiver.answer(400)
    agent = make_agent(tmp_path, receiver.url)
    agent.sample_once()
    with caplog.at_level(logging.ERROR, logger="livedash_agent"):
        agent._deliver(agent.buffer.begin_send(10))
    assert "livedash refused 1 sample(s), dropped: HTTP 400" in caplog.text
    assert len(agent.buffer) == 0
    agent.sample_once()
    agent._deliver(agent.buffer.begin_send(10))
    assert receiver.stored_lines() == expected_lines(2)[2:]


def test_while_livedash_is_away_samples_wait_on_disk_and_arrive_later_with_their_time(tmp_path, caplog):
    port = free_port()
    agent = make_agent(tmp_path, f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.INFO, logger="livedash_agent"):
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while agent.sampler.taken < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.sampler.taken >= 30, "the sampler went on while nothing answered"
        receiver = Receiver().start(port)
        try:
            receiver.wait_for(lambda r: len(r.stored_lines()) >= 60, what="the buffer to drain")
            taken = stop_and_finish(agent, thread)
            assert receiver.stored_lines() == expected_lines(taken)
        finally:
            receiver.stop()
    assert "cannot reach livedash" in caplog.text
    assert "livedash answers again" in caplog.text


def test_a_batch_in_flight_when_stopped_is_committed_before_run_returns(tmp_path, receiver):
    agent = make_agent(tmp_path, receiver.url)
    assert run_in_thread(agent, 5).join(30) is None
    # run() returned: whatever was posted is out of the buffer, the rest is in it.
    posted = len(receiver.stored_lines()) // 2
    assert posted + len(agent.buffer) == 5


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=lambda: 1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_with_jitter_up_to_its_cap_and_honours_retry_after():
    backoff = Backoff(first=1, cap=8, rng=lambda: 0.5)
    assert [backoff.next_delay() for _ in range(6)] == [0.75, 1.5, 3.0, 6.0, 6.0, 6.0]
    assert 30 <= Backoff(rng=lambda: 0.999).next_delay(retry_after=30) <= 31
    backoff.reset()
    assert backoff.next_delay() == 0.75


@pytest.mark.parametrize("url", ["ftp://x", "livedash.example", "http://"])
def test_only_http_urls_are_accepted(url):
    with pytest.raises(ValueError, match="http:// or https://"):
        write_url(url)


def test_a_path_prefix_is_kept():
    assert (
        write_url("https://example.org/livedash/") == "https://example.org/livedash/api/v2/write?precision=ns"
    )

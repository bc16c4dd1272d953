"""Agents as real processes pushing to real livedash workers: hosts become `host` labels, and
the samples an agent buffered while livedash was out of reach arrive once, with their time."""

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deploy.supervisor import free_port
from tests.realclients import EventStream, wait_until

pytestmark = pytest.mark.slow

AGENT_DIR = Path(__file__).resolve().parents[1]
HOST_METRICS = {"cpu", "memory", "disk", "load_1m", "net_rx", "net_tx", "processes"}


@pytest.fixture
def token(manage):
    result = manage("create_token", "fleet", "--metrics", "*")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def agents(tmp_path):
    started = []

    def start(url, token, host, *extra):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(AGENT_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        args = ["--url", url, "--token", token, "--host", host, "--interval", "0.3"]
        args += ["--buffer-dir", str(tmp_path / host), *extra]
        process = subprocess.Popen(
            [sys.executable, "-m", "livedash_agent", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"{host}.log", "ab"),  # noqa: SIM115 (the process holds it)
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def metric_events(stream, host):
    return [e["data"] for e in stream.of_type("metric") if e["data"].get("labels", {}).get("host") == host]


def arrivals_of(expected, arrived):
    """How many times each expected (name, unix seconds) arrived; times match within 10 µs, as
    nanoseconds become float seconds on the way (samples are 0.3 s apart)."""
    return {
        (name, ts): sum(1 for got_name, got_ts in arrived if got_name == name and abs(got_ts - ts) < 1e-5)
        for name, ts in expected
    }


async def test_three_agents_on_two_workers_become_series_labelled_by_host(
    web_workers, token, agents, alice_cookies
):
    first, second = web_workers(2)
    hosts = ("fleet-a", "fleet-b", "fleet-c")
    async with EventStream(first, ["metrics"], alice_cookies) as stream:
        for host, url in zip(hosts, (first, second, second), strict=True):
            agents(url, token, host)

        def every_host_sent_every_metric():
            seen = {
                (d["labels"].get("host"), d["name"]) for d in (e["data"] for e in stream.of_type("metric"))
            }
            return all((host, name) in seen for host in hosts for name in HOST_METRICS)

        await wait_until(every_host_sent_every_metric, message="every metric of every host")
    cpu = next(d for d in metric_events(stream, "fleet-b") if d["name"] == "cpu")
    assert cpu["labels"] == {"host": "fleet-b"}
    assert cpu["series"] == 'cpu{host="fleet-b"}'


async def test_samples_buffered_while_livedash_was_unreachable_arrive_once_with_their_time(
    web_workers, token, agents, alice_cookies, tmp_path
):
    (url,) = web_workers(1)
    # Cut off: nothing listens where the agent sends, so it keeps its samples on disk.
    away = agents(f"http://127.0.0.1:{free_port()}", token, "fleet-d")
    buffer_file = tmp_path / "fleet-d" / "buffer.sqlite3"

    def buffered():
        if not buffer_file.exists():
            return 0
        with contextlib.closing(sqlite3.connect(buffer_file, timeout=5)) as db:
            try:
                return db.execute("SELECT count(*) FROM samples").fetchone()[0]
            except sqlite3.OperationalError:  # still being created
                return 0

    await wait_until(buffered, message="a first sample waiting on disk")
    await wait_until(lambda: buffered() >= 5, message="samples waiting on disk")
    await asyncio.to_thread(stop, away)
    with contextlib.closing(sqlite3.connect(buffer_file)) as db:
        rows = db.execute("SELECT lines FROM samples ORDER BY seq").fetchall()
    waiting = [line for (text,) in rows for line in text.split("\n")]
    expected = {(line.split(",", 1)[0], int(line.rsplit(" ", 1)[1]) / 1e9) for line in waiting}
    assert len(expected) == len(waiting) >= 5 * len(HOST_METRICS)

    async with EventStream(url, ["metrics"], alice_cookies) as stream:
        back = agents(url, token, "fleet-d")  # livedash answers now: the buffer drains first

        def arrived():
            return [(d["name"], d["ts"]) for d in metric_events(stream, "fleet-d")]

        await wait_until(
            lambda: all(arrivals_of(expected, arrived()).values()),
            timeout=60,
            message="every buffered sample",
        )
        await asyncio.to_thread(stop, back)
        got = arrived()
    # Every buffered sample arrived once, with the time it was taken; and nothing twice.
    assert arrivals_of(expected, got) == dict.fromkeys(expected, 1)
    assert max(Counter(got).values()) == 1

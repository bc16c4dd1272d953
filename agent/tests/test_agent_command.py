"""`livedash-agent` as a real process: --once, a run against a receiver, SIGTERM, bad arguments."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import line_protocol_parser
import pytest
from agent_receiver import Receiver
from livedash_agent.buffer import DiskBuffer

AGENT_DIR = Path(__file__).resolve().parents[1]
# Real agent processes, each for a few seconds.
pytestmark = pytest.mark.slow

HOST_METRICS = {"cpu", "memory", "disk", "load_1m", "net_rx", "net_tx", "processes"}


def agent_env(tmp_path):
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(AGENT_DIR), os.environ.get("PYTHONPATH", "")]),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


def agent(tmp_path, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "livedash_agent", *args],
        env=agent_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def buffered(directory):
    """Samples waiting in a running agent's buffer, read beside it (SQLite lets a reader in)."""
    path = directory / "buffer.sqlite3"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
        try:
            return db.execute("SELECT count(*) FROM samples").fetchone()[0]
        except sqlite3.OperationalError:  # the agent is still creating it
            return 0


def test_once_prints_one_sample_of_every_host_metric_as_line_protocol(tmp_path):
    before = time.time_ns()
    process = agent(tmp_path, "--once", "--host", "web 1")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    points = [line_protocol_parser.parse_line(line) for line in out.splitlines()]
    assert {p["measurement"] for p in points} == HOST_METRICS
    assert all(p["tags"] == {"host": "web 1"} for p in points)
    assert len({p["time"] for p in points}) == 1 and before < points[0]["time"] < time.time_ns()
    assert not (tmp_path / "state").exists(), "--once neither buffers nor sends"


def test_it_pushes_the_host_labelled_samples_and_stops_cleanly_on_sigterm(tmp_path):
    receiver = Receiver().start()
    try:
        process = agent(
            tmp_path, "--url", receiver.url, "--token", "t0k", "--interval", "0.2", "--host", "web1"
        )
        receiver.wait_for(lambda r: len(r.stored_lines()) >= 14, what="two samples")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "SIGTERM: stopping" in err and "stopped;" in err
        points = [line_protocol_parser.parse_line(line) for line in receiver.stored_lines()]
        assert {p["measurement"] for p in points} == HOST_METRICS
        assert {p["tags"]["host"] for p in points} == {"web1"}
        assert receiver.requests[0].headers["Authorization"] == "Token t0k"
    finally:
        receiver.stop()


def test_it_buffers_in_its_state_folder_while_livedash_is_away_and_sends_later(tmp_path):
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # nothing listens there now
    process = agent(tmp_path, "--url", f"http://127.0.0.1:{port}", "--token", "t", "--interval", "0.1")
    buffer_dir = tmp_path / "state" / "livedash-agent"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and buffered(buffer_dir) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "cannot reach livedash" in err
    buffer = DiskBuffer(buffer_dir, max_samples=10_000)
    batch = buffer.begin_send(10_000)
    buffer.not_sent(batch)
    buffer.close()
    waiting = batch.lines
    assert waiting, "the samples taken while livedash was away wait on disk"

    receiver = Receiver().start(port)
    try:
        process = agent(tmp_path, "--url", receiver.url, "--token", "t", "--interval", "60")
        receiver.wait_for(lambda r: len(r.stored_lines()) >= len(waiting), what="the buffered samples")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        # The batch that was in flight when SIGINT came had its answer: nothing is lost or doubled.
        assert receiver.stored_lines() == waiting
    finally:
        receiver.stop()


def test_a_burst_of_signals_still_stops_it_cleanly(tmp_path):
    # Signals landing while the agent holds a lock (waking its sender, logging) once deadlocked it.
    receiver = Receiver().start()
    try:
        process = agent(tmp_path, "--url", receiver.url, "--token", "t", "--interval", "0.05")
        receiver.wait_for(lambda r: r.stored_lines(), what="a first sample")
        for _ in range(20):
            process.send_signal(signal.SIGTERM)
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped;" in err
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token", "t"], "--url and --token are required"),
        (["--url", "ftp://x", "--token", "t"], "--url: the livedash URL must be http"),
        (["--url", "http://x", "--token", "t", "--interval", "0"], "must be above 0"),
        (["--url", "http://x", "--token", "t", "--buffer-hours", "nan"], "must be above 0"),
        (["--once", "--host", ""], "--host: must not be empty"),
    ],
)
def test_bad_arguments_exit_with_a_one_line_reason(tmp_path, args, message):
    process = agent(tmp_path, *args)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert message in err


def test_a_second_agent_on_the_same_buffer_exits_with_a_reason(tmp_path):
    held = DiskBuffer(tmp_path / "buf", max_samples=10)
    try:
        process = agent(
            tmp_path, "--url", "http://127.0.0.1:9", "--token", "t", "--buffer-dir", str(tmp_path / "buf")
        )
        _, err = process.communicate(timeout=30)
        assert process.returncode == 1
        assert "another livedash-agent uses the buffer directory" in err
    finally:
        held.close()

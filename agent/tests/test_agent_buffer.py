"""The agent's disk buffer: bounded, oldest dropped first, in order, and safe across crashes."""

import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from livedash_agent.buffer import BufferBusy, DiskBuffer, default_directory

AGENT_DIR = Path(__file__).resolve().parents[1]


def sample(n):
    return [f"cpu,host=h value={n}.0 {n}", f"memory,host=h value={n}.0 {n}"]


def drain(buffer, batch=1000):
    got = []
    while (taken := buffer.begin_send(batch)) is not None:
        got.extend(taken.samples)
        buffer.sent(taken)
    return got


def test_it_gives_back_samples_oldest_first_in_batches(tmp_path):
    buffer = DiskBuffer(tmp_path, max_samples=100)
    for n in range(10):
        buffer.append(sample(n))
    first = buffer.begin_send(4)
    assert first.samples == [sample(n) for n in range(4)]
    assert first.lines == [line for n in range(4) for line in sample(n)]
    buffer.sent(first)
    assert drain(buffer) == [sample(n) for n in range(4, 10)]
    assert len(buffer) == 0 and buffer.begin_send(4) is None


def test_a_batch_not_sent_stays_first_in_line(tmp_path):
    buffer = DiskBuffer(tmp_path, max_samples=100)
    for n in range(3):
        buffer.append(sample(n))
    buffer.not_sent(buffer.begin_send(2))
    buffer.append(sample(3))
    assert drain(buffer) == [sample(n) for n in range(4)]


def test_it_keeps_at_most_its_bound_and_drops_the_oldest_with_a_warning(tmp_path, caplog):
    buffer = DiskBuffer(tmp_path, max_samples=5)
    with caplog.at_level(logging.WARNING, logger="livedash_agent"):
        for n in range(12):
            buffer.append(sample(n))
    assert len(buffer) == 5
    assert buffer.dropped == 7
    assert "dropped the oldest" in caplog.text
    assert drain(buffer) == [sample(n) for n in range(7, 12)]


def test_drop_warnings_are_rate_limited_but_count_everything(tmp_path, caplog):
    now = [0.0]
    buffer = DiskBuffer(tmp_path, max_samples=1, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="livedash_agent"):
        for n in range(10):
            buffer.append(sample(n))
        now[0] += 61
        buffer.append(sample(10))
    warnings = [r.getMessage() for r in caplog.records if "dropped the oldest" in r.getMessage()]
    assert warnings == [
        "buffer full (1 samples): dropped the oldest 1 sample(s) that livedash never got",
        "buffer full (1 samples): dropped the oldest 9 sample(s) that livedash never got",
    ]
    assert buffer.dropped == 10


def test_the_disk_it_uses_stays_bounded(tmp_path):
    buffer = DiskBuffer(tmp_path, max_samples=50)
    big = ["x" * 2000]
    for _ in range(200):
        buffer.append(big)
    size_after_200 = sum(f.stat().st_size for f in tmp_path.iterdir())
    for _ in range(2000):
        buffer.append(big)
    size_after_2200 = sum(f.stat().st_size for f in tmp_path.iterdir())
    # SQLite reuses the pages of deleted rows; the write-ahead log is checkpointed.
    assert size_after_2200 < size_after_200 * 2 + 1_000_000


def test_samples_survive_a_restart(tmp_path):
    buffer = DiskBuffer(tmp_path, max_samples=10)
    buffer.append(sample(1))
    buffer.append(sample(2))
    buffer.close()
    assert drain(DiskBuffer(tmp_path, max_samples=10)) == [sample(1), sample(2)]


def test_one_directory_serves_one_agent(tmp_path):
    first = DiskBuffer(tmp_path, max_samples=10)
    with pytest.raises(BufferBusy, match="another livedash-agent"):
        DiskBuffer(tmp_path, max_samples=10)
    first.close()
    DiskBuffer(tmp_path, max_samples=10).close()


def crash(tmp_path, script):
    """Run `script` in a real process that kills itself (SIGKILL: no clean-up at all)."""
    code = (
        textwrap.dedent(
            f"""
        import os, signal
        from livedash_agent.buffer import DiskBuffer
        buffer = DiskBuffer({str(tmp_path)!r}, max_samples=100)
        """
        )
        + textwrap.dedent(script)
        + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(AGENT_DIR), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60, capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()


def test_a_sample_stored_before_a_crash_is_still_there(tmp_path):
    crash(tmp_path, "buffer.append(['cpu value=1.0 1'])\nbuffer.append(['cpu value=2.0 2'])")
    assert drain(DiskBuffer(tmp_path, max_samples=100)) == [["cpu value=1.0 1"], ["cpu value=2.0 2"]]


def test_a_batch_sent_before_a_crash_is_never_sent_again(tmp_path):
    crash(
        tmp_path,
        """
        for n in range(5):
            buffer.append([f'cpu value={n}.0 {n}'])
        buffer.sent(buffer.begin_send(2))
        """,
    )
    assert drain(DiskBuffer(tmp_path, max_samples=100)) == [[f"cpu value={n}.0 {n}"] for n in range(2, 5)]


def test_a_batch_whose_answer_a_crash_cut_off_is_dropped_not_sent_twice(tmp_path, caplog):
    crash(
        tmp_path,
        """
        for n in range(5):
            buffer.append([f'cpu value={n}.0 {n}'])
        buffer.begin_send(2)  # posted, and the process died before livedash answered
        """,
    )
    with caplog.at_level(logging.WARNING, logger="livedash_agent"):
        buffer = DiskBuffer(tmp_path, max_samples=100)
    assert "stopped while sending 2 sample(s)" in caplog.text
    assert drain(buffer) == [[f"cpu value={n}.0 {n}"] for n in range(2, 5)]


def test_a_batch_known_unsent_before_a_crash_is_sent_after_it(tmp_path):
    crash(
        tmp_path,
        """
        for n in range(3):
            buffer.append([f'cpu value={n}.0 {n}'])
        buffer.not_sent(buffer.begin_send(2))  # connection refused
        """,
    )
    assert len(drain(DiskBuffer(tmp_path, max_samples=100))) == 3


def test_its_default_home_is_systemds_state_directory_or_the_users(tmp_path):
    assert default_directory({"STATE_DIRECTORY": "/var/lib/livedash-agent"}) == Path(
        "/var/lib/livedash-agent"
    )
    assert default_directory({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "livedash-agent"
    assert default_directory({}) == Path.home() / ".local" / "state" / "livedash-agent"

"""`make run`'s process (deploy/run_local.py): a web worker and the collector, a bundled Redis
when none answers, and Ctrl-C stopping every one of them."""

import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from conftest import ROOT
from deploy.supervisor import free_port, redis_answers, wait_for_port


@pytest.fixture
def run_local(subprocess_env, tmp_path):
    """Start `python -m deploy.run_local` with extra env; stopped (SIGINT) at the end if still running."""
    started = []

    def start(**env):
        log = open(tmp_path / "run_local.log", "wb")  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.run_local"],
            cwd=ROOT,
            env={**subprocess_env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        process.log_path = tmp_path / "run_local.log"
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def healthz(port):
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(f"http://127.0.0.1:{port}/healthz")


def wait_for_children(process, names, timeout=60):
    """The child processes whose command lines mention each of names, once they all run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(process.pid).children(recursive=True)
        found = {name: [c for c in children if name in " ".join(c.cmdline())] for name in names}
        if all(found.values()):
            return [c for group in found.values() for c in group]
        assert process.poll() is None, process.log_path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"not all of {names} started: {process.log_path.read_text()}")


@pytest.mark.slow
def test_it_serves_and_collects_and_stops_everything_on_ctrl_c(run_local):
    port = free_port()
    process = run_local(PORT=str(port))
    wait_for_port(port, process=process, timeout=60)
    children = wait_for_children(process, ["deploy.worker", "collect_metrics"])
    assert healthz(port).status_code == 200

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []


@pytest.mark.slow
def test_it_starts_a_bundled_redis_when_none_answers(run_local):
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    assert not redis_answers(redis_url)
    process = run_local(PORT=str(port), REDIS_URL=redis_url)
    wait_for_port(port, process=process, timeout=60)
    assert redis_answers(redis_url)
    assert healthz(port).json()["redis"] == "ok"
    assert "starting the bundled redis-server" in process.log_path.read_text()

    process.send_signal(signal.SIGINT)
    process.wait(30)
    assert not redis_answers(redis_url), "the bundled Redis must stop with make run"

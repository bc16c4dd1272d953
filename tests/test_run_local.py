"""`make run`'s process (deploy/run_local.py): a web worker and the collector, a bundled Redis
when none answers, and Ctrl-C stopping every one of them."""

import os
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
            # Its .env in tmp_path, never the project folder's (a developer's own make run).
            env={**subprocess_env, "ENV_FILE": str(tmp_path / ".env"), **env},
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


def redis_server_of(process):
    (server,) = [
        c for c in psutil.Process(process.pid).children(recursive=True) if "redis-server" in c.name()
    ]
    return server


@pytest.mark.slow
def test_its_bundled_redis_is_started_again_when_it_dies(run_local, tmp_path):
    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    process = run_local(PORT=str(port), REDIS_URL=redis_url, ENV_FILE=str(tmp_path / ".env"))
    wait_for_port(port, process=process, timeout=60)
    first = redis_server_of(process)

    first.kill()
    first.wait(10)
    deadline = time.monotonic() + 30
    while not (redis_answers(redis_url) and healthz(port).status_code == 200):
        assert process.poll() is None, process.log_path.read_text()
        assert time.monotonic() < deadline, "the bundled Redis did not come back"
        time.sleep(0.2)
    assert redis_server_of(process).pid != first.pid
    assert process.poll() is None
    assert "redis-server exited with -9; starting it again" in process.log_path.read_text()


@pytest.mark.slow
def test_commands_in_a_second_terminal_reach_its_database_and_redis(run_local, tmp_path, alice):
    """`make run` with a Redis of its own and a prefix of its own; then commands in a
    shell that has none of its environment, only .env (here at ENV_FILE)."""
    import redis

    port, redis_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    dotenv = tmp_path / ".env"
    process = run_local(PORT=str(port), REDIS_URL=redis_url, REDIS_PREFIX="beside", ENV_FILE=str(dotenv))
    wait_for_port(port, process=process, timeout=60)
    assert dotenv.read_text().startswith("# Written by `make run`")

    bare = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")
    }
    second_terminal = {**bare, "ENV_FILE": str(dotenv)}

    def command(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=second_terminal,
            capture_output=True,
            text=True,
        )

    pushed = command("push_metric", "beside_run", "42")
    assert pushed.returncode == 0, pushed.stderr
    client = redis.Redis.from_url(redis_url)
    assert client.keys("beside:*"), "push_metric published to another Redis or prefix"
    stored = client.mget(client.keys("beside:*event*"))
    assert any(b"beside_run" in (raw or b"") for raw in stored)

    notified = command("notify", "--user", "alice", "from the second terminal")
    assert notified.returncode == 0, notified.stderr
    from notifications.models import Notification

    assert Notification.objects.filter(title="from the second terminal").exists()


def test_dotenv_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0


def test_it_leaves_alone_a_dotenv_it_did_not_write(tmp_path, monkeypatch):
    from deploy.run_local import write_env_file

    dotenv = tmp_path / ".env"
    dotenv.write_text("SECRET_KEY=compose-secret\nPOSTGRES_PASSWORD=x\n")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    assert write_env_file(dotenv) is False
    assert dotenv.read_text() == "SECRET_KEY=compose-secret\nPOSTGRES_PASSWORD=x\n"
    dotenv.unlink()
    assert write_env_file(dotenv) is True
    assert "REDIS_URL=redis://127.0.0.1:6399/0" in dotenv.read_text()


def test_a_supervised_child_that_keeps_dying_is_given_up_on(capsys):
    from deploy.supervisor import Supervisor

    supervisor = Supervisor()
    keeper = supervisor.start("keeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start("flaky", [sys.executable, "-c", "raise SystemExit(3)"], restart=True)
    supervisor.start("last", [sys.executable, "-c", "import time; time.sleep(60)"])
    assert supervisor.wait() == 3
    output = capsys.readouterr().out
    assert output.count("flaky exited with 3; starting it again") == Supervisor.RESTART_LIMIT
    assert "flaky exited with 3; stopping everything" in output
    assert [child.name for child in supervisor.children] == []
    assert keeper.poll() is not None, "everything is stopped once it gives up"

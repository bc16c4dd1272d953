"""`python -m deploy.worker`: one web worker on the server ASGI_SERVER names, with the
production options, as a real OS process."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import ROOT
from deploy.supervisor import Supervisor, free_port, wait_for_port


@pytest.fixture
def start_worker(subprocess_env, tmp_path):
    supervisor = Supervisor(env=subprocess_env)

    def start(**env):
        port = free_port()
        log = open(tmp_path / f"worker-{port}.log", "wb")  # noqa: SIM115
        process = supervisor.worker("worker", port, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(port, process=process)
        process.log_path = log.name
        return f"http://127.0.0.1:{port}", process

    yield start
    supervisor.stop()


def production(**env):
    """DEBUG off, as behind nginx in production: HTTP is redirected to HTTPS."""
    return {"DEBUG": "0", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "127.0.0.1", **env}


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_serves_on_the_server_asgi_server_names(start_worker, server):
    base, process = start_worker(ASGI_SERVER=server)
    response = httpx.get(f"{base}/healthz", timeout=10)
    assert response.status_code == 200
    # daphne names itself; the uvicorn worker sends no Server header at all.
    assert response.headers.get("server") == ("daphne" if server == "daphne" else None)
    assert f"deploy.worker: {server} on 127.0.0.1:" in Path(process.log_path).read_text()


def test_it_refuses_an_unknown_server_in_one_line_naming_the_variable(subprocess_env):
    result = subprocess.run(
        [sys.executable, "-m", "deploy.worker", "--port", str(free_port())],
        cwd=ROOT,
        env={**subprocess_env, "ASGI_SERVER": "gunicorn"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == ["deploy.worker: ASGI_SERVER must be one of daphne, uvicorn, got 'gunicorn'"]


@pytest.mark.slow
@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_believes_forwarded_headers_from_the_trusted_proxy_only(start_worker, server):
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    path = "/events/?channel=metrics"  # past the HTTPS redirect: 403 to an anonymous client
    # From a trusted peer (the default, 127.0.0.1): the request was HTTPS, so no redirect.
    base, _ = start_worker(**production(ASGI_SERVER=server))
    assert httpx.get(f"{base}{path}", headers=https, timeout=10).status_code == 403
    assert httpx.get(f"{base}{path}", timeout=10).status_code == 301
    # From anyone else the header is ignored: plain HTTP, redirected.
    base, _ = start_worker(**production(ASGI_SERVER=server, FORWARDED_ALLOW_IPS="192.0.2.1"))
    response = httpx.get(f"{base}{path}", headers=https, timeout=10)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


@pytest.mark.slow
def test_it_logs_a_line_per_request_only_when_asked(start_worker):
    quiet_base, quiet = start_worker()
    loud_base, loud = start_worker(ACCESS_LOG="1", LOG_LEVEL="INFO")
    for base in (quiet_base, loud_base):
        assert httpx.get(f"{base}/healthz?probe=access-log", timeout=10).status_code == 200
    assert "probe=access-log" not in Path(quiet.log_path).read_text()
    assert "probe=access-log" in Path(loud.log_path).read_text()


def test_it_leaves_the_loaded_application_out_of_the_collectors_passes_and_runs_them_less_often():
    import gc

    from deploy import worker

    before = gc.get_threshold()
    try:
        worker.tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (worker.GC_GENERATION0, 10, 10)
        assert before[0] < worker.GC_GENERATION0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

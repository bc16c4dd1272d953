"""deploy/healthcheck.py, the container's healthcheck, run as its own process against a real HTTP server."""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT


@pytest.fixture
def healthz():
    """A local server answering /healthz with `status`; it records the Host headers it saw."""
    seen = {"status": 200, "hosts": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen["hosts"].append(self.headers.get("Host"))
            self.send_response(seen["status"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["port"] = server.server_address[1]
    yield seen
    server.shutdown()
    server.server_close()


def run_healthcheck(port, allowed_hosts=""):
    return subprocess.run(
        [sys.executable, "deploy/healthcheck.py"],
        cwd=ROOT,
        env={"PORT": str(port), "ALLOWED_HOSTS": allowed_hosts, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_it_exits_0_when_healthz_answers_200(healthz):
    assert run_healthcheck(healthz["port"]).returncode == 0
    assert healthz["hosts"] == ["localhost"]


def test_it_exits_1_when_healthz_answers_503(healthz):
    healthz["status"] = 503
    assert run_healthcheck(healthz["port"]).returncode == 1


def test_it_sends_a_host_the_allowed_hosts_accept(healthz):
    assert run_healthcheck(healthz["port"], allowed_hosts=".example.org,other.org").returncode == 0
    assert healthz["hosts"] == ["example.org"]


def test_it_exits_1_with_one_line_when_nothing_listens():
    from deploy.supervisor import free_port

    result = run_healthcheck(free_port())
    assert result.returncode == 1
    assert result.stderr.startswith("healthz:")
    assert len(result.stderr.strip().splitlines()) == 1

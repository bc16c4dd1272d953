"""`make stack`, started from the test: nginx in front of two web workers plus the collector.

Everything goes through real processes and sockets: the stack shares this test
run's database and Redis prefix, a separate `manage.py` process publishes, and
the clients talk HTTP, SSE and WebSocket to nginx.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from conftest import PASSWORD, ROOT, RUN_ID, database_url_for_subprocesses
from deploy.stack import nginx_binary, render_nginx_config, start_stack
from deploy.supervisor import Supervisor, free_port

# How long a published event may take to cross the stack; buffering anywhere
# on the way (nginx holds up to a page per connection) would take far longer.
PROMPT = 3.0


@pytest.fixture(scope="module")
def stack(django_db_setup, redis_url, tmp_path_factory):
    """One stack for the module: starting it takes seconds, and the tests only read through it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": RUN_ID,
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    logs = tmp_path_factory.mktemp("stack-logs")
    supervisor = Supervisor(env=env)
    try:
        info = start_stack(supervisor, port=free_port(), workdir=logs / "nginx", log_dir=logs)
        info.env = env
        info.logs = logs
        yield info
    finally:
        supervisor.stop()
    tracebacks = [p.name for p in logs.glob("*.log") if "Traceback" in p.read_text(errors="replace")]
    assert tracebacks == [], f"tracebacks in {tracebacks} (logs in {logs})"


def http(base_url, **kwargs):
    # trust_env=False: a proxy configured in the environment must not sit between us and nginx.
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10, **kwargs)


@contextlib.contextmanager
def log_in(stack, username):
    """A client logged in through nginx with the real login form."""
    with http(stack.base_url) as client:
        form = client.get("/accounts/login/")
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text[:500]
        yield client


def websocket(stack, cookies=None):
    host = stack.base_url.removeprefix("http://")
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else None
    return ws_connect(
        f"ws://{host}/ws/dashboard/",
        origin=stack.base_url,
        additional_headers=headers,
        proxy=None,
        open_timeout=10,
    )


def upstreams_in_access_log(stack):
    return set(re.findall(r"upstream=(\S+)", stack.access_log.read_text()))


@pytest.mark.slow
def test_it_serves_healthz_through_nginx(stack):
    with http(stack.base_url) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["server"].startswith("nginx")
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.slow
def test_both_workers_answer_and_nginx_uses_both(stack):
    assert len(stack.worker_urls) == 2
    for url in stack.worker_urls:
        with http(url) as client:
            assert client.get("/healthz").status_code == 200
    for _ in range(12):
        # A new connection each time, so nginx picks an upstream for each request.
        with http(stack.base_url) as client:
            assert client.get("/healthz").status_code == 200
    workers = {url.removeprefix("http://") for url in stack.worker_urls}
    assert upstreams_in_access_log(stack) == workers


@pytest.mark.slow
def test_it_logs_in_through_nginx(stack, transactional_db, alice):
    with log_in(stack, "alice") as client:
        page = client.get("/")
    assert page.status_code == 200
    assert "alice" in page.text


@pytest.mark.slow
def test_it_refuses_an_anonymous_websocket_through_nginx(stack, transactional_db):
    with pytest.raises(InvalidStatus) as refused:
        websocket(stack)
    # 403 comes from the server refusing the handshake; a 404 or 400 would mean the
    # upgrade never reached the WebSocket router.
    assert refused.value.response.status_code == 403


@pytest.mark.slow
def test_it_upgrades_a_logged_in_websocket_through_nginx(stack, transactional_db, alice):
    with log_in(stack, "alice") as client:
        cookies = dict(client.cookies)
    with websocket(stack, cookies) as socket:
        hello = json.loads(socket.recv(timeout=10))
        assert hello["type"] == "hello"
        socket.send(json.dumps({"type": "ping", "id": "p1"}))
        # Broadcasts (presence, ...) may come first; the answer carries our id.
        answer = next(
            m for m in iter(lambda: json.loads(socket.recv(timeout=10)), None) if m.get("id") == "p1"
        )
        assert answer["type"] == "pong"


def read_events(response, within):
    """Yield (event type, data) from an SSE response as the lines arrive, for `within` seconds."""
    deadline = time.monotonic() + within
    event, data = None, []
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise AssertionError(f"the expected event did not arrive within {within}s")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data.append(line.split(":", 1)[1].strip())
        elif line == "":
            if event is not None:
                yield event, "\n".join(data)
            event, data = None, []


def push_metric(env, name, value):
    result = subprocess.run(
        [sys.executable, "manage.py", "push_metric", name, str(value)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return time.monotonic()


@pytest.mark.slow
def test_it_streams_sse_through_nginx_without_buffering(stack, transactional_db, alice):
    with (
        log_in(stack, "alice") as client,
        client.stream(
            "GET", "/events/?channel=metrics", timeout=httpx.Timeout(10, read=PROMPT * 3)
        ) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = read_events(stream, within=30)
        assert next(event for event, _ in events) == "stream-open"
        pushed_at = push_metric(stack.env, "through_nginx", 42)
        for event, data in events:
            if event == "metric" and json.loads(data)["name"] == "through_nginx":
                break
        delay = time.monotonic() - pushed_at
    assert json.loads(data)["value"] == 42
    assert delay < PROMPT, f"the event took {delay:.2f}s to cross nginx"


@pytest.mark.slow
def test_it_runs_the_collector_whose_frames_reach_the_browser(stack, transactional_db, alice):
    assert stack.processes["collector"].poll() is None, "the collector exited"
    with (
        log_in(stack, "alice") as client,
        client.stream("GET", "/events/?channel=metrics", timeout=httpx.Timeout(10, read=15)) as stream,
    ):
        frame = next(json.loads(data) for event, data in read_events(stream, within=15) if event == "frame")
    assert isinstance(frame["seq"], int) and frame["values"]


@pytest.mark.slow
def test_stopping_it_stops_every_process(redis_url, tmp_path, subprocess_env):
    supervisor = Supervisor(env=subprocess_env)
    port = free_port()
    info = start_stack(supervisor, port=port, workdir=tmp_path / "nginx", log_dir=tmp_path)
    processes = list(info.processes.values())
    assert all(process.poll() is None for process in processes)
    supervisor.stop()
    assert all(process.poll() is not None for process in processes)
    with pytest.raises(httpx.ConnectError), http(info.base_url) as client:
        client.get("/healthz")


def test_it_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        supervisor = Supervisor()
        with pytest.raises(RuntimeError, match="already in use"):
            start_stack(supervisor, port=taken.getsockname()[1], workdir=tmp_path)
        assert supervisor.children == []


def test_the_native_nginx_config_is_valid(tmp_path):
    config = render_nginx_config(tmp_path, free_port(), ["127.0.0.1:1", "127.0.0.1:2"])
    text = config.read_text()
    assert "daemon off;" in text
    assert "server 127.0.0.1:1 " in text and "server 127.0.0.1:2 " in text
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path"):
        path = re.search(rf"^\s*{directive} (\S+?)[ ;]", text, flags=re.MULTILINE).group(1)
        assert path.startswith(str(tmp_path)), f"{directive} writes outside the stack's folder: {path}"
    result = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(config), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_ingest_api_takes_bodies_up_to_its_limit_through_nginx(stack, transactional_db):
    from api.models import ApiToken

    _token, raw = ApiToken.create("through-nginx", metric_patterns=["*"])
    limit = 10 * 1024 * 1024
    at_limit = b"through_nginx value=1\n" + b"\n" * (limit - 22)
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "text/plain"}
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=60) as client:
        assert client.post("/api/v2/write", content=at_limit, headers=headers).status_code == 204
        # Just over: the worker's answer, naming its limit.
        response = client.post("/api/v2/write", content=at_limit + b"\n", headers=headers)
        assert response.status_code == 413
        assert "API_MAX_BODY_BYTES" in response.json()["detail"]
        # Far over: nginx stops it, in the same JSON.
        response = client.post("/api/v2/write", content=b"\n" * (13 * 1024 * 1024), headers=headers)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"

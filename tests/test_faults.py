"""Faults a deployment meets, and nothing lost: Redis restarting, a worker killed, the
database away. Every process here (redis-server, daphne, nginx, the collector) is
started by the test on free ports; the machine's own Redis and PostgreSQL services
are never stopped — the database outage is a proxy (or a path) the test controls.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.test import override_settings

from conftest import ROOT
from deploy.supervisor import Supervisor, free_port
from tests.realclients import EventStream, open_socket, wait_until

OUTAGE_SECONDS = 5


def frames(stream):
    return [event["data"] for event in stream.events if event["event"] == "frame"]


def seqs(stream):
    return [frame["seq"] for frame in frames(stream)]


def assert_contiguous(numbers, what):
    assert numbers, f"no {what}"
    expected = list(range(numbers[0], numbers[0] + len(numbers)))
    assert numbers == expected, f"{what} have gaps or repeats: {numbers}"


async def health(base_url):
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        return (await client.get("/healthz")).status_code


# --- a fast check of the error page itself ---------------------------------------


@override_settings(DEBUG=False)
def test_a_database_failure_gives_the_clean_error_page(client, alice, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.base import base

    client.force_login(alice)
    client.raise_request_exception = False

    def refuse(self, *args, **kwargs):
        raise OperationalError("connection refused")

    with (
        monkeypatch.context() as patch,
        override_settings(
            STORAGES={
                "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            }
        ),
    ):
        patch.setattr(base.BaseDatabaseWrapper, "cursor", refuse)
        response = client.get("/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page
    assert "Traceback" not in page
    assert "OperationalError" not in page


# --- Redis stopped for 5 s and started again -------------------------------------


@pytest.fixture
def collector_with(subprocess_env, tmp_path):
    supervisor = Supervisor(env=subprocess_env)

    def start(env):
        log = open(tmp_path / "collector.log", "wb")  # noqa: SIM115 (the child keeps it)
        process = supervisor.python(
            "collector", "manage.py", "collect_metrics", env=env, stdout=log, stderr=subprocess.STDOUT
        )
        process.log_path = log.name
        return process

    yield start
    supervisor.stop()


class Tab:
    """The page's notification handling: keeps the last id it saw and, when its socket
    closes, reconnects with ?last_notification=<id> (as control.js does)."""

    def __init__(self, base_url, cookies):
        self.base_url = base_url
        self.cookies = cookies
        self.seen = {}
        self.reconnects = 0
        self._task = None

    def start(self):
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        while True:
            query = f"last_notification={max(self.seen)}" if self.seen else ""
            try:
                async with open_socket(self.base_url, self.cookies, query=query) as socket:
                    while socket.close_code is None and not socket._task.done():
                        for message in socket.messages:
                            self._keep(message)
                        await asyncio.sleep(0.1)
                    for message in socket.messages:
                        self._keep(message)
            except Exception:  # noqa: S110 - the server is away: retry like the page
                pass
            self.reconnects += 1
            await asyncio.sleep(0.5)

    def _keep(self, message):
        if message.get("type") == "notification":
            self.seen[message["notification"]["id"]] = message["notification"]
        elif message.get("type") == "hello":
            for notification in message["notifications"]["recent"] + message["notifications"]["missed"]:
                self.seen[notification["id"]] = notification

    async def stop(self):
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.mark.slow
@pytest.mark.servers
async def test_redis_restarting_loses_nothing_that_was_published_or_notified(
    web_workers, collector_with, own_redis, manage, alice, alice_cookies
):
    """Redis stopped for 5 s mid-stream, then started again (empty: it keeps nothing on disk).

    What "nothing lost" means here: events live in Redis, so the events stored before
    the outage go with it, and ticks the collector takes while Redis is down cannot be
    published (there is nowhere to put them). So:
    - before the outage, every client got every frame (seq contiguous);
    - the workers and the collector recover on their own: /healthz is 503 during the
      outage and 200 after, no process dies or is restarted;
    - after it, every frame published reaches every client (seq contiguous again, the
      collector's seq keeps rising), and a stream that resumes with a `Last-Event-ID`
      from before is told `stream-reset` (reload history) rather than silently skipping;
    - a notification sent during the outage is stored in the database, and the open tab
      gets it afterwards, live or through `hello.missed` when it reconnects.
    """
    env = {"REDIS_URL": own_redis.url}
    first, second = web_workers(2, env=env)
    collector = collector_with(env)
    async with (
        EventStream(first, ["metrics"], alice_cookies) as on_first,
        EventStream(second, ["metrics"], alice_cookies) as on_second,
    ):
        tab = Tab(first, alice_cookies)
        tab.start()
        await on_first.wait_for(lambda e: e["event"] == "frame" and len(frames(on_first)) >= 3, timeout=30)
        await on_second.wait_for(lambda e: e["event"] == "frame")
        id_before_outage = on_first.last_event_id

        own_redis.stop()
        stopped = time.monotonic()
        # Wait for the condition (the worker reports Redis gone), not for a guessed time.
        deadline = time.monotonic() + 20
        while await health(first) != 503:
            assert time.monotonic() < deadline, "the worker never reported Redis gone"
            await asyncio.sleep(0.2)
        during = await asyncio.to_thread(
            lambda: manage("notify", "--user", "alice", "sent during the outage", env=env)
        )
        assert during.returncode == 0, during.stderr
        from notifications.models import Notification

        sent = await asyncio.to_thread(lambda: Notification.objects.get(title="sent during the outage").pk)
        before_restart = (len(frames(on_first)), len(frames(on_second)))
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        own_redis.start()

        for url in (first, second):
            deadline = time.monotonic() + 20
            while await health(url) != 200:
                assert time.monotonic() < deadline, f"{url} did not recover"
                await asyncio.sleep(0.5)
        for stream, count in zip((on_first, on_second), before_restart, strict=True):
            await wait_until(
                lambda stream=stream, count=count: len(frames(stream)) >= count + 3,
                timeout=30,
                message="frames after the restart",
            )
        async with EventStream(first, ["metrics"], alice_cookies, last_event_id=id_before_outage) as resumed:
            await resumed.wait_for(lambda e: e["event"] in ("stream-reset", "frame"), timeout=20)
        delivered = await _delivered_within(tab, sent, timeout=30)
        await tab.stop()

    for stream, count in zip((on_first, on_second), before_restart, strict=True):
        numbers = seqs(stream)
        assert_contiguous(numbers[:count], "frames before the outage")
        after = numbers[count:]
        # The stream may replay nothing old after a reset: everything after is newer and complete.
        assert after[0] > numbers[count - 1]
        assert_contiguous(after, "frames after the outage")
    assert all(worker.poll() is None for worker in web_workers.workers)
    assert collector.poll() is None, "the collector died"
    lost = []
    if "stream-reset" not in [e["event"] for e in resumed.events]:
        # Ids restart at 1 with the empty Redis: once the new counter passes the client's
        # old id, resuming silently skips the new events numbered up to it.
        lost.append(f"resuming from {id_before_outage} after the restart gave {resumed.events[:2]}, no reset")
    if not delivered:
        lost.append(
            f"notification {sent}, stored during the outage, never reached the open tab "
            f"(it saw {sorted(tab.seen)}, reconnected {tab.reconnects} times)"
        )
    assert not lost, "\n".join(lost)


async def _delivered_within(tab, notification_id, timeout):
    with contextlib.suppress(AssertionError):
        await wait_until(lambda: notification_id in tab.seen, timeout=timeout)
    return notification_id in tab.seen


# --- one web worker killed behind nginx ----------------------------------------


def worker_serving_streams(stack):
    """The stack's worker process that reports open SSE connections (by pid, from Redis)."""
    from dashboard import connections

    pids = {process.pid: name for name, process in stack.processes.items() if name.startswith("web")}
    for worker_id, count in connections.counts_by_worker("sse").items():
        pid = int(worker_id.split("-")[-2])  # a WORKER_ID is <host>-<pid>-<random>
        if pid in pids and count > 0:
            return pids[pid]
    return None


@pytest.mark.slow
@pytest.mark.servers
async def test_a_killed_worker_s_clients_reconnect_through_nginx_and_catch_up(stack, alice_cookies):
    from dashboard.collector import sampling

    await sampling.aset_interval(0.25)
    async with EventStream(stack.base_url, ["metrics"], alice_cookies) as stream:
        await stream.wait_for(lambda e: e["event"] == "frame" and len(frames(stream)) >= 4, timeout=30)
        victim = await wait_until(lambda: worker_serving_streams(stack), message="the stream's worker")
        stack.processes[victim].send_signal(signal.SIGKILL)
        await asyncio.wait_for(stream.ended.wait(), 15)
    before = frames(stream)
    await asyncio.sleep(1.0)  # frames the client misses while it is away

    # As EventSource does: reconnect to the same URL (nginx) with the last id it saw.
    resume_from = stream.last_event_id
    async with EventStream(stack.base_url, ["metrics"], alice_cookies, last_event_id=resume_from) as again:
        await again.wait_for(lambda e: e["event"] == "frame" and len(frames(again)) >= 8, timeout=30)
    assert again.status == 200
    assert "stream-reset" not in [e["event"] for e in again.events]
    numbers = [frame["seq"] for frame in before] + seqs(again)
    assert_contiguous(numbers, "frames across the reconnect")
    survivors = [name for name in ("web1", "web2") if name != victim]
    assert stack.processes[survivors[0]].poll() is None
    assert await health(stack.base_url) == 200


# --- the database unreachable -----------------------------------------------------


class TcpProxy:
    """A TCP forwarder on a free port that the test can take down and bring back."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None
        self.writers = set()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def up(self):
        self._call(self._up())

    def down(self):
        self._call(self._down())

    def close(self):
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _up(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _down(self):
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def _serve(self, reader, writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader, writer):
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self.writers.discard(writer)


@pytest.fixture
def switchable_database(transactional_db, tmp_path):
    """(DATABASE_URL for a worker, up(), down()) on the test database.

    PostgreSQL: through a TCP proxy the test stops and starts. SQLite: through a
    symlinked folder the test removes and restores, so opening the file fails."""
    from django.db import connection

    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        database = Path(settings["NAME"])
        link = tmp_path / "db"

        def up():
            link.symlink_to(database.parent, target_is_directory=True)

        def down():
            link.unlink()

        up()
        yield f"sqlite:///{link / database.name}", up, down
        return
    proxy = TcpProxy(settings.get("HOST") or "127.0.0.1", int(settings.get("PORT") or 5432))
    proxy.up()
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    yield f"postgres://{user}{password}@127.0.0.1:{proxy.port}/{settings['NAME']}", proxy.up, proxy.down
    proxy.close()


def production_env(database_url):
    from django.conf import settings

    return {
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # The test's own key, so the sessions it creates are valid on the worker.
        "SECRET_KEY": settings.SECRET_KEY,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": database_url,
    }


@pytest.fixture(scope="session")
def collected_static():
    # Without DEBUG, templates name static files through the manifest `make static` writes.
    if not (ROOT / "staticfiles" / "staticfiles.json").exists():
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "DEBUG": "0", "SECRET_KEY": "static-only", "ALLOWED_HOSTS": "localhost"},
        )


@pytest.mark.slow
async def test_the_database_away_gives_503_and_clean_pages_and_then_recovers(
    web_workers, switchable_database, alice_cookies, collected_static
):
    database_url, up, down = switchable_database
    (base_url,) = web_workers(1, env=production_env(database_url))
    worker = web_workers.workers[0]

    async with httpx.AsyncClient(base_url=base_url, cookies=alice_cookies, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/")).status_code == 200

        down()
        health_down = await client.get("/healthz")
        page_down = await client.get("/")
        history_down = await client.get("/api/metrics/history/?minutes=5")
        login_down = await client.post("/accounts/login/", data={"username": "alice", "password": "x"})
        async with client.stream("GET", "/events/?channel=metrics") as stream_down:
            stream_status = stream_down.status_code
        socket_outcome = await _try_socket(base_url, alice_cookies)
        assert worker.poll() is None, "the worker died"

        up()
        health_back = await client.get("/healthz")
        page_back = await client.get("/")

    assert health_down.status_code == 503
    assert health_down.json()["database"] == "down"
    for response in (page_down, history_down):
        assert response.status_code == 500
        assert "Something went wrong on our side" in response.text
        assert "Traceback" not in response.text
    # The login POST carries no CSRF token: refused before anything asks the database.
    assert login_down.status_code == 403
    assert "Traceback" not in login_down.text
    # The stream's session lookup needs the database: the server's own error, not a refusal.
    assert stream_status == 500
    assert socket_outcome != "hello"
    assert health_back.status_code == 200
    assert page_back.status_code == 200
    assert worker.poll() is None


async def _try_socket(base_url, cookies):
    from tests.realclients import try_socket

    outcome, _ = await try_socket(base_url, cookies)
    return outcome

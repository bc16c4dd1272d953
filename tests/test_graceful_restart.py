"""SIGTERM to one worker behind nginx loses nothing (deploy/worker.py, dashboard.draining).

Real processes: nginx, two web workers (on the server ASGI_SERVER names), the
collector, and a publisher process sending numbered values while the worker
stops. SSE clients reconnect the way EventSource does (same URL, `Last-Event-ID`,
after the `retry:` the server sent) and must end up with every value exactly
once; sockets on the stopping worker close with the restart code the page
reconnects on at once.
"""

import asyncio
import contextlib
import signal
import subprocess
import sys
import time

import httpx
import pytest
from httpx_sse import aconnect_sse

from conftest import ROOT
from dashboard.control import protocol
from tests.realclients import cookie_header, event_of, open_socket, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.servers]

PROBE = "restart-probe"
VALUES = 300
PUBLISH_EVERY = 0.02
STREAMS = 12
SOCKETS = 8

PUBLISHER = f"""
import os, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from dashboard.live import publish_metric
print("publishing", flush=True)
for value in range({VALUES}):
    publish_metric("{PROBE}", value)
    time.sleep({PUBLISH_EVERY})
print("published", flush=True)
"""


class ReconnectingStream:
    """An SSE client that, like EventSource, reconnects to the same URL when the
    stream ends, after the server's `retry:`, sending the last id it saw."""

    def __init__(self, base_url, cookies):
        self.base_url, self.cookies = base_url, cookies
        self.events, self.ids = [], []
        self.last_event_id = None
        self.retry_ms = 3000
        self.connects = 0
        self.gaps = []  # seconds between a stream ending and the next one opening
        self.statuses = []
        self.task = asyncio.create_task(self.run())

    def values(self):
        metrics = [e["data"] for e in self.events if e["event"] == "metric"]
        return [data["value"] for data in metrics if data["name"] == PROBE]

    async def run(self):
        ended_at = None
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as client:
            while True:
                headers = {"Cookie": cookie_header(self.cookies)}
                if self.last_event_id:
                    headers["Last-Event-ID"] = self.last_event_id
                try:
                    async with aconnect_sse(
                        client, "GET", "/events/", params={"channel": "metrics"}, headers=headers
                    ) as source:
                        self.statuses.append(source.response.status_code)
                        if source.response.status_code != 200:
                            await asyncio.sleep(self.retry_ms / 1000)
                            continue
                        self.connects += 1
                        if ended_at is not None:
                            self.gaps.append(time.monotonic() - ended_at)
                        async for sse in source.aiter_sse():
                            if sse.retry is not None:
                                self.retry_ms = sse.retry
                            if sse.event in ("keep-alive", "stream-open") or not sse.data:
                                continue
                            self.events.append(event_of(sse))
                            if sse.id:
                                self.ids.append(sse.id)
                                self.last_event_id = sse.id
                except (httpx.HTTPError, OSError):
                    self.statuses.append("error")
                ended_at = time.monotonic()
                await asyncio.sleep(self.retry_ms / 1000)

    async def close(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def open_streams_of(stack):
    """{worker name: open SSE streams} as the workers report them to Redis."""
    from dashboard.redis import get_sync_client, key

    client = get_sync_client()
    by_pid = {process.pid: name for name, process in stack.processes.items() if name.startswith("web")}
    counts = dict.fromkeys(by_pid.values(), 0)
    for raw in client.scan_iter(match=key("conn", "sse", "*"), count=10000):
        pid = int(raw.decode().rsplit(":", 1)[-1].rsplit("-", 2)[-2])
        if pid in by_pid:
            counts[by_pid[pid]] = int(client.get(raw) or 0)
    return counts


async def test_sigterm_to_a_worker_moves_its_streams_and_sockets_and_loses_no_event(
    stack, subprocess_env, alice_cookies, tmp_path
):
    streams = [ReconnectingStream(stack.base_url, alice_cookies) for _ in range(STREAMS)]
    sockets = []
    try:
        await wait_until(lambda: all(s.connects for s in streams), timeout=30, message="every stream open")
        # nginx round-robins: both workers hold streams (and sockets) before one stops.
        await wait_until(lambda: all(open_streams_of(stack).values()), message="streams on both workers")
        async with contextlib.AsyncExitStack() as exits:
            for _ in range(SOCKETS):
                socket = await exits.enter_async_context(open_socket(stack.base_url, alice_cookies))
                await socket.wait_for(lambda m: m.get("type") == "hello")
                sockets.append(socket)

            publisher = subprocess.Popen(
                [sys.executable, "-c", PUBLISHER], cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE
            )
            try:
                await wait_until(lambda: any(len(s.values()) >= VALUES // 4 for s in streams), timeout=30)
                victim = stack.processes["web1"]
                stopped_at = time.monotonic()
                victim.send_signal(signal.SIGTERM)
                exit_code = await asyncio.to_thread(victim.wait, 20)
                stop_seconds = time.monotonic() - stopped_at
                assert await asyncio.to_thread(publisher.wait, 60) == 0
            finally:
                if publisher.poll() is None:
                    publisher.kill()
                    publisher.wait()

            closed = [s.close_code for s in sockets if s._task.done()]
            # Sockets on the stopping worker closed with the restart code; the others stay open.
            assert closed, "no socket was on the stopped worker"
            assert set(closed) <= {protocol.CLOSE_RESTART, 1012}, closed
            assert len(closed) < SOCKETS
            async with open_socket(stack.base_url, alice_cookies) as again:
                assert (await again.wait_for(lambda m: m.get("type") == "hello"))["type"] == "hello"

        await wait_until(
            lambda: all(len(s.values()) >= VALUES for s in streams), timeout=30, message="every value"
        )
    finally:
        for stream in streams:
            await stream.close()

    # uvicorn re-raises the signal once it has shut down cleanly; daphne's stop exits 0.
    assert exit_code in (0, -signal.SIGTERM)
    log = (tmp_path / "web1.log").read_text()
    assert "still open after" not in log and "graceful shutdown exceeded" not in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]
    assert stop_seconds < 10, f"the worker took {stop_seconds:.1f}s to stop"
    for stream in streams:
        assert stream.values() == list(range(VALUES)), "lost, duplicated or reordered values"
        assert len(stream.ids) == len(set(stream.ids)), "an event id was delivered twice"
        assert "stream-reset" not in [e["event"] for e in stream.events]
    moved = [s for s in streams if s.connects > 1]
    assert moved, "no stream was on the stopped worker"
    # They came back at once: the server's retry (at most half a second), not EventSource's 3 s.
    assert max(gap for s in moved for gap in s.gaps) < 2.0
    assert stack.processes["web2"].poll() is None
    assert all(status in (200,) for s in streams for status in s.statuses), [s.statuses for s in streams]

"""Redis Sentinel failover under load: a primary, a replica and three sentinels of the
test's own (deploy/sentinel.py, on free ports), two real web workers and the
collector configured with REDIS_SENTINELS, and the primary killed by PID while
SSE streams, WebSockets, pushes from another process and notifications are live.

Shown, without restarting any livedash process:
- every process works again: workers serve pages and the ingest API (503 to retry,
  never a server error, while it fails over), /healthz names the new primary, the
  collector publishes frames, the pushing process's pushes get through;
- streams (open throughout, and one that reconnects with its Last-Event-ID during
  the failover) get every event stored before the failover and after it, each
  once, in id order, without a reset;
- every notification stored (before, during, after) reaches each open socket once;
- the time to recover, printed.

Replication is asynchronous, so "stored before the failover" is made exact: the
collector is paused and the pusher idle, then `WAIT 1` confirms the replica has
everything, then the primary is killed.
"""

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from asgiref.sync import sync_to_async
from httpx_sse import aconnect_sse

from api.models import ApiToken
from conftest import ROOT
from deploy.sentinel import HOST, start_sentinel_topology
from deploy.supervisor import Supervisor
from tests.realclients import cookie_header, event_of, open_socket, wait_until

pytestmark = pytest.mark.slow

# Every server and sentinel requires it, as in compose.
PASSWORD = "failover-test-password"

# Generous: on a loaded two-core machine a failover with these timings takes a few seconds.
RECOVERY_LIMIT = 60

# A process of its own, as any service pushing metrics would be: one command per line.
HELPER = """
import asyncio, sys, time
import redis
from dashboard.collector import sampling
from dashboard.live import publish_metric
from dashboard.redis import get_sync_client
from dashboard.storage import DashboardRedisStorage

print("ready", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "push":
        first, last = map(int, args)
        for value in range(first, last + 1):
            while True:
                try:
                    publish_metric("failover_probe", value)
                    break
                except (redis.RedisError, OSError):
                    time.sleep(0.1)  # a client's backoff while Redis fails over
        print("pushed", last, time.time(), flush=True)
    elif command == "pause":
        asyncio.run(sampling.aset_paused(args[0] == "1"))
        print("paused", args[0], flush=True)
    elif command == "sync":
        replicas = get_sync_client().execute_command("WAIT", 1, 10000)
        print("synced", replicas, DashboardRedisStorage().get_current_id("metrics"), flush=True)
"""


class Helper:
    def __init__(self, env):
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", HELPER],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline().strip() == "ready"

    async def ask(self, line, timeout=RECOVERY_LIMIT):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        assert answer, f"the helper process ended while answering {line!r}"
        return answer.split()

    def stop(self):
        self.process.stdin.close()
        self.process.wait(30)


class ResumingStream:
    """An EventSource as browsers run one: after the stream ends or fails it connects
    again, sending the last id it saw as Last-Event-ID."""

    def __init__(self, base_url, cookies):
        self.base_url, self.cookies = base_url, cookies
        self.events = []
        self.last_id = None
        self.connects = 0
        self.task = None

    async def __aenter__(self):
        self.task = asyncio.create_task(self.run())
        await wait_until(lambda: self.of_type("stream-open"), message="the stream open")
        return self

    async def __aexit__(self, *exc):
        await self.stop()

    async def stop(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def run(self):
        while True:
            headers = {"Cookie": cookie_header(self.cookies)}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            with contextlib.suppress(httpx.HTTPError, OSError):
                async with (
                    httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(10, read=None)) as client,
                    aconnect_sse(
                        client, "GET", "/events/", params={"channel": "metrics"}, headers=headers
                    ) as source,
                ):
                    if source.response.status_code == 200:
                        self.connects += 1
                        async for sse in source.aiter_sse():
                            if sse.event != "keep-alive":
                                self.events.append(event_of(sse))
                            if sse.id:
                                self.last_id = sse.id
            await asyncio.sleep(0.2)  # EventSource's reconnection delay

    def of_type(self, event_type):
        return [event for event in self.events if event["event"] == event_type]

    def data_events(self):
        return [event for event in self.events if event["event"] in ("metric", "frame")]

    def ids(self):
        return [int(event["id"].rpartition(":")[2]) for event in self.data_events()]

    def probes(self):
        return [e["data"]["value"] for e in self.of_type("metric") if e["data"]["name"] == "failover_probe"]

    def frames_after(self, event_id):
        return [e for e in self.of_type("frame") if int(e["id"].rpartition(":")[2]) > event_id]


def notification_titles(socket):
    return [message["notification"]["title"] for message in socket.of_type("notification")]


async def healthz(base_url):
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        answer = await client.get("/healthz")
        return answer.status_code, answer.json()


async def test_every_process_rides_out_a_primary_failover_under_load(
    web_workers, manage, subprocess_env, alice, alice_cookies, tmp_path
):
    redis_servers = Supervisor(env=subprocess_env)
    try:
        topology = start_sentinel_topology(
            redis_servers, tmp_path / "redis", down_after_ms=1000, failover_timeout_ms=5000, password=PASSWORD
        )
        # REDIS_URL gives the password only: its host names nothing that exists.
        env = {**topology.env, "REDIS_URL": f"redis://:{PASSWORD}@nowhere.invalid:6379/0"}
        full_env = {**subprocess_env, **env}
        workers = web_workers(2, env=env)
        collector_log = open(tmp_path / "collector.log", "wb")  # noqa: SIM115
        collector = redis_servers.python(
            "collector",
            "manage.py",
            "collect_metrics",
            env=env,
            stdout=collector_log,
            stderr=subprocess.STDOUT,
        )
        helper = Helper(full_env)
        _token, api_token = await sync_to_async(ApiToken.create)("failover", metric_patterns=["api_probe"])
        await run_the_failover(topology, workers, helper, manage, env, alice_cookies, api_token)
        helper.stop()
        assert collector.poll() is None, "the collector kept running"
        assert all(worker.poll() is None for worker in web_workers.workers), "no worker was restarted"
        for worker in web_workers.workers:
            log = Path(worker.log_path).read_text()
            assert "Traceback" not in log, log[-3000:]
    finally:
        redis_servers.stop()


async def push_through_the_api(base_url, api_token, value):
    """The ingest API (its rate limit lives in Redis): the status it answers."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        answer = await client.post(
            "/api/v1/metrics",
            json={"name": "api_probe", "value": value},
            headers={"Authorization": f"Bearer {api_token}"},
        )
        return answer.status_code


async def run_the_failover(topology, workers, helper, manage, env, alice_cookies, api_token):
    primary = f"{HOST}:{topology.primary_port}"
    replica = f"{HOST}:{topology.replica_port}"
    for base_url in workers:
        assert await healthz(base_url) == (
            200,
            {"status": "ok", "database": "ok", "redis": "ok", "redis_primary": primary},
        )

    def notify(title):
        sent = manage("notify", "--user", "alice", title, env=env)
        assert sent.returncode == 0, sent.stderr

    async with (
        ResumingStream(workers[0], alice_cookies) as first,
        ResumingStream(workers[1], alice_cookies) as second,
        ResumingStream(workers[1], alice_cookies) as reconnecting,
        open_socket(workers[0], alice_cookies) as socket_one,
        open_socket(workers[1], alice_cookies) as socket_two,
    ):
        sockets = [socket_one, socket_two]
        for socket in sockets:
            await socket.wait_for(lambda m: m.get("type") == "hello")
        streams = [first, second, reconnecting]
        await wait_until(
            lambda: all(stream.of_type("frame") for stream in streams), message="the collector's frames"
        )

        # Before: pushes and a notification, then nothing more is written, and the
        # replica acknowledges all of it.
        await helper.ask("push 1 20")
        assert [await push_through_the_api(url, api_token, 1) for url in workers] == [202, 202]
        await asyncio.to_thread(notify, "before the failover")
        assert await helper.ask("pause 1") == ["paused", "1"]
        _, replicas, stored_id = await helper.ask("sync")
        assert int(replicas) >= 1, "the replica acknowledged everything written so far"
        stored_id = int(stored_id)
        await wait_until(
            lambda: all(stream.ids() and stream.ids()[-1] == stored_id for stream in streams),
            message="every stream up to the last stored event",
        )
        await wait_until(
            lambda: all(notification_titles(s) == ["before the failover"] for s in sockets),
            message="the first notification on both sockets",
        )

        # The failover: the primary dies; a stream reconnects at once, with its
        # Last-Event-ID; pushes and a notification are sent while it happens.
        await reconnecting.stop()
        killed_at = time.time()
        topology.processes["primary"].kill()
        topology.processes["primary"].wait(10)
        reconnecting.task = asyncio.create_task(reconnecting.run())
        pushed = asyncio.create_task(helper.ask("push 21 40"))
        await asyncio.to_thread(notify, "during the failover")
        # Whatever the moment: accepted, or "retry" with Retry-After, never a server error.
        assert await push_through_the_api(workers[0], api_token, 2) in (202, 503)

        _, last, pushed_at = await pushed
        assert last == "40"
        writes_back = float(pushed_at) - killed_at
        for base_url in workers:
            await wait_until_async(
                lambda base_url=base_url: healthz(base_url),
                lambda answer: answer[0] == 200 and answer[1]["redis_primary"] == replica,
                message="/healthz naming the new primary",
            )
        await wait_until(
            lambda: all("during the failover" in notification_titles(s) for s in sockets),
            timeout=RECOVERY_LIMIT,
            message="the notification sent during the failover, on both sockets",
        )
        sockets_back = time.time() - killed_at
        assert await helper.ask("pause 0") == ["paused", "0"]
        assert [await push_through_the_api(url, api_token, 3) for url in workers] == [202, 202]
        await helper.ask("push 41 50")
        await asyncio.to_thread(notify, "after the failover")

        await wait_until(
            lambda: all(stream.probes()[-1:] == [50] for stream in streams),
            timeout=RECOVERY_LIMIT,
            message="every stream to get the pushes made during and after the failover",
        )
        streams_back = time.time() - killed_at
        await wait_until(
            lambda: all(stream.frames_after(stored_id + 40) for stream in streams),
            timeout=RECOVERY_LIMIT,
            message="the collector's frames after the failover",
        )
        expected_titles = ["before the failover", "during the failover", "after the failover"]
        await wait_until(
            lambda: all(sorted(notification_titles(s)) == sorted(expected_titles) for s in sockets),
            timeout=RECOVERY_LIMIT,
            message="every notification on both sockets",
        )
        # Once each, however many ways it could arrive (push, re-push, catch-up): a
        # ping answered after all of them had their chance shows nothing more came.
        for socket in sockets:
            assert (await socket.command("ping"))["type"] == "pong"
            assert sorted(notification_titles(socket)) == sorted(expected_titles)
            assert socket.close_code is None, "the socket stayed open throughout"
        async with httpx.AsyncClient(cookies=alice_cookies, timeout=10) as client:
            for base_url in workers:
                assert (await client.get(f"{base_url}/")).status_code == 200

    print(
        f"\nRedis failover: writes back after {writes_back:.1f}s, the notification stored during "
        f"it on every socket after {sockets_back:.1f}s, every stream had every push after {streams_back:.1f}s"
    )
    assert writes_back < RECOVERY_LIMIT
    for stream in streams:
        ids = stream.ids()
        # Every event of the channel from the stream's first on, once each and in order:
        # nothing stored before the failover lost, nothing after it skipped.
        assert ids == list(range(ids[0], ids[-1] + 1)), f"gaps or repeats in {ids}"
        assert stream.probes() == list(range(1, 51))
        api_values = [
            e["data"]["value"] for e in stream.of_type("metric") if e["data"]["name"] == "api_probe"
        ]
        assert api_values[:2] == [1, 1] and api_values[-2:] == [3, 3], api_values
        assert not stream.of_type("stream-reset")
    assert reconnecting.connects >= 2, "the reconnecting stream came back by Last-Event-ID"
    assert topology.processes["replica"].poll() is None


async def wait_until_async(fetch, predicate, timeout=RECOVERY_LIMIT, message="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = await fetch()
            if predicate(last):
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}; last {last}")


def test_make_stack_with_sentinel_runs_the_same_topology(subprocess_env, tmp_path):
    """`make stack SENTINEL=1`: the stack's workers find Redis through three sentinels,
    /healthz names the primary they name, and a stop stops every Redis it started."""
    from deploy.supervisor import free_port

    port = free_port()
    output = tmp_path / "stack.out"
    with open(output, "wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "-m", "deploy.stack"],
            cwd=ROOT,
            env={**subprocess_env, "SENTINEL": "1", "PORT": str(port), "ENV_FILE": os.devnull},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "Redis with failover:" not in output.read_text():
            assert stack.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.2)
        line = next(x for x in output.read_text().splitlines() if x.startswith("Redis with failover:"))
        primary, sentinel_port = re.search(r"primary (\S+), .*redis-cli -p (\d+)", line).groups()
        sentinel = redis.Redis(host=HOST, port=int(sentinel_port), socket_timeout=5, decode_responses=True)
        assert ":".join(map(str, sentinel.sentinel_get_master_addr_by_name("livedash"))) == primary
        answer = httpx.get(f"http://{HOST}:{port}/healthz", timeout=10, trust_env=False)
        assert answer.json() == {"status": "ok", "database": "ok", "redis": "ok", "redis_primary": primary}
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        stack.wait(60)
    with pytest.raises(redis.ConnectionError):
        sentinel.ping()

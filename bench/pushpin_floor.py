"""The Pushpin floor: Pushpin in front of an origin that costs next to nothing.

The origin is one aiohttp process answering every `/events/` with the hold
instructions the product sends a new connection (the same channel, id format and
keep-alive; no auth, no storage, no Django, no recovery), so what Pushpin does
with it is the best the product's Pushpin route can do on this machine. `make
bench` runs it as the `pushpin-floor` path, the Pushpin route's peer; on its own
it measures Pushpin's connect rate and CPU per connect:

    python -m bench.pushpin_floor --clients 3000 --at-once 200
    python -m bench.pushpin_floor --serve-origin --port 8123   # the origin alone

Its figures go to `bench/results/pushpin-connect-*.json` (or `--output`), for the
capacity model's Pushpin connect cost.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psutil
import redis.asyncio
from aiohttp import web

from bench.limits import raise_open_files_limit
from deploy.pushpin import Pushpin
from deploy.supervisor import Supervisor, free_port, wait_for_port

RESULTS = Path(__file__).resolve().parent / "results"

# What dashboard.stream.grip answers a new connect with: padding, stream-open, hold instructions.
HOLD_BODY = ":" + " " * 2048 + "\n\nevent: stream-open\ndata:\n\n"
HOLD_HEADERS = {
    "Grip-Hold": "stream",
    "Grip-Channel": "events-metrics; filter=build-id",
    "Grip-Keep-Alive": "event: keep-alive\\ndata:\\n\\n; format=cstring; timeout=20",
    "Grip-Set-Meta": 'id_format="metrics:%(events-metrics)s"',
}


class Origin:
    """The do-nothing origin. Given the Redis key of the channel's current id, it reads it once
    per connect, as the product does, so Pushpin can number (`build-id`) what it relays."""

    def __init__(self, redis_url=None, current_id_key=None):
        # Connects wait for a pooled connection rather than fail: in the first committed run
        # the default pool ran out in the 10,000-client storm and the origin answered 500s.
        self.redis = None
        if redis_url:
            pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=64)
            self.redis = redis.asyncio.Redis(connection_pool=pool)
        self.current_id_key = current_id_key

    async def hold(self, request):
        headers = dict(HOLD_HEADERS)
        if self.redis is not None:
            current_id = int(await self.redis.get(self.current_id_key) or 0)
            headers["Grip-Channel"] = f"events-metrics; prev-id={current_id}; filter=build-id"
            # Pushpin holds a channel with a prev-id only when it has somewhere to recover from.
            headers["Grip-Link"] = "</events/?link=next>; rel=next"
        return web.Response(text=HOLD_BODY, content_type="text/event-stream", headers=headers)


def serve_origin(port, redis_url=None, current_id_key=None):
    app = web.Application()
    app.router.add_get("/events/", Origin(redis_url, current_id_key).hold)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def connect_all(url, clients, at_once):
    """Open `clients` streams, `at_once` in flight; return (held responses, errors by kind, seconds)."""
    gate, held, errors = asyncio.Semaphore(at_once), [], {}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    session = aiohttp.ClientSession(connector=connector)

    async def one():
        async with gate:
            try:
                response = await session.get(url)
                if response.status != 200:
                    errors[response.status] = errors.get(response.status, 0) + 1
                    response.release()
                    return
                await response.content.readany()
                held.append(response)
            except (aiohttp.ClientError, OSError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.monotonic() - started
    for response in held:
        response.close()
    await session.close()
    return len(held), errors, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--at-once", type=int, default=200, help="connects in flight at a time")
    parser.add_argument("--serve-origin", action="store_true", help="only serve the origin, on --port")
    parser.add_argument("--port", type=int)
    parser.add_argument("--redis-url", help="with --serve-origin: the Redis holding the channel's current id")
    parser.add_argument("--current-id-key", help="with --serve-origin: the key of the channel's current id")
    parser.add_argument(
        "--output", type=Path, help="the results file (default: bench/results/pushpin-connect-*.json)"
    )
    args = parser.parse_args(argv)
    if args.serve_origin:
        serve_origin(args.port, args.redis_url, args.current_id_key)
        return 0
    raise_open_files_limit()
    port = free_port()
    origin = multiprocessing.Process(target=serve_origin, args=(port,), daemon=True)
    origin.start()
    supervisor = Supervisor()
    workdir = Path(tempfile.mkdtemp(prefix="livedash-pushpin-floor-"))
    try:
        wait_for_port(port)
        pushpin = Pushpin(workdir)
        pushpin.start(supervisor, [f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids = pushpin.pids()
        load = [round(x, 2) for x in os.getloadavg()]
        pushpin_before, origin_before = cpu_seconds(pids), cpu_seconds([origin.pid])
        own_before = time.process_time()
        connected, errors, elapsed = asyncio.run(
            connect_all(f"{pushpin.url}/events/", args.clients, args.at_once)
        )
        per_connect = 1000 / max(connected, 1)
        results = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_at_start": load,
            "clients": args.clients,
            "at_once": args.at_once,
            "connected": connected,
            "refused": errors,
            "connect_s": round(elapsed, 3),
            "cpu_ms_per_connect": {
                "pushpin": round((cpu_seconds(pids) - pushpin_before) * per_connect, 3),
                "origin": round((cpu_seconds([origin.pid]) - origin_before) * per_connect, 3),
                "client": round((time.process_time() - own_before) * per_connect, 3),
            },
        }
        cpu = results["cpu_ms_per_connect"]
        print(
            f"{connected}/{args.clients} connected ({args.at_once} at once) in {elapsed:.1f} s = "
            f"{connected / elapsed:.0f}/s; refused: {errors or 'none'}\n"
            f"CPU per connect: Pushpin {cpu['pushpin']:.2f} ms, "
            f"origin {cpu['origin']:.2f} ms, client {cpu['client']:.2f} ms"
        )
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = args.output or RESULTS / f"pushpin-connect-{stamp}.json"
        path.write_text(json.dumps(results, indent=2))
        print(f"wrote {path.name}")
    finally:
        supervisor.stop()
        origin.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

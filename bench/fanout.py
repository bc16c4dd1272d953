"""Redis's own cost of handing each published event to every subscribed worker.

Every web worker's SSE hub subscribes once to the pub/sub channel the product publishes
every event on, so Redis writes each event once per worker: a fleet of 100 machines
is 200 subscribers. That write is no command (the capacity model counts commands), so
this bench measures it: a redis-server of its own, N subscribers that read everything
(as a worker's hub does), and events of the product's size published in rounds, each
round read by every subscriber before the next (so Redis never holds a backlog), while
`INFO cpu` gives the server's CPU. A line fitted over the subscriber counts gives the
CPU per event (the PUBLISH itself) and per event per subscriber (the fan-out).

    python -m bench.fanout --subscribers 1,50,100,200 --events 4000
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
import redis.asyncio

from bench.capacity import fit_line
from bench.report import machine
from deploy.supervisor import free_port, start_redis

RESULTS = Path(__file__).resolve().parent / "results"
CHANNEL = "bench:fanout"
ROUND = 100  # events published before every subscriber must have read them


def event_message(event_id, size):
    """A pub/sub message of the shape the product publishes (dashboard.storage), `size` bytes."""

    def message(pad):
        data = json.dumps({"name": "cpu", "value": 0.5, "ts": 0.0, "pad": pad})
        return json.dumps({"channel": "metrics", "id": event_id, "type": "metric", "data": data})

    return message("x" * max(0, size - len(message(""))))


def server_cpu_s(client):
    """The server's CPU from `INFO cpu`, to the microsecond: a process's own times count
    in ticks of 10 ms, more than one subscriber's whole share of a run."""
    info = client.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


class Subscribers:
    """N pub/sub connections on one loop, each counting what it reads."""

    def __init__(self, url, count):
        self.url, self.count = url, count
        self.received = [0] * count
        self.clients, self.tasks = [], []

    async def start(self):
        for index in range(self.count):
            client = redis.asyncio.Redis.from_url(self.url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(CHANNEL)
            self.clients.append((client, pubsub))
            self.tasks.append(asyncio.create_task(self.read(index, pubsub)))

    async def read(self, index, pubsub):
        async for _message in pubsub.listen():
            self.received[index] += 1

    async def all_read(self, expected, timeout=60):
        deadline = time.monotonic() + timeout
        while min(self.received) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"subscribers read {min(self.received)} of {expected} events")
            await asyncio.sleep(0.002)

    async def stop(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client, pubsub in self.clients:
            await pubsub.aclose()
            await client.aclose()


async def measure_point(url, subscribers, events, size):
    """Redis's CPU over `events` published to `subscribers` readers, and what they read."""
    readers = Subscribers(url, subscribers)
    await readers.start()
    publisher = redis.asyncio.Redis.from_url(url)
    control = redis.Redis.from_url(url)
    messages = [event_message(n, size) for n in range(ROUND)]
    try:
        cpu_before, started = server_cpu_s(control), time.monotonic()
        for sent in range(0, events, ROUND):
            async with publisher.pipeline(transaction=False) as pipe:
                for message in messages[: min(ROUND, events - sent)]:
                    pipe.publish(CHANNEL, message)
                await pipe.execute()
            await readers.all_read(min(sent + ROUND, events))
        cpu = server_cpu_s(control) - cpu_before
        elapsed = time.monotonic() - started
    finally:
        await readers.stop()
        await publisher.aclose()
        control.close()
    return {
        "subscribers": subscribers,
        "events": events,
        "deliveries": events * subscribers,
        "every_subscriber_read_every_event": all(n == events for n in readers.received),
        "redis_cpu_s": round(cpu, 4),
        "redis_cpu_us_per_event": round(cpu / events * 1e6, 2),
        "elapsed_s": round(elapsed, 3),
    }


def run(subscriber_counts, events, size, log=print):
    """Every point on a redis-server of the bench's own, and the line through them."""
    port = free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        points = []
        for count in subscriber_counts:
            point = asyncio.run(measure_point(url, count, events, size))
            log(f"  {count} subscribers: {point['redis_cpu_us_per_event']} µs of Redis CPU per event")
            points.append(point)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    per_event, per_subscriber = fit_line(
        [p["subscribers"] for p in points], [p["redis_cpu_us_per_event"] for p in points]
    )
    return {
        "points": points,
        "fit": {
            "redis_cpu_us_per_event": round(per_event, 2),
            "redis_cpu_us_per_event_per_subscriber": round(per_subscriber, 3),
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,50,100,200", help="subscriber counts, comma-separated")
    parser.add_argument("--events", type=int, default=4000, help="events published at each count")
    parser.add_argument("--bytes", type=int, default=250, help="size of each published message")
    parser.add_argument("--output", type=Path, help="the results file (default: bench/results/fanout-*.json)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.subscribers.split(",")]
    if len(counts) < 2 or min(counts) < 1 or args.events < 1 or args.bytes < 100:
        parser.error("at least two subscriber counts of 1 or more, --events ≥ 1, --bytes ≥ 100")
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"bench.fanout: {args.events} events of {args.bytes} bytes to {counts} subscribers", flush=True)
    results = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": load,
        "settings": {"events": args.events, "bytes": args.bytes, "round": ROUND},
        **run(counts, args.events, args.bytes),
        "machine": machine(),
    }
    fit = results["fit"]
    print(
        f"Redis CPU: {fit['redis_cpu_us_per_event']} µs per event, "
        f"{fit['redis_cpu_us_per_event_per_subscriber']} µs per event per subscriber"
    )
    RESULTS.mkdir(exist_ok=True)
    path = args.output or RESULTS / f"fanout-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench.ingest`: the HTTP ingest API against its floor, on one worker.

Phases, on the bench's own Redis and database (bench.stack) and one web worker:

1. floor: `publish_metrics` called in this process, in batches of 1,000 points:
   the publish path alone, with no HTTP, parsing or auth;
2. ingest: the same batches as line protocol POSTed to /api/v2/write with no
   dashboard open: unlabelled (every point one series, as before labels), then
   labelled (each line `node,dc=..,host=..,role=.. value=N`: tags become labels, a
   batch holds one point of each of `--series` series), in the same run;
3. single points: POST /api/v1/metrics at `--rate` per second, its answer time,
   and the time until an SSE client sees each value, against the same for
   `publish_metric` called at that rate from a separate process (the shell's way);
   before the next phase, whose 20 million deliveries leave the worker busy;
4. ingest again with `--dashboards` SSE clients on the worker; each client counts
   every point by its sequence number (loss, duplicates) and the time until the
   last one arrived gives the delivered rate;
5. delivery floor: the same batches published in-process to the same number of
   clients of bench.floor's aiohttp relay, the most this machine delivers at all.

The results go to bench/results/ingest-<time>.json; docs/performance.md quotes them.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

from bench.clients import RECEIVED, Target, load_process_main, stop_helper
from bench.limits import raise_open_files_limit
from bench.measure import summarise_ms
from bench.publisher import publisher_main
from bench.stack import BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 1000
STALL_SECONDS = 15.0
# Unmeasured single-point requests (of another metric) before the measured ones.
WARM_UP = 20


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def line_batch(name, first_seq, now_ns, series=0):
    """BATCH points of metric `name` with sequence numbers from `first_seq`; with
    `series`, point N is of series N modulo `series`, told apart by three tags."""
    if not series:
        return "\n".join(
            f"{name} value={seq}i {now_ns}" for seq in range(first_seq, first_seq + BATCH)
        ).encode()
    lines = []
    for seq in range(first_seq, first_seq + BATCH):
        host = seq % series
        tags = f"dc=dc{host % 4},host=h{host:05d},role=r{host % 5}"
        lines.append(f"{name},{tags} value={seq}i {now_ns}")
    return "\n".join(lines).encode()


class Helpers:
    """Load processes holding the SSE clients, and a publisher process (bench.clients, bench.publisher)."""

    def __init__(self, load_procs):
        self.context = multiprocessing.get_context("spawn")
        self.loaders = []
        for _ in range(load_procs):
            parent, child = self.context.Pipe()
            progress = self.context.RawArray("q", 2)
            process = self.context.Process(target=load_process_main, args=(child, progress), daemon=True)
            process.start()
            self.loaders.append((process, parent, progress))
        parent, child = self.context.Pipe()
        self.publisher_progress = self.context.RawArray("q", 1)
        self.publisher = self.context.Process(
            target=publisher_main, args=(child, self.publisher_progress, None), daemon=True
        )
        self.publisher.start()
        self.publisher_pipe = parent

    def ask(self, commands):
        for (_, pipe, _), command in zip(self.loaders, commands, strict=True):
            pipe.send(command)
        return [pipe.recv() for _, pipe, _ in self.loaders]

    def connect(self, targets, metric):
        share = [targets[i :: len(self.loaders)] for i in range(len(self.loaders))]
        return self.ask([("connect", part, metric) for part in share])

    def received(self):
        return sum(progress[RECEIVED] for _, _, progress in self.loaders)

    def wait_for(self, expected, limit, since=0):
        """Until the clients hold `expected` deliveries more than `since` (the count before
        the phase: the load processes' count runs over the whole bench), or nothing arrived
        for STALL_SECONDS."""
        last, last_change, started = -1, time.monotonic(), time.monotonic()
        while time.monotonic() - started < limit:
            now = self.received() - since
            if now >= expected:
                return time.monotonic()
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > STALL_SECONDS:
                break
            time.sleep(0.05)
        return None

    def collect(self, seqs):
        parts = self.ask([("collect", seqs)] * len(self.loaders))
        latencies = [x for part in parts for x in part["latencies"]]
        totals = {k: sum(p[k] for p in parts) for k in ("clients", "deliveries", "duplicates", "lost")}
        return totals, latencies

    def disconnect(self):
        self.ask([("disconnect",)] * len(self.loaders))

    def publish_from_shell(self, name, events, rate):
        self.publisher_pipe.send(("run", "publish_metric", name, events, rate))
        return self.publisher_pipe.recv()

    def stop(self):
        for process, pipe, _ in [*self.loaders, (self.publisher, self.publisher_pipe, None)]:
            stop_helper(process, pipe)


def floor(batches, name="floor"):
    from dashboard.live import publish_metrics

    started = time.perf_counter()
    for index in range(batches):
        publish_metrics([(name, index * BATCH + i, None) for i in range(BATCH)])
    return batches * BATCH / (time.perf_counter() - started)


async def post_batches(url, token, name, batches, concurrency, series=0):
    """POST `batches` line-protocol batches with `concurrency` requests in flight (labelled
    over `series` series when given); points/s and answers."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "text/plain"}
    queue = list(range(batches))
    statuses = {}

    async def worker(client):
        while queue:
            index = queue.pop(0)
            body = line_batch(name, index * BATCH, time.time_ns(), series)
            response = await client.post(f"{url}/api/v2/write", content=body, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        # Unmeasured: the endpoint's first calls, and the connections kept alive.
        warm_up = f"{name}-warm-up{',host=h0' if series else ''} value=0i".encode()
        write = f"{url}/api/v2/write"
        warm_ups = [client.post(write, content=warm_up, headers=headers) for _ in range(concurrency)]
        await asyncio.gather(*warm_ups)
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    result = {"points_per_s": batches * BATCH / elapsed, "elapsed_s": elapsed, "statuses": statuses}
    return {**result, "series": series} if series else result


async def post_singles(url, token, name, events, rate):
    """One point per request at `rate`/s on a fixed schedule; answer times. aiohttp, as the
    load processes use: httpx's own cost per request was most of the answer time measured."""
    headers = {"Authorization": f"Bearer {token}"}
    answers, statuses = [], {}

    async def one(session, seq, metric=name):
        sent = time.time()
        async with session.post(
            f"{url}/api/v1/metrics", json={"name": metric, "value": seq, "ts": sent}, headers=headers
        ) as response:
            await response.read()
        answers.append(time.time() - sent)
        statuses[response.status] = statuses.get(response.status, 0) + 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for seq in range(WARM_UP):  # the endpoint's first calls, and a kept-alive connection
            await one(session, seq, f"{name}-warm-up")
        answers.clear()
        statuses.clear()
        started = time.monotonic()
        tasks = []
        for seq in range(events):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, seq)))
        await asyncio.gather(*tasks)
    return {"answer_ms": summarise_ms(answers), "statuses": statuses}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboards", type=int, default=1000, help="SSE clients open during ingest")
    parser.add_argument("--batches", type=int, default=20, help="1,000-point batches per ingest phase")
    parser.add_argument("--concurrency", type=int, default=4, help="batch requests in flight")
    parser.add_argument("--series", type=int, default=1000, help="series of the labelled ingest phase")
    parser.add_argument("--rate", type=int, default=200, help="single-point requests per second")
    parser.add_argument("--seconds", type=int, default=10, help="length of the single-point phases")
    parser.add_argument("--watchers", type=int, default=20, help="SSE clients during the single-point phases")
    parser.add_argument("--load-procs", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None, help="results file (default: bench/results/)")
    args = parser.parse_args(argv)
    raise_open_files_limit()

    stack = BenchStack(workers=1)
    stack.start()
    helpers = None
    results = {"started": datetime.now(UTC).isoformat(), "args": vars(args), "load_start": os.getloadavg()}
    try:
        from api.models import ApiToken

        _token, raw = ApiToken.create("bench", metric_patterns=["*"])
        [server] = stack.start_servers("sse")
        url = server.url
        helpers = Helpers(args.load_procs)

        def targets(count):
            cookies = stack.sessions
            return [
                Target("sse", f"{url}/events/?channel=metrics", cookies[i % len(cookies)], url)
                for i in range(count)
            ]

        log("floor: publish_metrics in-process")
        results["floor_points_per_s"] = floor(args.batches)
        log(f"  {results['floor_points_per_s']:.0f} points/s")

        log("ingest over HTTP, no dashboard open")
        results["ingest_alone"] = asyncio.run(post_batches(url, raw, "alone", args.batches, args.concurrency))
        log(f"  {results['ingest_alone']['points_per_s']:.0f} points/s {results['ingest_alone']['statuses']}")

        log(f"labelled ingest over HTTP (tags to labels, {args.series} series), no dashboard open")
        results["ingest_labelled"] = asyncio.run(
            post_batches(url, raw, "labelled", args.batches, args.concurrency, args.series)
        )
        labelled = results["ingest_labelled"]
        log(f"  {labelled['points_per_s']:.0f} points/s {labelled['statuses']}")

        events = args.rate * args.seconds
        for phase in ("api", "shell"):
            log(f"single points at {args.rate}/s from the {phase}, {args.watchers} SSE clients watching")
            helpers.connect(targets(args.watchers), phase)
            since = helpers.received()
            if phase == "api":
                outcome = asyncio.run(post_singles(url, raw, "api", events, args.rate))
            else:
                outcome = helpers.publish_from_shell("shell", events, args.rate)
            helpers.wait_for(events * args.watchers, limit=120, since=since)
            totals, latencies = helpers.collect(list(range(events)))
            results[f"single_{phase}"] = {**outcome, **totals, "seen_ms": summarise_ms(latencies)}
            log(f"  {json.dumps(results[f'single_{phase}'])[:400]}")
            helpers.disconnect()
        log(f"ingest over HTTP with {args.dashboards} dashboards open")
        connected = helpers.connect(targets(args.dashboards), "ingest")
        results["dashboards_connected"] = sum(c["connected"] for c in connected)
        log(f"  connected {results['dashboards_connected']}")
        points = args.batches * BATCH
        since = helpers.received()
        started = time.monotonic()
        results["ingest_with_dashboards"] = asyncio.run(
            post_batches(url, raw, "ingest", args.batches, args.concurrency)
        )
        done = helpers.wait_for(points * results["dashboards_connected"], limit=300, since=since)
        totals, latencies = helpers.collect(list(range(points)))
        results["ingest_with_dashboards"].update(
            {
                "delivered_all": done is not None,
                "delivered_points_per_s": points / (done - started) if done else None,
                "delivery_latency_ms": summarise_ms(latencies),
                **totals,
            }
        )
        shown = {k: v for k, v in results["ingest_with_dashboards"].items() if k != "delivery_latency_ms"}
        log(f"  {json.dumps(shown)}")
        helpers.disconnect()

        results["tracebacks"] = stack.tracebacks()

        # The same batches and dashboards through bench.floor (aiohttp, one Redis
        # subscription, each message encoded once for every stream): what this machine
        # can deliver at all, to read the product's delivered rate against.
        log(f"delivery floor: the aiohttp relay to {args.dashboards} clients")
        [relay] = stack.start_servers("floor")
        connected = helpers.connect(
            [Target("sse", f"{relay.url}/events/", None, relay.url) for _ in range(args.dashboards)], "relay"
        )
        clients = sum(c["connected"] for c in connected)
        since = helpers.received()
        started = time.monotonic()
        floor(args.batches, "relay")
        done = helpers.wait_for(points * clients, limit=300, since=since)
        totals, _ = helpers.collect(list(range(points)))
        results["delivery_floor"] = {
            "delivered_all": done is not None,
            "delivered_points_per_s": points / (done - started) if done else None,
            **totals,
        }
        log(f"  {json.dumps(results['delivery_floor'])}")
        helpers.disconnect()
        results["load_end"] = os.getloadavg()
    finally:
        if helpers:
            helpers.stop()
        stack.stop()
    RESULTS.mkdir(exist_ok=True)
    path = args.output or RESULTS / f"ingest-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    alone = results["ingest_alone"]["points_per_s"]
    labelled = results["ingest_labelled"]["points_per_s"]
    log(
        f"one worker: {alone:.0f} points/s unlabelled, {labelled:.0f} labelled ({labelled / alone:.2f}x); "
        f"the floor {results['floor_points_per_s']:.0f}"
    )
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

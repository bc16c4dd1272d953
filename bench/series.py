"""`python -m bench.series`: reading series by their labels at 10,000 series (part of `make bench`).

On the bench's own Redis (bench.stack), its own database on DATABASE_URL's PostgreSQL
server (SQLite when DATABASE_URL is not PostgreSQL; the results say which) and two web
workers (uvicorn):

1. populate: `--metrics` x `--hosts` labelled series (`node_cpu{dc="eu",host="h0042",role="web"}`,
   ...) written as line protocol to /api/v2/write, one line per host and round with a
   field per metric, `--rounds` rounds with timestamps spread over the last `--minutes`;
   then the rollup writer's own step (`rollups.write_pending`) until it has caught up,
   as the collector's writer thread would within seconds;
2. queries: `/api/v1/series?match=`, `/api/v1/labels/NAME/values?match=` and
   `/api/metrics/history/?...&match=` with a read-scope token, each case asked
   `--requests` times one after another, alternating between the workers, after a few
   unmeasured requests: p50/p95/p99/max of the answer time seen by the client, the
   workers' CPU per request, and what was answered (series, values, bytes).

The results go to bench/results/series-<time>.json; docs/performance.md quotes them.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from bench.measure import ServerProcesses, summarise_ms
from bench.stack import BenchStack, postgres_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_P95_MS = 50
MEASUREMENT = "node"
FIELDS = ["cpu", "mem", "disk", "load1", "load5", "load15", "net_in", "net_out", "procs", "temp"]
DCS = ["eu", "us", "ap", "sa"]
ROLES = ["web", "db", "cache", "queue", "batch"]
# Lines (hosts) per write request: with 10 fields, 1,000 points a request, as bench.ingest sends.
LINES_PER_REQUEST = 100
IN_FLIGHT = 4
WARM_UP = 3


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def fields(metrics):
    return [FIELDS[i] if i < len(FIELDS) else f"m{i}" for i in range(metrics)]


def host_tags(index):
    return {"dc": DCS[index % len(DCS)], "host": f"h{index:04d}", "role": ROLES[index % len(ROLES)]}


def write_bodies(metrics, hosts, rounds, minutes, now):
    """Line protocol bodies, oldest round first; each round holds one point of every series."""
    names = fields(metrics)
    span = minutes * 60
    for round_ in range(rounds):
        ts = int(now - span + (round_ + 0.5) * span / rounds)
        lines = []
        for index in range(hosts):
            tags = ",".join(f"{k}={v}" for k, v in sorted(host_tags(index).items()))
            values = ",".join(
                f"{name}={(index * 7 + round_ * 3 + i) % 100}.5" for i, name in enumerate(names)
            )
            lines.append(f"{MEASUREMENT},{tags} {values} {ts}")
        for start in range(0, len(lines), LINES_PER_REQUEST):
            yield "\n".join(lines[start : start + LINES_PER_REQUEST]).encode()


async def populate(urls, token, bodies, points):
    """POST every body, IN_FLIGHT at a time, spread over the workers; points/s and answers."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
    queue = list(enumerate(bodies))
    statuses = {}

    async def worker(session):
        while queue:
            index, body = queue.pop(0)
            url = f"{urls[index % len(urls)]}/api/v2/write?precision=s"
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status != 204 and statuses[response.status] == 1:
                    log(f"  write answered {response.status}: {text[:300]}")

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session) for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    return {
        "points": points,
        "seconds": round(elapsed, 2),
        "points_per_s": round(points / elapsed),
        "statuses": statuses,
    }


def write_rollups():
    """The rollup writer's step until it has folded every event (its thread does the same
    every few seconds); seconds taken."""
    from dashboard import rollups

    started = time.perf_counter()
    while rollups.write_pending() >= rollups.READ_LIMIT:
        pass
    return round(time.perf_counter() - started, 2)


def cases(metrics, hosts):
    """(endpoint, description, path and query) of every measured request."""
    first = f"{MEASUREMENT}_{fields(metrics)[0]}"
    one_host = host_tags(min(42, hosts - 1))["host"]
    twenty = f'{first}{{host=~"h00[0-1][0-9]"}}'
    history = "/api/metrics/history/"
    return [
        ("series", "one series", "/api/v1/series", {"match": f'{first}{{host="{one_host}"}}'}),
        ("series", "one host, every metric (no name)", "/api/v1/series", {"match": f'{{host="{one_host}"}}'}),
        ("series", "20 hosts of one metric by regex", "/api/v1/series", {"match": twenty}),
        ("series", "one dc of one metric", "/api/v1/series", {"match": f'{first}{{dc="eu"}}'}),
        ("series", "every series of one metric", "/api/v1/series", {"match": first}),
        ("labels", "host values of one metric", "/api/v1/labels/host/values", {"match": first}),
        ("labels", "dc values of one role (no name)", "/api/v1/labels/dc/values", {"match": '{role="web"}'}),
        (
            "labels",
            "metric names of one host",
            "/api/v1/labels/__name__/values",
            {"match": f'{{host="{one_host}"}}'},
        ),
        ("history", "1 h, one series", history, {"minutes": 60, "match": f'{first}{{host="{one_host}"}}'}),
        (
            "history",
            "1 h, one host, every metric",
            history,
            {"minutes": 60, "match": f'{{host="{one_host}"}}'},
        ),
        ("history", "1 h, 20 hosts by regex", history, {"minutes": 60, "match": twenty}),
        ("history", "24 h, 20 hosts by regex", history, {"minutes": 1440, "match": twenty}),
    ]


def answered(endpoint, body):
    if endpoint == "series":
        return len(body["series"])
    if endpoint == "labels":
        return len(body["values"])
    return len(body["series"])


async def measure(urls, token, case_list, requests, pids):
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    workers = ServerProcesses(pids)
    results = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def get(index, path, params):
            url = f"{urls[index % len(urls)]}{path}?{urlencode(params)}"
            sent = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                raw = await response.read()
            elapsed = time.perf_counter() - sent
            if response.status != 200:
                raise RuntimeError(f"{url} answered {response.status}: {raw[:300]!r}")
            return elapsed, raw, response.headers.get("Content-Length")

        for endpoint, label, path, params in case_list:
            for index in range(WARM_UP):
                await get(index, path, params)
            times = []
            cpu = workers.cpu_seconds()
            for index in range(requests):
                elapsed, raw, wire = await get(index, path, params)
                times.append(elapsed)
            cpu = workers.cpu_seconds() - cpu
            body = json.loads(raw)
            summary = summarise_ms(times)
            results.append(
                {
                    "endpoint": endpoint,
                    "case": label,
                    "path": path,
                    "params": params,
                    "answered": answered(endpoint, body),
                    "points": sum(len(p) for p in body["series"].values()) if endpoint == "history" else None,
                    "step": body.get("step") if endpoint == "history" else None,
                    "bytes": len(raw),
                    "wire_bytes": int(wire) if wire else None,
                    "latency_ms": summary,
                    "workers_cpu_ms_per_request": round(1000 * cpu / requests, 2),
                    "met": summary["p95"] <= TARGET_P95_MS,
                }
            )
            cpu_ms = results[-1]["workers_cpu_ms_per_request"]
            log(
                f"  {endpoint:8} {label:36} {results[-1]['answered']:>6} answered, p50 {summary['p50']} "
                f"p95 {summary['p95']} p99 {summary['p99']} ms, CPU {cpu_ms} ms"
            )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10, help="metric names (fields of one measurement)")
    parser.add_argument("--hosts", type=int, default=1000, help="hosts, each a series of every metric")
    parser.add_argument("--rounds", type=int, default=12, help="points pushed per series")
    parser.add_argument(
        "--minutes", type=int, default=60, help="the rounds' timestamps span this many minutes"
    )
    parser.add_argument("--requests", type=int, default=100, help="measured requests per case")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for the results JSON")
    args = parser.parse_args(argv)

    series_count = args.metrics * args.hosts
    # Room for the bench's own series beside the measured ones (the default is 10,000).
    limits = {"MAX_SERIES": str(series_count + 100), "MAX_SERIES_PER_METRIC": str(args.hosts + 100)}
    stack = BenchStack(workers=2, users=1, postgres_url=postgres_server(), env=limits)
    results = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        # Where the file was written is no part of the measurement (and is a machine's path).
        "args": {k: v for k, v in vars(args).items() if k != "output"},
        "load_start": os.getloadavg(),
        "target_p95_ms": TARGET_P95_MS,
    }
    stack.start()
    try:
        from django.db import connection

        from api.models import ApiToken
        from dashboard import seriesindex

        results["database"] = connection.vendor
        _token, raw = ApiToken.create("bench", metric_patterns=["*"], read=True)
        servers = stack.start_servers("sse")
        urls = [server.url for server in servers]
        results["workers"] = len(servers)
        results["asgi_server"] = stack.asgi_server()

        points = series_count * args.rounds
        log(f"populate: {series_count} series x {args.rounds} rounds of line protocol, {len(urls)} workers")
        bodies = list(write_bodies(args.metrics, args.hosts, args.rounds, args.minutes, time.time()))
        results["populate"] = asyncio.run(populate(urls, raw, bodies, points))
        log(f"  {json.dumps(results['populate'])}")
        if set(results["populate"]["statuses"]) != {204}:
            raise RuntimeError(f"writes refused: {results['populate']['statuses']}")
        results["rollups_seconds"] = write_rollups()
        log(f"  rollups written in {results['rollups_seconds']} s")
        results["live_series"] = seriesindex.live_count()
        results["labelled_series"] = series_count
        log(f"live series in the index: {results['live_series']}")

        log(f"queries: {args.requests} requests per case, one at a time")
        results["cases"] = asyncio.run(
            measure(urls, raw, cases(args.metrics, args.hosts), args.requests, [s.pid for s in servers])
        )
        results["tracebacks"] = stack.tracebacks()
        results["load_end"] = os.getloadavg()
    finally:
        stack.stop()

    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"series-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(results, indent=2))
    print(
        f"{results['live_series']} live series ({results['labelled_series']} labelled), "
        f"{results['database']}, {results['workers']} workers; load average "
        f"{results['load_start'][0]:.1f} at the start, {results['load_end'][0]:.1f} at the end"
    )
    print(f"populate: {results['populate']['points_per_s']} points/s through the workers")
    header = ["answered", "p50 ms", "p95 ms", "p99 ms", "cpu ms", "KB", f"p95<={TARGET_P95_MS}"]
    print(f"{'endpoint':8} {'case':36} " + " ".join(f"{h:>8}" for h in header))
    for case in results["cases"]:
        latency = case["latency_ms"]
        cells = [case["answered"], latency["p50"], latency["p95"], latency["p99"]]
        cells += [
            case["workers_cpu_ms_per_request"],
            round(case["bytes"] / 1024),
            "met" if case["met"] else "NOT met",
        ]
        print(f"{case['endpoint']:8} {case['case']:36} " + " ".join(f"{c:>8}" for c in cells))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

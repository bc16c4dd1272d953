"""`python -m bench.history`: long-range history, measured (part of `make bench`).

1. Query: 30 days x 20 metrics sampled every second, as rollup rows of every tier
   (bulk-loaded, as the writer would have left them), plus the last hour of frames in
   the event store. Every window the page offers, the worst windows for the tier
   choice (the most rows read per series) and zoom ranges are asked REQUESTS times
   through the real view; p50/p95 time and the answer's size, plain and gzipped.
2. Writer: the collector at a 0.25 s interval with 20 metrics, for SECONDS without
   and then with the rollup writer thread; the process' CPU time in each.

Uses its own database (created and dropped here, on DATABASE_URL's server) and its
own Redis key prefix. Writes bench/results/history-<time>.json and prints a summary.
"""

import argparse
import gzip
import io
import json
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = 20
DAYS = 30
WINDOWS = [5, 15, 60, 360, 1440, 10080, 43200]
# Where the tier choice reads the most rows per series (just under a switch to a coarser tier).
WORST_WINDOWS = [833, 4999]


def setup_django(prefix):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    import django
    from django.conf import settings

    settings.REDIS_PREFIX = prefix
    django.setup()


def create_database():
    from django.db import connection

    name = f"bench_history_{os.getpid()}"
    connection.settings_dict.setdefault("TEST", {})["NAME"] = name if connection.vendor != "sqlite" else None
    return connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)


def load_rollups(now, days=DAYS):
    """Every tier's rows for DAYS days of METRICS metrics sampled each second."""
    from django.db import connection

    from dashboard import rollups
    from dashboard.models import MetricRollup

    rng = random.Random(1)
    keys = [f"metric_{i:02d}" for i in range(METRICS)]
    total = 0
    for step, retention in rollups.tiers():
        start = rollups.bucket_of(now - min(days * 86400, retention), step)
        buckets = range(start, rollups.bucket_of(now, step), step)
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            for bucket in buckets:
                for key in keys:
                    # Readings with one decimal, as psutil's percentages; a bucket's sum has more.
                    avg = rng.uniform(0, 100)
                    low, high = round(avg - 5, 1), round(avg + 5, 1)
                    buffer.write(f"{key}\t{step}\t{bucket}\t{step}\t{avg * step}\t{low}\t{high}\n")
                    total += 1
            buffer.seek(0)
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY {MetricRollup._meta.db_table} (key, tier, bucket, count, sum, min, max) FROM STDIN"
                ) as copy,
            ):
                while chunk := buffer.read(1 << 20):
                    copy.write(chunk)
        else:
            objects = []
            for bucket in buckets:
                for key in keys:
                    avg = rng.uniform(0, 100)
                    objects.append(
                        MetricRollup(
                            key=key,
                            tier=step,
                            bucket=bucket,
                            count=step,
                            sum=avg * step,
                            min=round(avg - 5, 1),
                            max=round(avg + 5, 1),
                        )
                    )
            MetricRollup.objects.bulk_create(objects, batch_size=5000)
            total += len(objects)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {MetricRollup._meta.db_table}")
    return total


def load_events(now):
    """The last hour of frames in the event store; the writer has all but the last two."""
    from dashboard.live import publish_frame
    from dashboard.models import RollupCursor

    keys = [f"metric_{i:02d}" for i in range(METRICS)]
    last = None
    for seq in range(3600):
        ts = now - 3600 + seq
        last = publish_frame(seq + 1, ts, {key: round(random.uniform(0, 100), 1) for key in keys})
    RollupCursor.objects.update_or_create(channel="metrics", defaults={"last_event_id": last.id - 2})


def measure_queries(requests):
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser("bench", "bench@example.org", "x")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    now = time.time()
    cases = [(f"{m} min", {"minutes": m}) for m in WINDOWS]
    cases += [(f"{m} min (most rows)", {"minutes": m}) for m in WORST_WINDOWS]
    cases += [
        ("zoom 1 h, 3 days ago", {"start": now - 3 * 86400, "end": now - 3 * 86400 + 3600}),
        ("zoom 2 days, 20 days ago", {"start": now - 20 * 86400, "end": now - 18 * 86400}),
    ]
    results = []
    for label, params in cases:
        times, cpu = [], []
        for _ in range(requests):
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get("/api/metrics/history/", params)
            times.append((time.perf_counter() - started) * 1000)
            # This process' CPU: what the view costs, whatever else the machine runs.
            cpu.append((time.process_time() - cpu_started) * 1000)
            assert response.status_code == 200, response.content[:200]
        body = json.loads(response.content)
        zipped = client.get("/api/metrics/history/", params, HTTP_ACCEPT_ENCODING="gzip")
        if zipped.get("Content-Encoding") != "gzip":
            print(f"{label}: answered without gzip ({len(zipped.content)} bytes)", flush=True)
        points = max((len(series) for series in body["series"].values()), default=0)
        sql_ms = database_ms(params) if body["step"] else None
        results.append(
            {
                "window": label,
                "step": body["step"],
                "points_per_metric": points,
                "metrics": len(body["series"]),
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(statistics.quantiles(times, n=20)[18], 1),
                "cpu_p50_ms": round(statistics.median(cpu), 1),
                "cpu_p95_ms": round(statistics.quantiles(cpu, n=20)[18], 1),
                "sql_ms": sql_ms,
                "bytes": len(response.content),
                "gzip_bytes": len(zipped.content),
            }
        )
        if zipped.get("Content-Encoding") == "gzip":
            json.loads(gzip.decompress(zipped.content))
    return results


def database_ms(params):
    """The database's own time for the window's rollup read (EXPLAIN ANALYZE), so the
    query's cost shows apart from a busy machine's scheduling."""
    from django.db import connection

    from dashboard import rollups
    from dashboard.stream.history import choose_step, parse_window

    if connection.vendor != "postgresql":
        return None
    window = parse_window({k: str(v) for k, v in params.items()})
    step, group = choose_step(window)
    lower = rollups.bucket_of(window.start, group)
    upper = None if window.end is None else rollups.bucket_of(window.end, step) + step
    sql, args = rollups.grouped_sql(step, group, lower, upper)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return round(plan[0]["Execution Time"], 1)


def measure_writer(seconds):
    """CPU of the collector process at 0.25 s with 20 metrics, without and with the writer."""
    from dashboard.collector import sampling
    from dashboard.collector.collector import Collector, HostSampler
    from dashboard.rollups import RollupWriter

    host = HostSampler()

    class TwentyMetrics:
        def sample(self):
            values = host.sample()
            values.update({f"custom_{i}": random.uniform(0, 100) for i in range(20 - len(values) - 3)})
            return values

    class MeasuredWriter(RollupWriter):
        cpu_seconds = 0.0

        def run(self):
            started = time.thread_time()
            try:
                super().run()
            finally:
                MeasuredWriter.cpu_seconds = time.thread_time() - started

    def run(with_writer):
        # App metrics are synthetic too: reading them SCANs the shared Redis, which on a
        # busy machine makes ticks late, and this measures the writer, not that.
        collector = Collector(sampler=TwentyMetrics(), app_metrics=lambda: {"a": 1, "b": 2, "c": 3})
        collector.state = sampling.SamplingState(interval=0.25)
        collector._refresh_state = lambda: None  # a fixed 0.25 s interval, whatever Redis says
        writer = MeasuredWriter().start() if with_writer else None
        cpu, wall = time.process_time(), time.perf_counter()
        timer = threading.Timer(seconds, collector.stop)
        timer.start()
        ticks = collector.run()
        used = time.process_time() - cpu
        elapsed = time.perf_counter() - wall
        result = {
            "ticks": ticks,
            "cpu_seconds": round(used, 3),
            "cpu_percent": round(100 * used / elapsed, 2),
        }
        if writer:
            writer.stop()
            result["writer_thread_cpu_seconds"] = round(MeasuredWriter.cpu_seconds, 3)
            result["writer_thread_cpu_percent"] = round(100 * MeasuredWriter.cpu_seconds / elapsed, 2)
        return result

    without = run(False)
    with_writer = run(True)
    added = with_writer["cpu_percent"] - without["cpu_percent"]
    return {
        "interval": 0.25,
        "metrics": 20,
        "seconds": seconds,
        "without_writer": without,
        "with_writer": with_writer,
        "added_cpu_percent_of_a_core": round(added, 2),
        "added_relative_percent": round(100 * added / without["cpu_percent"], 1)
        if without["cpu_percent"]
        else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per window")
    parser.add_argument("--seconds", type=float, default=20.0, help="collector run per writer phase")
    parser.add_argument("--days", type=int, default=DAYS, help="days of rollups to load (30 for the target)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for the results JSON")
    parser.add_argument("--part", choices=["all", "queries", "writer"], default="all")
    args = parser.parse_args(argv)

    prefix = f"bench-history-{os.getpid()}"
    setup_django(prefix)
    from django.db import connection

    from dashboard.redis import get_sync_client

    old_name = connection.settings_dict["NAME"]
    create_database()
    try:
        now = time.time()
        rows, queries, writer = 0, [], {}
        if args.part in ("all", "queries"):
            started = time.perf_counter()
            rows = load_rollups(now, args.days)
            print(f"loaded {rows} rollup rows in {time.perf_counter() - started:.0f} s", flush=True)
            load_events(now)
            queries = measure_queries(args.requests)
        if args.part in ("all", "writer"):
            writer = measure_writer(args.seconds)
    finally:
        client = get_sync_client()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        connection.creation.destroy_test_db(old_name, verbosity=0)

    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "database": connection.vendor,
        "days": args.days,
        "rollup_rows": rows,
        "queries": queries,
        "writer": writer,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"history-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    header = ["window", "step", "points", "p50 ms", "p95 ms", "cpu p50", "cpu p95", "sql ms", "KB", "gzip KB"]
    print(f"{header[0]:28} " + " ".join(f"{h:>8}" for h in header[1:]))
    for q in queries:
        cells = [
            q["step"],
            q["points_per_metric"],
            q["p50_ms"],
            q["p95_ms"],
            q["cpu_p50_ms"],
            q["cpu_p95_ms"],
        ]
        cells.append("-" if q["sql_ms"] is None else q["sql_ms"])
        cells += [round(q["bytes"] / 1024), round(q["gzip_bytes"] / 1024)]
        print(f"{q['window']:28} " + " ".join(f"{c:>8}" for c in cells))
    if writer:
        print(
            f"writer: collector {writer['without_writer']['cpu_percent']}% of a core without, "
            f"{writer['with_writer']['cpu_percent']}% with; the writer thread itself "
            f"{writer['with_writer']['writer_thread_cpu_percent']}% "
            f"({writer['without_writer']['ticks']} and {writer['with_writer']['ticks']} ticks)"
        )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

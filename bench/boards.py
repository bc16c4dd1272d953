"""`python -m bench.boards`: a dashboard of many panels in a real Chromium (part of `make bench`).

The issue's target: a 30-panel dashboard of 200 series draws its history within 1 s.
The series are `bench_mK{host="hNN"}`, 10 metrics of 20 hosts, with an hour of values
every 10 s, folded into the rollups as the collector's writer would have (then, as in
a deployment, the last events stay in the event store after the rollups' cursor).
The dashboard's 30 panels: for each metric a time series of its 20 hosts, a stat of
one host and a table of all 20, so every series is drawn and many twice.

1. Load: Debian's Chromium opens `/d/bench/` LOADS times, each in a fresh context:
   time from navigation start to every panel showing values (`time_to_values_ms`),
   the page's main-thread CPU over that load (Chrome's TaskDuration), and the web
   worker's CPU (the process and its children) meanwhile.
2. Live: one page open while every series gets a value each second for LIVE_SECONDS;
   the page's and the worker's CPU, as a share of one core.

Runs on the bench stack (bench.stack: its own Redis and SQLite database, one uvicorn
worker). Writes bench/results/boards-<time>.json and prints a summary.

    python -m bench.boards               # 30 panels, 200 series, 10 loads, 20 s live
    python -m bench.boards --quick       # a smoke run
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.run import RESULTS, log
from bench.stack import BenchStack

UID = "bench"
METRICS = 10
HOSTS = 20
HISTORY_STEP = 10  # seconds between stored values
FULL = {"loads": 10, "live_seconds": 20.0, "minutes": 60}
QUICK = {"loads": 2, "live_seconds": 2.0, "minutes": 5}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# Every panel of the page has a series with values; the answer is when (page clock).
ALL_PANELS_DRAWN = """() => {
  const charts = window.livedash && window.livedash.charts;
  if (!charts || !window.livedash.board) return false;
  const keys = charts.keys();
  if (keys.length !== %d) return false;
  for (const key of keys) if (!charts.seriesIds(key).length || !charts.points(key)) return false;
  return performance.now();
}"""


# The page's history requests, and the first one's times (page clock): sent, answered.
HISTORY_TIMING = """() => {
  const found = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/metrics/history/'));
  const first = found[0] || {};
  return {
    history_requests: found.length,
    history_sent_ms: Math.round(first.requestStart || 0),
    history_answered_ms: Math.round(first.responseEnd || 0),
    history_kb: Math.round((first.transferSize || 0) / 1024),
  };
}"""


def series_of(metric, host):
    return f'bench_m{metric}{{host="h{host:02d}"}}'


def document():
    """30 panels (10 metrics x a time series, a stat, a table) over 200 series."""
    panels = []
    for metric in range(METRICS):
        every_host = f"bench_m{metric}"
        row = metric * 4
        panels.append(
            {
                "id": len(panels) + 1,
                "title": f"m{metric} by host",
                "type": "timeseries",
                "series": [every_host],
                "unit": "%",
                "grid": {"x": 0, "y": row, "w": 6, "h": 4},
            }
        )
        panels.append(
            {
                "id": len(panels) + 1,
                "title": f"m{metric} h00",
                "type": "stat",
                "series": [series_of(metric, 0)],
                "unit": "%",
                "grid": {"x": 6, "y": row, "w": 2, "h": 4},
            }
        )
        panels.append(
            {
                "id": len(panels) + 1,
                "title": f"m{metric} table",
                "type": "table",
                "series": [every_host],
                "unit": "%",
                "grid": {"x": 8, "y": row, "w": 4, "h": 4},
            }
        )
    title = "Bench: 30 panels"
    return {"uid": UID, "title": title, "window": "1h", "visibility": "everyone", "panels": panels}


def load_history(minutes):
    """`minutes` of values every HISTORY_STEP s for every series, folded into the rollups."""
    from dashboard import rollups
    from dashboard.live import publish_metrics

    now = time.time()
    points = []
    for tick in range(minutes * 60 // HISTORY_STEP):
        ts = now - minutes * 60 + tick * HISTORY_STEP
        for metric in range(METRICS):
            for host in range(HOSTS):
                points.append((f"bench_m{metric}", float((tick + host) % 100), ts, {"host": f"h{host:02d}"}))
    for start in range(0, len(points), 1000):
        publish_metrics(points[start : start + 1000])
        while rollups.write_pending():
            pass
    return len(points)


def save_dashboard():
    from boards import store

    store.save(document(), author=store.Author(name="bench"), message="bench")


def cpu_seconds(pid):
    """CPU time of a process and its children, in seconds."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def page_cpu_seconds(cdp):
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics.get("TaskDuration", 0.0)


def measure_loads(browser, base_url, cookie, worker_pid, loads, panels):
    results = []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base_url}])
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        server_before = cpu_seconds(worker_pid)
        page.goto(base_url + f"/d/{UID}/", wait_until="commit")
        drawn = page.wait_for_function(ALL_PANELS_DRAWN % panels, polling="raf", timeout=60_000).json_value()
        results.append(
            {
                "time_to_values_ms": round(drawn, 1),
                "page_cpu_ms": round(page_cpu_seconds(cdp) * 1000, 1),
                "server_cpu_ms": round((cpu_seconds(worker_pid) - server_before) * 1000, 1),
                **page.evaluate(HISTORY_TIMING),
            }
        )
        context.close()
    return results


def measure_live(browser, base_url, cookie, worker_pid, seconds, panels):
    """Every series gets a value each second while one page is open."""
    from dashboard.live import publish_metrics

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": base_url}])
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(base_url + f"/d/{UID}/")
    page.wait_for_function(ALL_PANELS_DRAWN % panels, polling="raf", timeout=60_000)
    page.wait_for_function("() => livedash.stream.isOpen()")
    stop = threading.Event()
    sent = []

    def publish():
        value = 0
        while not stop.is_set():
            started = time.monotonic()
            value += 1
            labels = [{"host": f"h{h:02d}"} for h in range(HOSTS)]
            points = [(f"bench_m{m}", float(value), None, each) for m in range(METRICS) for each in labels]
            publish_metrics(points)
            sent.append(value)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    page_before, server_before, wall = page_cpu_seconds(cdp), cpu_seconds(worker_pid), time.perf_counter()
    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    time.sleep(seconds)  # the measured span itself, not a wait for a condition
    stop.set()
    publisher.join()
    elapsed = time.perf_counter() - wall
    page_used, server_used = page_cpu_seconds(cdp) - page_before, cpu_seconds(worker_pid) - server_before
    last = sent[-1] if sent else 0
    # The last value reached the page: the stream carried every series.
    page.wait_for_function(f"() => livedash.charts.series('panel-1')[1].includes({last})", timeout=10_000)
    context.close()
    return {
        "seconds": round(elapsed, 1),
        "points_per_second": METRICS * HOSTS,
        "page_cpu_percent": round(100 * page_used / elapsed, 1),
        "server_cpu_percent": round(100 * server_used / elapsed, 1),
    }


def summary(loads):
    out = {}
    for field in (
        "time_to_values_ms",
        "history_sent_ms",
        "history_answered_ms",
        "page_cpu_ms",
        "server_cpu_ms",
    ):
        values = [load[field] for load in loads]
        out[field] = {"p50": round(statistics.median(values), 1), "max": round(max(values), 1)}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.boards", description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, help="page loads measured: 10 (--quick: 2)")
    parser.add_argument("--live-seconds", type=float, help="the live phase: 20 s (--quick: 2)")
    parser.add_argument("--minutes", type=int, help="minutes of history: 60 (--quick: 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder (or .json file) for the results")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    from playwright.sync_api import sync_playwright

    stack = BenchStack(workers=1, users=1)
    stack.start()
    try:
        started = time.perf_counter()
        points = load_history(args.minutes)
        save_dashboard()
        log(f"{points} points of history in {time.perf_counter() - started:.0f} s")
        [server] = stack.start_servers("sse")
        from django.conf import settings

        cookie = (settings.SESSION_COOKIE_NAME, stack.sessions[0])
        panels = len(document()["panels"])
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                loads = measure_loads(browser, server.url, cookie, server.pid, args.loads, panels)
                live = measure_live(browser, server.url, cookie, server.pid, args.live_seconds, panels)
            finally:
                browser.close()
        tracebacks = stack.tracebacks()
    finally:
        stack.stop()

    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "panels": panels,
        "series": METRICS * HOSTS,
        "history_minutes": args.minutes,
        "history_points": points,
        "loads": loads,
        "load_summary": summary(loads),
        "live": live,
        "tracebacks": tracebacks,
    }
    path = args.output
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"boards-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2))
    s = result["load_summary"]
    print(f"{panels} panels, {METRICS * HOSTS} series, {args.minutes} min of history, {args.loads} loads")
    for field in (
        "time_to_values_ms",
        "history_sent_ms",
        "history_answered_ms",
        "page_cpu_ms",
        "server_cpu_ms",
    ):
        print(f"  {field:20} p50 {s[field]['p50']:>8}  max {s[field]['max']:>8}")
    print(f"  live: page {live['page_cpu_percent']}% of a core, worker {live['server_cpu_percent']}%")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"results: {path}")
    return 0 if not tracebacks else 1


if __name__ == "__main__":
    sys.exit(main())

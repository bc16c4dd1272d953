"""`python -m bench.selected`: viewers that each select some series of many, against the floor.

Each viewer opens `/events/?channel=metrics&match={group="gNNN"}`: the
20 series of one group out of 1,000 (`--series`, `--per-viewer`), many viewers per
group, as the viewers of one dashboard send the same selectors. A publisher process
pushes labelled points with `publish_metrics` at `--rate` points per second, in
batches of `--batch`; point `v` (its value) is series `v % series`, of group
`v % groups`, so every viewer expects `1 / groups` of the points and loss and
duplicates are counted per viewer.

The floor (bench.floor `--select-by group`) relays each stream only its group's
events, looking at each event once: whatever the product spends beyond it is the
price of selectors, access, ids and resume. Both run in the same run on fresh
servers, so the ratios hold on a noisy machine. Each phase ends with every viewer
dropped and reconnected at once, resuming with its Last-Event-ID and its selector.

    python -m bench.selected                       # 10,000 viewers, 1,000 series, 1,000 points/s
    python -m bench.selected --quick               # a smoke run
"""

import argparse
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from bench import report
from bench.clients import Target
from bench.limits import raise_open_files_limit
from bench.run import RESULTS, Bench, automatic_load_procs, interrupt, log
from bench.stack import BenchStack

PATHS = ("floor", "sse")
FULL = {"viewers": 10_000, "series": 1_000, "rate": 1_000, "seconds": 10.0}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.selected", description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, help="default 10,000 (--quick: 200)")
    parser.add_argument("--series", type=int, help="default 1,000 (--quick: 100)")
    parser.add_argument("--per-viewer", type=int, default=20, help="series each viewer selects")
    parser.add_argument("--rate", type=int, help="points published per second: 1,000 (--quick: 200)")
    parser.add_argument("--batch", type=int, default=100, help="points per publish_metrics call")
    parser.add_argument("--seconds", type=float, help="how long points are published: 10 (--quick: 3)")
    parser.add_argument("--load-procs", type=int, default=0, help="load-generator processes (0: automatic)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 200 viewers of 100 series for 3 s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    defaults = {"viewers": 200, "series": 100, "rate": 200, "seconds": 3.0} if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.groups = args.series // args.per_viewer if args.per_viewer else 0
    if args.groups < 1 or args.series % args.per_viewer:
        parser.error("--series must be a positive multiple of --per-viewer")
    if args.batch < 1 or args.rate % args.batch or args.batch % args.groups:
        parser.error("--rate must be a multiple of --batch, and --batch a multiple of the groups")
    args.points_per_s = args.rate
    # What bench.run's phases read: publish calls, and calls per second.
    args.events = int(args.seconds * args.rate / args.batch)
    args.rate = args.rate / args.batch
    args.profile = None
    return args


class SelectedBench(Bench):
    """bench.run's phases (fresh servers, the connect storm, the publish, the reconnect),
    with viewers that select a group and a publisher of labelled batches."""

    def __init__(self, args, stack):
        super().__init__(args, stack)
        # A viewer's share of one publish call: its group's points of the batch.
        self.per_client = args.batch // args.groups

    def targets(self, path, servers, count):
        result = []
        for index in range(count):
            group = index % self.args.groups
            base = servers[index % len(servers)].url
            if path == "floor":
                url, cookie = f"{base}/events/?group=g{group:03d}", None
            else:
                selector = quote(f'{{group="g{group:03d}"}}')
                url = f"{base}/events/?channel=metrics&match={selector}"
                cookie = self.stack.sessions[index % len(self.stack.sessions)]
            result.append(Target("sse", url, cookie, base, group))
        return result

    def publish_command(self, path, metric, events, rate):
        options = {"series": self.args.series, "batch": self.args.batch, "groups": self.args.groups}
        return ("publish", "selected_batches", metric, events, rate, options)

    def collect_command(self, published):
        # Seqs are point values: the first `published` calls published that many batches.
        return ("collect", range(published * self.args.batch), self.args.groups)


def ratios(phases):
    by_path = {phase["path"]: phase for phase in phases}
    floor, sse = by_path.get("floor"), by_path.get("sse")
    if not (floor and sse):
        return {}

    def ratio(read):
        a, b = read(sse), read(floor)
        return round(a / b, 2) if a and b else None

    return {
        "p99_latency": ratio(lambda p: p["latency_ms"]["p99"]),
        "cpu_per_delivery": ratio(lambda p: p["cpu"]["ms_per_1000_deliveries"]),
    }


def main(argv=None):
    args = parse_args(argv)
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, interrupt)
    stack = BenchStack(users=args.users, keep_logs=args.keep_logs)
    stack.floor_select_by = "group"
    bench = SelectedBench(args, stack)
    started_at, started = datetime.now(UTC), time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    phases = []
    try:
        log(f"bench.selected: {args.viewers} viewers, each {args.per_viewer} of {args.series} series")
        stack.start()
        bench.start_helpers(args.load_procs or automatic_load_procs(args.viewers))
        for path in PATHS:
            phases.append(bench.run_phase(path, args.viewers))
    except KeyboardInterrupt:
        log("interrupted: stopping everything the bench started")
        return 130
    finally:
        bench.stop_helpers()
        stack.stop()
    results = {
        "load_average_at_start": load_at_start,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "settings": {
            "viewers": args.viewers,
            "series": args.series,
            "per_viewer": args.per_viewer,
            "groups": args.groups,
            "points_per_s": args.points_per_s,
            "batch": args.batch,
            "seconds": args.seconds,
            "workers": stack.workers,
        },
        "machine": report.machine(),
        "phases": phases,
        "ratios_to_floor": ratios(phases),
    }
    path = report.save(results, args.output, "selected", started_at)
    for line in report.viewer_phase_lines(phases, width=5):
        log(line)
    log(f"ratios to the floor: {results['ratios_to_floor']}")
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

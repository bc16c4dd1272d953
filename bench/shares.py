"""`python -m bench.shares`: anonymous viewers of one share link, against the floor.

The wall-screen case: `--viewers` people without an account watch one shared
dashboard, each on `/events/?channel=metrics&share=TOKEN` (no session, no cookie),
the link's scope filtering every event. Its floor is the same viewers on the plain
`metrics` stream as signed-in users (bench.run's `sse` path): what the link costs
beyond it is the price of its scope, its viewer cap and its revocation. Both are run
directly against two web workers and again through Pushpin (the `pushpin` path, the
share's viewers held at the edge, each connect taking a place for its lease). All
four phases run in the same run on fresh servers, so the ratios hold on a noisy
machine; each ends with every viewer dropped and reconnected at once, resuming with
its Last-Event-ID.

    python -m bench.shares                 # 3,000 viewers, 50 events at 10/s
    python -m bench.shares --quick         # a smoke run
"""

import argparse
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.clients import Target
from bench.limits import raise_open_files_limit
from bench.run import RESULTS, Bench, automatic_load_procs, interrupt, log
from bench.stack import BenchStack

# (name in the results, the stack's path it runs on, through the share link)
PHASES = (
    ("sse", "sse", False),
    ("share", "sse", True),
    ("pushpin", "pushpin", False),
    ("pushpin-share", "pushpin", True),
)
FLOOR_OF = {"share": "sse", "pushpin-share": "pushpin"}
# The bench's metrics are named bench-<path>-<count>-<random>: the shared dashboard reads them all.
SHARED_DASHBOARD = {
    "uid": "bench-share",
    "title": "Bench share",
    "visibility": "everyone",
    "panels": [
        {
            "id": 1,
            "title": "Bench",
            "type": "timeseries",
            "series": ['{__name__=~"bench-.*"}'],
            "grid": {"x": 0, "y": 0, "w": 12, "h": 4},
        }
    ],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.shares", description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, help="default 3,000 (--quick: 100)")
    parser.add_argument("--events", type=int, help="events published per phase: 50 (--quick: 20)")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--load-procs", type=int, default=0, help="load-generator processes (0: automatic)")
    parser.add_argument("--users", type=int, default=20, help="signed-in users of the floor phases")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100 viewers, 20 events")
    parser.add_argument(
        "--phases",
        type=lambda text: text.split(","),
        default=[name for name, _, _ in PHASES],
        help=f"which of {','.join(name for name, _, _ in PHASES)} to run (all by default)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    defaults = {"viewers": 100, "events": 20} if args.quick else {"viewers": 3000, "events": 50}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.viewers < 1 or args.events < 1 or args.rate <= 0:
        parser.error("--viewers and --events must be at least 1, --rate positive")
    unknown = sorted(set(args.phases) - {name for name, _, _ in PHASES})
    if unknown:
        parser.error(f"unknown phases: {', '.join(unknown)}")
    args.profile = None
    return args


class SharesBench(Bench):
    """bench.run's phases, whose viewers are, while `token` is set, anonymous viewers of
    that share link."""

    token = None

    def targets(self, path, servers, count):
        plain = super().targets(path, servers, count)
        if self.token is None:
            return plain
        return [
            Target(
                t.kind,
                t.url.replace("?channel=metrics", f"?channel=metrics&share={self.token}"),
                None,
                t.origin,
            )
            for t in plain
        ]


def make_share_link():
    """The shared dashboard and a link to it, in the bench's database: the link's token."""
    from boards import sharing, store

    board = store.save(dict(SHARED_DASHBOARD), author=store.Author(name="bench"))
    _, token = sharing.create(board, user=None, note="bench")
    return token


def ratios(phases):
    by_path = {phase["path"]: phase for phase in phases}
    found = {}
    for path, floor_path in FLOOR_OF.items():
        share, floor = by_path.get(path), by_path.get(floor_path)
        if not (share and floor):
            continue

        def ratio(read, share=share, floor=floor):
            a, b = read(share), read(floor)
            return round(a / b, 2) if a and b else None

        found[path] = {
            "p99_latency": ratio(lambda p: p["latency_ms"]["p99"]),
            "cpu_per_delivery": ratio(lambda p: p["cpu"]["ms_per_1000_deliveries"]),
            "connect_s": ratio(lambda p: p["connect_s"]),
            "workers_connect_ms": ratio(lambda p: p["cpu"]["workers_connect_ms_per_connection"]),
        }
    return found


def main(argv=None):
    args = parse_args(argv)
    raise_open_files_limit()
    signal.signal(signal.SIGTERM, interrupt)
    # Every viewer on one link: the cap is raised past them (it still counts each one).
    stack = BenchStack(users=args.users, keep_logs=args.keep_logs, env={"SHARE_MAX_VIEWERS": "100000"})
    bench = SharesBench(args, stack)
    started_at, started = datetime.now(UTC), time.monotonic()
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    phases = []
    try:
        log(f"bench.shares: {args.viewers} anonymous viewers of one share link, and the floor")
        stack.start()
        token = make_share_link()
        bench.start_helpers(args.load_procs or automatic_load_procs(args.viewers), grip_url=stack.grip_url)
        for name, path, shared in [phase for phase in PHASES if phase[0] in args.phases]:
            bench.token = token if shared else None
            phase = bench.run_phase(path, args.viewers)
            phase["path"] = name
            phases.append(phase)
    except KeyboardInterrupt:
        log("interrupted: stopping everything the bench started")
        return 130
    finally:
        bench.stop_helpers()
        stack.stop()
    results = {
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "settings": {
            "viewers": args.viewers,
            "events": args.events,
            "rate": args.rate,
            "workers": stack.workers,
            "share_edge_lease_s": int(os.environ.get("SHARE_EDGE_LEASE_SECONDS", "600")),
        },
        "machine": report.machine(),
        "phases": phases,
        "ratios_to_floor": ratios(phases),
    }
    path = report.save(results, args.output, "shares", started_at)
    for line in report.viewer_phase_lines(phases, width=13):
        log(line)
    log(f"ratios to the floor: {results['ratios_to_floor']}")
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

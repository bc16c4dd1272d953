"""From an alert rule firing to the webhook receiving it, with many dashboards open.

    python -m bench.alert_latency [--clients 1000] [--rules 20] [--cycles 10]

Its own Redis and SQLite (BenchStack), two daphne workers, `--clients` SSE
dashboards held open by the bench's load processes, the collector (which
evaluates the rules and sends the deliveries, as in every deployment), and a
signature-checking webhook receiver in this process. `--rules` rules on the
`processes` metric are flipped between always-breached and never-breached,
`--cycles` times: each flip makes every rule fire (or resolve) at the next tick,
one notification each, all to one webhook channel (so in order, one at a time).

Latency per notification: when the receiver got it minus the notification's
`created_at`, the moment the collector's evaluator decided the rule fired or
resolved (one machine, one clock). Rules are re-read every few seconds; that
wait is a configuration delay and not counted.
"""

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from bench.limits import raise_open_files_limit
from bench.run import Bench, automatic_load_procs, log
from bench.stack import BenchStack

ALWAYS, NEVER = -1.0, 1e12


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000, help="SSE dashboards held open")
    parser.add_argument("--rules", type=int, default=20, help="alert rules flipped together")
    parser.add_argument("--cycles", type=int, default=10, help="fire-and-resolve rounds")
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    return parser.parse_args(argv)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv=None):
    args = parse_args(argv)
    raise_open_files_limit()
    stack = BenchStack(users=20)
    bench = Bench(SimpleNamespace(profile=None), stack)
    receiver = None
    try:
        log(f"alert latency: own Redis and SQLite in {stack.workdir}")
        stack.start()
        from alerts.models import AlertRule
        from dashboard.models import Metric
        from notifications.models import DeliveryChannel
        from tests.receivers import WebhookReceiver

        receiver = WebhookReceiver().start()
        DeliveryChannel.objects.create(kind="webhook", target=receiver.url, secret=receiver.secret)
        processes, _ = Metric.objects.get_or_create(key="processes", defaults={"label": "Processes"})
        rule_ids = [
            AlertRule.objects.create(
                name=f"bench rule {n}",
                metric=processes,
                threshold=NEVER,
                sustain_seconds=0,
                cooldown_seconds=0,
                repeat_minutes=0,
                # Measured from the crossing to the message: no grouping delay on top.
                group_wait=0,
                group_interval=0,
            ).pk
            for n in range(args.rules)
        ]
        servers = stack.start_servers("sse")
        collector_log = open(stack.workdir / "collector.log", "wb")  # noqa: SIM115
        collector = stack.supervisor.python(
            "collector", "manage.py", "collect_metrics", stdout=collector_log, stderr=collector_log
        )
        bench.start_helpers(automatic_load_procs(args.clients))
        targets = bench.targets("sse", servers, args.clients)
        log(f"connecting {args.clients} SSE dashboards")
        bench.ask(
            [("connect", part, "alert-latency") for part in bench.split(targets)],
            lambda: f"connected {bench.connected()}/{args.clients}",
        )
        connected = bench.connected()
        log(f"{connected} connected; flipping {args.rules} rules {args.cycles} times")
        expected = 0
        for cycle in range(args.cycles):
            for threshold in (ALWAYS, NEVER):
                AlertRule.objects.filter(pk__in=rule_ids).update(threshold=threshold)
                expected += args.rules
                deadline = time.monotonic() + 60
                while len(receiver.accepted()) < expected:
                    if collector.poll() is not None:
                        raise RuntimeError(f"the collector exited; see {collector_log.name}")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {len(receiver.accepted())}/{expected} arrived")
                    time.sleep(0.05)
            log(f"  cycle {cycle + 1}/{args.cycles}: {len(receiver.accepted())} received")
        still_connected = bench.connected()
        latencies = [
            r.received_wall - datetime.fromisoformat(r.payload["created_at"]).timestamp()
            for r in receiver.accepted()
        ]
        result = {
            "kind": "alert-latency",
            "at": datetime.now(UTC).isoformat(),
            "clients": args.clients,
            "connected": connected,
            "connected_at_end": still_connected,
            "notifications": len(latencies),
            "duplicates": len(receiver.accepted()) - len({r.delivery_id for r in receiver.accepted()}),
            "bad_signatures": sum(not r.signature_ok for r in receiver.requests),
            "latency_s": {
                "p50": round(statistics.median(latencies), 4),
                "p95": round(percentile(latencies, 0.95), 4),
                "p99": round(percentile(latencies, 0.99), 4),
                "max": round(max(latencies), 4),
            },
        }
        args.output.mkdir(parents=True, exist_ok=True)
        path = args.output / f"alert-latency-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        log(f"results: {path}")
        return 0
    finally:
        bench.stop_helpers()
        if receiver is not None:
            receiver.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())

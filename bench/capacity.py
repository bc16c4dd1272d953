"""`python -m bench.capacity`: what a viewer and an event cost on each route, and the machines
that many viewers would need.

The model is fitted to the stream bench's own results (`python -m bench`), one straight line
per figure and route, by least squares over the phases of the given files:

- server CPU over a phase's publish window, per event published = CPU per event + viewers
  reached × CPU per delivery (a delivery is one event to one viewer; the window's idle time
  and keep-alives are in the slope, as they are at the rate the bench publishes at);
- the workers' CPU over the connect storm = connected × CPU per connect;
- RSS of the processes holding the connections, once connected = base + viewers × per viewer;
- Redis commands in the publish window, per event = per event + viewers reached × per
  delivery, and in the connect storm = connected × per connect (only runs that recorded
  `redis_calls`).

A route's machines hold its connections (the workers for direct SSE and the WebSocket,
Pushpin for the Pushpin route); the Redis is one, shared by all of them.
"""

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = {
    "sse": "direct SSE (uvicorn)",
    "pushpin": "SSE via Pushpin",
    "ws": "WebSocket (uvicorn)",
}
# The fit: two runs of the current tree, each with Redis commands recorded: the three routes
# at 1,000, 3,000 and 10,000 viewers (the WebSocket at 1,000 and 3,000), and the full `make bench`.
DEFAULT_FIT = [RESULTS / "20261207T071100Z.json", RESULTS / "20261207T033637Z.json"]
# Points the model is checked against and not fitted to, from two other runs of the same tree:
# direct SSE at 10,000 and at 3,000.
DEFAULT_CHECK = [
    f"{RESULTS / '20261207T033500Z.json'}:sse:10000",
    f"{RESULTS / '20261207T043513Z.json'}:sse:3000",
]

HEADROOM = 0.7  # of a machine's cores and memory and of Redis' ceiling: room for bursts and storms
# One Redis' commands per second: below the slowest command redis-benchmark measured on the
# bench's machine (docs/performance.md, "A capacity model"), as the product's mix has Lua scripts.
REDIS_OPS_CEILING = 40_000
VIEWERS = (100_000, 1_000_000)
RATES = (1, 10)


# Points --------------------------------------------------------------------------------


def points_of(results, source=""):
    """The clean phases of the modelled routes (everyone connected, nothing lost) as points."""
    points = []
    for phase in results["phases"]:
        if phase["path"] not in PATHS or phase["connected"] != phase["clients"]:
            continue
        if phase["lost"] or phase["duplicates"] or not phase["connected"]:
            continue
        cpu = phase["cpu"]
        calls = phase.get("redis_calls")
        points.append(
            {
                "source": source,
                "path": phase["path"],
                "clients": phase["clients"],
                "connected": phase["connected"],
                "events": phase["events_published"],
                "deliveries": phase["deliveries"],
                "cpu_s": cpu["server_ms"] / 1000,
                "connect_cpu_s": (cpu.get("workers_connect_ms_per_connection") or 0)
                * phase["connected"]
                / 1000,
                "rss_kb": sum(s["rss_connected_kb"] for s in phase["memory"]["servers"]),
                "redis_connect_calls": sum(calls["connect"].values()) if calls else None,
                "redis_publish_calls": sum(calls["publish"].values()) if calls else None,
            }
        )
    return points


def load(path):
    return json.loads(Path(path).read_text())


def parse_check(spec):
    """`FILE` (all its points) or `FILE:PATH:CLIENTS` (one of them)."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 3 and parts[1] in PATHS and parts[2].isdigit():
        return Path(parts[0]), parts[1], int(parts[2])
    return Path(spec), None, None


def select(points, path=None, clients=None):
    return [
        p
        for p in points
        if (path is None or p["path"] == path) and (clients is None or p["clients"] == clients)
    ]


# The fit -------------------------------------------------------------------------------


def fit_line(xs, ys):
    """Least squares y = a + b·x; (a, b).

    A fitted cost below zero is noise, not a saving: a slope below zero means y does not
    grow with x (y is its mean), and an intercept below zero, or fewer than two distinct x
    (where the two cannot be told apart), is fitted through the origin."""
    n = len(xs)
    if len(set(xs)) >= 2:
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mean_x) ** 2 for x in xs)
        b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
        a = mean_y - b * mean_x
        if b < 0:
            return mean_y, 0.0
        if a >= 0:
            return a, b
    return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)


def fit_path(points):
    """One route's costs from its points (seconds, KB and commands)."""
    # Per event published against the viewers each reached: the intercept is what an event
    # costs once, the slope what it costs per viewer, whatever the events per phase.
    reached = [p["deliveries"] / p["events"] for p in points]
    connected = [p["connected"] for p in points]
    cpu_per_event, cpu_per_delivery = fit_line(reached, [p["cpu_s"] / p["events"] for p in points])
    base_kb, kb_per_viewer = fit_line(connected, [p["rss_kb"] for p in points])
    _, connect_s = fit_line(connected, [p["connect_cpu_s"] for p in points])
    model = {
        "points": [(p["source"], p["clients"]) for p in points],
        "cpu_per_delivery_s": cpu_per_delivery,
        "cpu_per_event_s": cpu_per_event,
        "workers_cpu_per_connect_s": connect_s,
        "base_kb": base_kb,
        "kb_per_viewer": kb_per_viewer,
        # None where no run recorded Redis commands: "not measured", never a guess.
        "redis_calls_per_event": None,
        "redis_calls_per_delivery": None,
        "redis_calls_per_connect": None,
    }
    measured = [p for p in points if p["redis_publish_calls"] is not None]
    if measured:
        calls_per_event, calls_per_delivery = fit_line(
            [p["deliveries"] / p["events"] for p in measured],
            [p["redis_publish_calls"] / p["events"] for p in measured],
        )
        _, per_connect = fit_line(
            [p["connected"] for p in measured], [p["redis_connect_calls"] for p in measured]
        )
        model.update(
            redis_calls_per_event=calls_per_event,
            redis_calls_per_delivery=calls_per_delivery,
            redis_calls_per_connect=per_connect,
        )
    return model


def fit(points):
    by_path = {path: select(points, path) for path in PATHS}
    return {path: fit_path(chosen) for path, chosen in by_path.items() if chosen}


# Projection ----------------------------------------------------------------------------


def project(model, viewers, rate, cores, memory_mb, redis_ceiling, headroom=HEADROOM):
    """Machines of `cores` and `memory_mb` to hold `viewers` at `rate` events/s, and which
    resource saturates first: the one nearest its ceiling (less headroom) at that fleet.

    A machine's CPU carries each event once (its own share of the pub/sub) and each
    delivery; its memory a base and each viewer. Redis is one for the whole fleet."""
    cpu_room = cores * headroom - rate * model["cpu_per_event_s"]
    delivery_s = rate * model["cpu_per_delivery_s"]
    by_cpu = max(cpu_room, 0) / delivery_s if delivery_s > 0 else math.inf
    memory_room = memory_mb * 1024 * headroom - model["base_kb"]
    by_memory = max(memory_room, 0) / model["kb_per_viewer"] if model["kb_per_viewer"] > 0 else math.inf
    limit = min(by_cpu, by_memory)
    # Whole viewers (the nudge keeps 13,999.999… from float division at 14,000).
    per_machine = limit if limit == math.inf else math.floor(limit + 1e-6)
    if per_machine < 1:
        return {"machines": None, "saturates": "CPU" if by_cpu < 1 else "memory", "viewers_per_machine": 0}
    machines = max(1, math.ceil(viewers / per_machine))
    share = viewers / machines
    use = {
        "CPU": (rate * model["cpu_per_event_s"] + share * delivery_s) / (cores * headroom),
        "memory": (model["base_kb"] + share * model["kb_per_viewer"]) / (memory_mb * 1024 * headroom),
    }
    redis_ops = redis_ops_per_second(model, viewers, rate)
    if redis_ops is not None:
        use["Redis"] = redis_ops / (redis_ceiling * headroom)
    return {
        "machines": machines,
        "viewers_per_machine": per_machine,
        "limit_by_cpu": by_cpu,
        "limit_by_memory": by_memory,
        "use": use,
        "redis_ops_per_s": redis_ops,
        "saturates": max(use, key=use.get),
        # A full reconnect (a deploy, a network blip): the workers' CPU over the fleet, and
        # Redis' commands against its ceiling, each as seconds of the whole of it.
        "reconnect_cpu_s": viewers * model["workers_cpu_per_connect_s"] / (machines * cores),
        "reconnect_redis_s": (
            viewers * model["redis_calls_per_connect"] / redis_ceiling
            if model["redis_calls_per_connect"] is not None
            else None
        ),
    }


def redis_ops_per_second(model, viewers, rate):
    if model["redis_calls_per_event"] is None:
        return None
    return rate * (model["redis_calls_per_event"] + viewers * model["redis_calls_per_delivery"])


# The check -----------------------------------------------------------------------------


def predict(model, point):
    """What the model says a measured point's CPU and memory (and Redis commands) were."""
    predicted = {
        "cpu_s": point["events"] * model["cpu_per_event_s"]
        + point["deliveries"] * model["cpu_per_delivery_s"],
        "rss_kb": model["base_kb"] + point["connected"] * model["kb_per_viewer"],
    }
    if model["redis_calls_per_event"] is not None and point["redis_publish_calls"] is not None:
        predicted["redis_publish_calls"] = (
            point["events"] * model["redis_calls_per_event"]
            + point["deliveries"] * model["redis_calls_per_delivery"]
        )
    return predicted


def error_percent(predicted, measured):
    return None if not measured else (predicted - measured) / measured * 100


def check(models, points):
    rows = []
    for point in points:
        model = models.get(point["path"])
        if model is None:
            continue
        for figure, value in predict(model, point).items():
            rows.append(
                {
                    "source": point["source"],
                    "path": point["path"],
                    "clients": point["clients"],
                    "figure": figure,
                    "predicted": value,
                    "measured": point[figure],
                    "error_percent": error_percent(value, point[figure]),
                }
            )
    return rows


# Output --------------------------------------------------------------------------------


def _or_not_measured(value, scale=1, digits=2):
    return "not measured" if value is None else f"{value * scale:,.{digits}f}"


def _sizes(counts):
    # A size a run measured twice (`--clients` and `--large` both at 10,000) is two points.
    return ", ".join(f"{n:,}" + (f" ({times} phases)" if times > 1 else "") for n, times in counts.items())


def costs_table(models):
    lines = [
        "| route | CPU µs per delivery | CPU ms per event | workers' CPU ms per connect | KB per viewer "
        "| base MB | Redis commands per event | per delivery | per connect | fitted to |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, m in models.items():
        sizes = {}
        for source, clients in m["points"]:
            sizes.setdefault(Path(source).stem, Counter())[clients] += 1
        points = "; ".join(f"{stem} at {_sizes(counts)}" for stem, counts in sizes.items())
        lines.append(
            f"| {PATHS[path]} | {m['cpu_per_delivery_s'] * 1e6:.2f} | {m['cpu_per_event_s'] * 1e3:.2f} "
            f"| {m['workers_cpu_per_connect_s'] * 1e3:.2f} | {m['kb_per_viewer']:.1f} "
            f"| {m['base_kb'] / 1024:.0f} "
            f"| {_or_not_measured(m['redis_calls_per_event'], digits=1)} "
            f"| {_or_not_measured(m['redis_calls_per_delivery'], digits=4)} "
            f"| {_or_not_measured(m['redis_calls_per_connect'], digits=1)} | {points} |"
        )
    return "\n".join(lines)


def machines_table(projections):
    lines = [
        "| route | viewers | events/s | machines | viewers per machine | saturates first "
        "| CPU / memory / Redis use | full reconnect: CPU s / Redis s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in projections:
        p = row["projection"]
        if p["machines"] is None:
            lines.append(
                f"| {PATHS[row['path']]} | {row['viewers']:,} | {row['rate']} | – | 0 | {p['saturates']} |"
            )
            continue
        use = " / ".join(
            f"{p['use'][name]:.0%}" if name in p["use"] else "not measured"
            for name in ("CPU", "memory", "Redis")
        )
        redis_s = "not measured" if p["reconnect_redis_s"] is None else f"{p['reconnect_redis_s']:.1f}"
        lines.append(
            f"| {PATHS[row['path']]} | {row['viewers']:,} | {row['rate']} | {p['machines']:,} "
            f"| {p['viewers_per_machine']:,} | {p['saturates']} | {use} "
            f"| {p['reconnect_cpu_s']:.1f} / {redis_s} |"
        )
    return "\n".join(lines)


def check_table(rows):
    lines = ["| point | figure | predicted | measured | error |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {Path(r['source']).stem} {r['path']} at {r['clients']:,} | {r['figure']} "
            f"| {r['predicted']:,.2f} | {r['measured']:,.2f} | {r['error_percent']:+.1f}% |"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description="Per-viewer and per-event costs fitted to the stream bench's results; machines needed.",
    )
    parser.add_argument(
        "results", nargs="*", type=Path, help="results files to fit (default: the committed runs)"
    )
    parser.add_argument(
        "--check",
        action="append",
        metavar="FILE[:PATH:CLIENTS]",
        help="a measured point (or every point of FILE) to predict; it is left out of the fit (repeatable)",
    )
    parser.add_argument(
        "--redis-ceiling",
        type=float,
        default=REDIS_OPS_CEILING,
        help="Redis commands per second it can serve",
    )
    parser.add_argument(
        "--headroom", type=float, default=HEADROOM, help="share of CPU, memory and Redis to use"
    )
    parser.add_argument("--json", action="store_true", help="print the model, projections and check as JSON")
    args = parser.parse_args(argv)
    if not args.results:
        args.results = DEFAULT_FIT
        args.check = args.check if args.check is not None else DEFAULT_CHECK
    args.check = args.check or []
    if not 0 < args.headroom <= 1 or args.redis_ceiling <= 0:
        parser.error("--headroom must be in (0, 1] and --redis-ceiling positive")
    return args


def run(args):
    held_out, checked = set(), []
    for spec in args.check:
        file, path, clients = parse_check(spec)
        chosen = select(points_of(load(file), file.name), path, clients)
        if not chosen:
            raise SystemExit(f"--check {spec}: no clean point of {', '.join(PATHS)} there")
        checked += chosen
        held_out |= {(str(file.resolve()), p["path"], p["clients"]) for p in chosen}
    fitted, machine = [], None
    for file in args.results:
        results = load(file)
        machine = machine or results["machine"]
        fitted += [
            p
            for p in points_of(results, file.name)
            if (str(file.resolve()), p["path"], p["clients"]) not in held_out
        ]
    models = fit(fitted)
    cores, memory_mb = machine["cpu_count"], machine["memory_mb"]
    projections = [
        {
            "path": path,
            "viewers": viewers,
            "rate": rate,
            "projection": project(
                models[path], viewers, rate, cores, memory_mb, args.redis_ceiling, args.headroom
            ),
        }
        for path in models
        for viewers in VIEWERS
        for rate in RATES
    ]
    return {
        "machine": {"cores": cores, "memory_mb": memory_mb, "cpu_model": machine.get("cpu_model")},
        "assumptions": {"headroom": args.headroom, "redis_ops_ceiling": args.redis_ceiling},
        "fitted_to": [f.name for f in args.results],
        "models": models,
        "projections": projections,
        "check": check(models, checked),
    }


def main(argv=None):
    args = parse_args(argv)
    output = run(args)
    if args.json:
        print(json.dumps(output, indent=1, default=str))
        return 0
    m, a = output["machine"], output["assumptions"]
    print(f"Costs fitted to {', '.join(Path(f).name for f in output['fitted_to'])}:\n")
    print(costs_table(output["models"]))
    print(
        f"\nMachines of {m['cores']} cores and {m['memory_mb']:,} MB ({m['cpu_model']}), using "
        f"{a['headroom']:.0%} of their CPU and memory and of a Redis of {a['redis_ops_ceiling']:,.0f} "
        "commands/s (use: the share of that):\n"
    )
    print(machines_table(output["projections"]))
    if output["check"]:
        print("\nPoints not fitted to, predicted:\n")
        print(check_table(output["check"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The results of a run: the JSON document, the targets met or not, the printed table."""

import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

PACKAGES = (
    "django",
    "daphne",
    "channels",
    "channels-redis",
    "django-eventstream",
    "redis",
    "aiohttp",
    "twisted",
)
RATIO_KEYS = ("p99", "memory_per_connection", "cpu_per_delivery", "connect_time")
LABELS = {
    "floor": "floor relay (aiohttp)",
    "sse": "product SSE (daphne)",
    "ws": "product WebSocket (daphne)",
    "pushpin-floor": "Pushpin floor (do-nothing origin)",
    "pushpin": "product SSE via Pushpin",
}
# Each path's peer in the same run: the least that route can cost on this machine.
FLOOR_OF = {"sse": "floor", "ws": "floor", "pushpin": "pushpin-floor"}


def machine():
    """What the numbers were measured on: they mean little without it."""
    return {
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_model": _cpu_model(),
        "memory_mb": psutil.virtual_memory().total // (1024 * 1024),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "redis_server": _redis_server_version(),
        # Other work on the machine skews every figure (the ratios to the floor less so).
        "load_average_at_end": [round(x, 2) for x in psutil.getloadavg()],
    }


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _version(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _redis_server_version():
    from deploy.supervisor import redis_server_binary

    try:
        output = subprocess.run(
            [redis_server_binary(), "--version"], capture_output=True, text=True, timeout=5
        )
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None


# Targets -------------------------------------------------------------------------------


def _phase(phases, path, clients):
    return next((p for p in phases if p["path"] == path and p["clients"] == clients), None)


def _target(name, limit, measured, unit, met):
    return {"target": name, "limit": limit, "measured": measured, "unit": unit, "met": met}


def targets(phases):
    """Each target from the issue, met / not met, or null when this run did not measure it."""
    product = [p for p in phases if p["path"] in FLOOR_OF]
    result = []
    lost = sum(p["lost"] for p in product)
    duplicates = sum(p["duplicates"] for p in product)
    result.append(
        _target(
            "0 loss and 0 duplicates (every product path, every size)",
            "0 / 0",
            f"{lost} / {duplicates}",
            "events",
            (lost == 0 and duplicates == 0) if product else None,
        )
    )
    sse_1000 = _phase(phases, "sse", 1000)
    p99 = sse_1000["latency_ms"]["p99"] if sse_1000 else None
    result.append(_target("direct daphne, 1,000 SSE clients: p99", 100, p99, "ms", _at_most(p99, 100)))
    memory = sse_1000["memory"]["per_connection_kb"] if sse_1000 else None
    result.append(
        _target("direct daphne, 1,000 SSE clients: memory", 50, memory, "KB/conn", _at_most(memory, 50))
    )
    sse_3000 = _phase(phases, "sse", 3000)
    p99 = sse_3000["latency_ms"]["p99"] if sse_3000 else None
    result.append(_target("direct daphne, 3,000 SSE clients: p99", 1000, p99, "ms", _at_most(p99, 1000)))
    result.append(
        _all_in_target("3,000 SSE clients reconnect", sse_3000, 3000, "reconnected", "reconnect_s", 3)
    )
    ws_cpu = [p["cpu"]["ms_per_1000_deliveries"] for p in phases if p["path"] == "ws"]
    worst = max((c for c in ws_cpu if c is not None), default=None)
    result.append(
        _target(
            "WebSocket broadcast CPU per 1,000 deliveries (worst size)",
            100,
            worst,
            "ms",
            _at_most(worst, 100),
        )
    )
    return result + pushpin_targets(phases)


def pushpin_targets(phases):
    """Issue 8's targets for the Pushpin edge (null when the run did not reach that size)."""
    result = []
    at_10000 = _phase(phases, "pushpin", 10000)
    lost_dup = f"{at_10000['lost']} / {at_10000['duplicates']}" if at_10000 else None
    clean = (at_10000["lost"], at_10000["duplicates"]) == (0, 0) if at_10000 else None
    result.append(_target("Pushpin, 10,000 clients: loss / duplicates", "0 / 0", lost_dup, "events", clean))
    at_3000 = _phase(phases, "pushpin", 3000)
    p99 = at_3000["latency_ms"]["p99"] if at_3000 else None
    result.append(_target("Pushpin, 3,000 clients: p99", 250, p99, "ms", _at_most(p99, 250)))
    result.append(
        _all_in_target(
            "Pushpin, 10,000 clients connected", at_10000, 10000, "connected_at_once", "connect_s", 20
        )
    )
    return result


def _all_in_target(label, phase, clients, done_key, seconds_key, limit):
    """An "N clients (re)connect within limit seconds" target; a partial count misses it."""
    if phase is None:
        return _target(label, limit, None, "s", None)
    seconds = phase[seconds_key]
    if phase[done_key] == clients:
        return _target(label, limit, seconds, "s", seconds <= limit)
    partial = f"only {phase[done_key]:,} of {clients:,} within {seconds:.0f}"
    return _target(label, limit, partial, "s", False)


def _at_most(value, limit):
    return None if value is None else value <= limit


def ratios(phases):
    """The product as multiples of its floor at the same size: ratios survive a noisy machine.

    The Pushpin route is compared with Pushpin in front of a do-nothing origin when
    the run has it (what Pushpin itself costs here), else with the aiohttp floor."""
    result = []
    for phase in phases:
        if phase["path"] not in FLOOR_OF:
            continue
        floor = _phase(phases, FLOOR_OF[phase["path"]], phase["clients"]) or _phase(
            phases, "floor", phase["clients"]
        )
        if floor is None:
            continue
        result.append(
            {
                "path": phase["path"],
                "clients": phase["clients"],
                "floor": floor["path"],
                "p50": _ratio(phase["latency_ms"]["p50"], floor["latency_ms"]["p50"]),
                "p99": _ratio(phase["latency_ms"]["p99"], floor["latency_ms"]["p99"]),
                "memory_per_connection": _ratio(
                    phase["memory"]["per_connection_kb"], floor["memory"]["per_connection_kb"]
                ),
                "cpu_per_delivery": _ratio(
                    phase["cpu"]["ms_per_1000_deliveries"], floor["cpu"]["ms_per_1000_deliveries"]
                ),
                "connect_time": _ratio(phase["connect_s"], floor["connect_s"]),
            }
        )
    return result


def _ratio(value, floor):
    if value is None or not floor or floor <= 0:
        return None
    return round(value / floor, 2)


# Output --------------------------------------------------------------------------------


def build(args, phases, started_at, duration_s, load_at_start=None):
    return {
        "load_average_at_start": load_at_start,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "settings": {
            "clients": args.clients,
            "ws_clients": args.ws_clients,
            "events": args.events,
            "rate": args.rate,
            "paths": args.paths,
            "workers": 2,
            "users": args.users,
            "quick": args.quick,
        },
        "machine": machine(),
        "phases": phases,
        "ratios_to_floor": ratios(phases),
        "targets": targets(phases),
    }


def write(results, folder, plot=True):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("+0000", "Z").replace("-", "")
    json_path = folder / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    png_path = None
    if plot:
        from bench.plot import plot_results

        png_path = folder / f"{stamp}.png"
        plot_results(results, png_path)
    return json_path, png_path


def _fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _connect(seconds, connected, clients):
    # A storm that left clients out says so: "30.1 (589/3,000)".
    return f"{seconds:.2f}" if connected == clients else f"{seconds:.1f} ({connected:,}/{clients:,})"


def summary_rows(results):
    """Rows of the summary table (also what the README's table is made of)."""
    ratio = {(r["path"], r["clients"]): r for r in results["ratios_to_floor"]}
    rows = []
    for p in results["phases"]:
        lat = p["latency_ms"]
        r = ratio.get((p["path"], p["clients"]))
        threads = sum(s["threads_connected"] for s in p["memory"]["servers"])
        rows.append(
            [
                LABELS[p["path"]],
                f"{p['clients']:,}",
                f"{_fmt(p['memory']['per_connection_kb'], 1)} KB",
                str(threads),
                " / ".join(_fmt(lat[k], 1) for k in ("p50", "p95", "p99", "max")),
                f"{p['lost']} / {p['duplicates']}",
                _fmt(p["cpu"]["ms_per_1000_deliveries"], 1),
                f"{_connect(p['connect_s'], p['connected_at_once'], p['clients'])} / "
                f"{_connect(p['reconnect_s'], p['reconnected'], p['clients'])}",
                (f"{_fmt(p['ping_ms']['p50'], 1)} / {_fmt(p['ping_ms']['p99'], 1)}" if p["ping_ms"] else "–"),
                " / ".join(f"{_fmt(r[k], 1)}×" for k in RATIO_KEYS) if r else "–",
            ]
        )
    return rows


HEADERS = [
    "path",
    "clients",
    "memory/conn",
    "server threads",
    "latency p50 / p95 / p99 / max ms",
    "lost / dup",
    "CPU ms per 1,000 deliveries",
    "connect / reconnect s",
    "ping p50 / p99 ms",
    "vs its floor: p99 / memory / CPU / connect",
]


def markdown_table(results):
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(results)]
    return "\n".join(lines)


def targets_table(results):
    lines = ["| target | limit | measured | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        met = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        measured = "–" if t["measured"] is None else f"{t['measured']} {t['unit']}"
        lines.append(f"| {t['target']} | {t['limit']} {t['unit']} | {measured} | {met} |")
    return "\n".join(lines)


def summary(results):
    m = results["machine"]
    s = results["settings"]
    header = (
        f"\nlivedash bench, {results['started_at']}: {m['cpu_count']} × {m['cpu_model']}, "
        f"{m['memory_mb']:,} MB; {s['events']} events at {s['rate']:g}/s over {s['workers']} workers; "
        f"load average {results.get('load_average_at_start')} at start, "
        f"{m.get('load_average_at_end')} at end\n"
    )
    return "\n".join([header, markdown_table(results), "", targets_table(results), ""])


def main(argv=None):
    """`python -m bench.report RESULTS.json`: the tables of a past run, as Markdown."""
    import sys

    paths = (argv if argv is not None else sys.argv[1:]) or []
    if len(paths) != 1:
        print("usage: python -m bench.report RESULTS.json", file=sys.stderr)
        return 2
    print(summary(json.loads(Path(paths[0]).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

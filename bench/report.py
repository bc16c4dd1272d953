"""The results of a run: the JSON document, the targets met or not, the printed table."""

import json
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

PACKAGES = (
    "django",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
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
    "sse": "product SSE (uvicorn)",
    "sse-daphne": "product SSE (daphne)",
    "ws": "product WebSocket (uvicorn)",
    "ws-daphne": "product WebSocket (daphne)",
    "pushpin-floor": "Pushpin floor (do-nothing origin)",
    "pushpin": "product SSE via Pushpin",
}
# Each path's peer in the same run: the least that route can cost on this machine.
FLOOR_OF = {
    "sse": "floor",
    "sse-daphne": "floor",
    "ws": "floor",
    "ws-daphne": "floor",
    "pushpin": "pushpin-floor",
}


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


def _target(name, limit, measured, unit, met, floor=None):
    """floor: the floor's own figure at that size in the same run, for what the box allows."""
    return {"target": name, "limit": limit, "measured": measured, "unit": unit, "met": met, "floor": floor}


def _ratio_target(label, phases, path, clients, key, value_of, limit):
    """ "`key` ≤ limit× the floor's at `clients`": measured and floor figures, met or not."""
    phase, floor = _phase(phases, path, clients), _phase(phases, "floor", clients)
    value = value_of(phase) if phase else None
    floor_value = value_of(floor) if floor else None
    ratio = _ratio(value, floor_value)
    measured = None if ratio is None else f"{ratio}× ({value:,.1f} vs {floor_value:,.1f})"
    return _target(label, f"{limit}×", measured, "of the floor", _at_most(ratio, limit), floor_value)


def _p99(phase):
    return phase["latency_ms"]["p99"]


def _cpu(phase):
    return phase["cpu"]["ms_per_1000_deliveries"]


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
    result += [
        _ratio_target("SSE (uvicorn), 1,000 clients: p99", phases, "sse", 1000, "p99", _p99, 1.5),
        _ratio_target("SSE (uvicorn), 3,000 clients: p99", phases, "sse", 3000, "p99", _p99, 2.5),
    ]
    for clients in (1000, 3000):
        result.append(
            _ratio_target(
                f"SSE (uvicorn), {clients:,} clients: CPU per 1,000 deliveries",
                phases,
                "sse",
                clients,
                "cpu",
                _cpu,
                4,
            )
        )
    sse_1000 = _phase(phases, "sse", 1000)
    memory = sse_1000["memory"]["per_connection_kb"] if sse_1000 else None
    floor_1000 = _phase(phases, "floor", 1000)
    result.append(
        _target(
            "SSE (uvicorn), 1,000 clients: memory per stream",
            30,
            memory,
            "KB",
            _at_most(memory, 30),
            floor_1000["memory"]["per_connection_kb"] if floor_1000 else None,
        )
    )
    sse_3000, floor_3000 = _phase(phases, "sse", 3000), _phase(phases, "floor", 3000)
    result.append(
        _all_in_target(
            "SSE (uvicorn), 3,000 clients connected",
            sse_3000,
            3000,
            "connected_at_once",
            "connect_s",
            3,
            floor_3000 and floor_3000["connect_s"],
        )
    )
    result.append(
        _all_in_target(
            "SSE (uvicorn), 3,000 clients reconnected",
            sse_3000,
            3000,
            "reconnected",
            "reconnect_s",
            3,
            floor_3000 and floor_3000["reconnect_s"],
        )
    )
    sse_10000, floor_10000 = _phase(phases, "sse", 10000), _phase(phases, "floor", 10000)
    lost_dup = f"{sse_10000['lost']} / {sse_10000['duplicates']}" if sse_10000 else None
    clean = (sse_10000["lost"], sse_10000["duplicates"]) == (0, 0) if sse_10000 else None
    result.append(
        _target("SSE (uvicorn), 10,000 clients: loss / duplicates", "0 / 0", lost_dup, "events", clean)
    )
    result.append(_ratio_target("SSE (uvicorn), 10,000 clients: p99", phases, "sse", 10000, "p99", _p99, 3))
    result.append(
        _all_in_target(
            "SSE (uvicorn), 10,000 clients connected",
            sse_10000,
            10000,
            "connected_at_once",
            "connect_s",
            5,
            floor_10000 and floor_10000["connect_s"],
        )
    )
    for path, server in (("ws", "uvicorn"), ("ws-daphne", "daphne")):
        ws_3000 = _phase(phases, path, 3000)
        result.append(
            _all_in_target(
                f"WebSocket ({server}), 3,000 sockets in the storm",
                ws_3000,
                3000,
                "connected_at_once",
                "connect_s",
                None,
            )
        )
        result.append(
            _all_in_target(
                f"WebSocket ({server}), 3,000 sockets back in the reconnect storm",
                ws_3000,
                3000,
                "reconnected",
                "reconnect_s",
                None,
            )
        )
    ws_3000 = _phase(phases, "ws", 3000)
    ws_cpu = ws_3000["cpu"]["ms_per_1000_deliveries"] if ws_3000 else None
    result.append(
        _target(
            "WebSocket (uvicorn) broadcast, 3,000 sockets: CPU per 1,000 deliveries",
            60,
            ws_cpu,
            "ms",
            _at_most(ws_cpu, 60),
            floor_3000 and _cpu(floor_3000),
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


def _all_in_target(label, phase, clients, done_key, seconds_key, limit, floor=None):
    """An "N clients (re)connect within limit seconds" target; a partial count misses it.
    With no limit, every client getting in (in any time) is the target."""
    if phase is None:
        return _target(label, limit, None, "s", None, floor)
    seconds = phase[seconds_key]
    if phase[done_key] == clients:
        return _target(label, limit, seconds, "s", limit is None or seconds <= limit, floor)
    partial = f"only {phase[done_key]:,} of {clients:,} within {seconds:.0f}"
    return _target(label, limit, partial, "s", False, floor)


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


def save(results, folder, name, started_at):
    """A named bench's results as `folder/<name>-<start time>.json`; returns the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


def viewer_phase_lines(phases, width):
    """One line per phase of a bench of many viewers: who connected, what arrived."""
    for phase in phases:
        cpu = phase["cpu"]["ms_per_1000_deliveries"]
        yield (
            f"{phase['path']:>{width}}: {phase['connected']}/{phase['clients']} viewers, "
            f"{phase['deliveries']:,}/{phase['expected_deliveries']:,} delivered, lost {phase['lost']}, "
            f"duplicates {phase['duplicates']}, p99 {phase['latency_ms']['p99']} ms, "
            f"{cpu} CPU ms per 1000 deliveries, reconnected {phase['reconnected']}"
        )


def write(results, folder, plot=True):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("+0000", "Z").replace("-", "")
    json_path = folder / f"{stamp}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    png_path = None
    if plot:
        from bench.plot import plot_results  # matplotlib loads only for a plot

        png_path = folder / f"{stamp}.png"
        plot_results(results, png_path, LABELS)
    return json_path, png_path


def _fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _connect(seconds, connected, clients):
    # A storm that left clients out says so: "30.1 (589/3,000)".
    return f"{seconds:.2f}" if connected == clients else f"{seconds:.1f} ({connected:,}/{clients:,})"


def summary_rows(results):
    """Rows of the summary table (also what docs/performance.md's tables are made of)."""
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
    lines = ["| target | limit | measured | the floor, same run | met |", "|---|---|---|---|---|"]
    for t in results["targets"]:
        met = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        measured = "–" if t["measured"] is None else f"{t['measured']} {t['unit']}"
        limit = "all" if t["limit"] is None else f"{t['limit']} {t['unit']}"
        floor = "–" if t.get("floor") is None else f"{t['floor']:,}"
        lines.append(f"| {t['target']} | {limit} | {measured} | {floor} | {met} |")
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

"""The run's plot: latency CDFs, memory per connection and CPU per delivery against clients."""

import matplotlib

matplotlib.use("Agg")  # files only: the bench runs on servers without a display

import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {
    "floor": "#7f7f7f",
    "sse": "#1f77b4",
    "sse-daphne": "#17becf",
    "ws": "#d62728",
    "ws-daphne": "#ff9896",
    "pushpin-floor": "#98df8a",
    "pushpin": "#2ca02c",
}
STYLES = ["-", "--", ":", "-."]


def plot_results(results, path, labels):
    """`labels`: each path's name in the legend (bench.report's, which imports this lazily)."""
    phases = results["phases"]
    figure, (cdf, memory, cpu) = plt.subplots(1, 3, figsize=(16, 4.8))
    _latency_cdf(cdf, phases, labels)
    _against_clients(memory, phases, lambda p: p["memory"]["per_connection_kb"], "KB per connection", labels)
    _against_clients(
        cpu, phases, lambda p: p["cpu"]["ms_per_1000_deliveries"], "CPU ms per 1,000 deliveries", labels
    )
    memory.set_title("Server memory per open connection")
    cpu.set_title("Server CPU per delivery")
    s = results["settings"]
    m = results["machine"]
    figure.suptitle(
        f"livedash bench {results['started_at']}: {s['events']} events at {s['rate']:g}/s, "
        f"{s['workers']} workers, {m['cpu_count']} CPUs ({m['cpu_model']})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency_cdf(axis, phases, labels):
    sizes = sorted({p["clients"] for p in phases})
    for phase in phases:
        points = phase["latency_cdf"]
        if not points:
            continue
        style = STYLES[sizes.index(phase["clients"]) % len(STYLES)]
        axis.plot(
            [x for x, _ in points],
            [y for _, y in points],
            style,
            color=COLOURS[phase["path"]],
            label=f"{labels[phase['path']]}, {phase['clients']:,}",
        )
    axis.set_xscale("log")
    axis.set_xlabel("publish → receive latency (ms, log scale)")
    axis.set_ylabel("fraction of deliveries")
    axis.set_title("Latency CDF")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)


def _against_clients(axis, phases, value, label, labels):
    for path in COLOURS:
        points = sorted(
            (p["clients"], value(p)) for p in phases if p["path"] == path and value(p) is not None
        )
        if points:
            axis.plot(
                [x for x, _ in points], [y for _, y in points], "o-", color=COLOURS[path], label=labels[path]
            )
    axis.set_xlabel("connected clients")
    axis.set_ylabel(label)
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)

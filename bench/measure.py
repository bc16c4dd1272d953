"""What the bench reads off the server processes (psutil) and how it summarises samples."""

import math

import psutil
import redis


class ServerProcesses:
    """The OS processes serving one path (two daphne workers, or two floor relays).

    Memory and CPU include any children, so a server that forks helpers is
    charged for them too.
    """

    def __init__(self, pids):
        self.processes = [psutil.Process(pid) for pid in pids]

    def _family(self, process):
        try:
            return [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def snapshot(self):
        """RSS and thread count of each server process (with its children)."""
        result = []
        for process in self.processes:
            rss = threads = 0
            for member in self._family(process):
                try:
                    rss += member.memory_info().rss
                    threads += member.num_threads()
                except psutil.NoSuchProcess:
                    pass
            result.append({"pid": process.pid, "rss": rss, "threads": threads})
        return result

    def cpu_seconds(self):
        total = 0.0
        for process in self.processes:
            for member in self._family(process):
                try:
                    times = member.cpu_times()
                    total += times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        return total


def cpu_seconds_of(pid):
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise_ms(seconds):
    """p50/p95/p99/max in milliseconds of a list of durations in seconds."""
    values = sorted(seconds)
    return {
        "count": len(values),
        "p50": _ms(percentile(values, 0.50)),
        "p95": _ms(percentile(values, 0.95)),
        "p99": _ms(percentile(values, 0.99)),
        "max": _ms(values[-1] if values else None),
    }


def cdf_points(seconds, points=200):
    """A compact CDF for the plot: (latency ms, fraction) at evenly spaced ranks."""
    values = sorted(seconds)
    if not values:
        return []
    step = max(1, len(values) // points)
    ranks = list(range(step - 1, len(values), step))
    if ranks[-1] != len(values) - 1:
        ranks.append(len(values) - 1)
    return [[round(values[r] * 1000, 3), round((r + 1) / len(values), 5)] for r in ranks]


def _ms(value):
    return None if value is None else round(value * 1000, 3)


class RedisCalls:
    """Calls so far per command (INFO commandstats) of the Redis at `url`: {"get": 12, ...}.

    One connection for every reading, so the readings add nothing but their own INFO
    (which `calls_between` leaves out) and no connection handshake of their own."""

    def __init__(self, url):
        self.client = redis.Redis.from_url(url)

    def reading(self):
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in stats.items()}

    def close(self):
        self.client.close()


def calls_between(before, after):
    """The commands run between two readings, less the INFO commands that took them."""
    calls = {name: count - before.get(name, 0) for name, count in after.items() if name != "info"}
    return {name: count for name, count in sorted(calls.items()) if count > 0}

"""Host readings with psutil: the one sampling code of both the agent and livedash's collector.

livedash's collector imports `HostSampler` from here, so a host measured by the
agent and the host the collector runs on report the same metrics, under the same
names, computed the same way.
"""

import time
from dataclasses import dataclass

import psutil

DISK_PATH = "/"


@dataclass(frozen=True)
class NetCounters:
    bytes_recv: int
    bytes_sent: int


def external_network_counters():
    """Bytes through the interfaces that are up, loopback excluded: traffic between
    this host's own processes (Redis, the database) is not network traffic."""
    stats = psutil.net_if_stats()
    per_nic = psutil.net_io_counters(pernic=True)
    received = sent = 0
    for name, counters in per_nic.items():
        nic = stats.get(name)
        if nic is None or not nic.isup or "loopback" in getattr(nic, "flags", "") or name == "lo":
            continue
        received += counters.bytes_recv
        sent += counters.bytes_sent
    return NetCounters(received, sent)


class HostSampler:
    """psutil readings; network counters become rates over the time since the last sample."""

    def __init__(self, clock=time.monotonic, net_counters=external_network_counters):
        self._clock = clock
        self._net_counters = net_counters
        psutil.cpu_percent(interval=None)  # The first call only sets psutil's baseline.
        self._last_net = self._read_net()
        self._last_net_at = clock()

    def sample(self):
        rx_rate, tx_rate = self._network_rates()
        return {
            "cpu": psutil.cpu_percent(interval=None),
            "memory": psutil.virtual_memory().percent,
            "load_1m": round(psutil.getloadavg()[0], 2),
            "net_rx": rx_rate,
            "net_tx": tx_rate,
            "disk": psutil.disk_usage(DISK_PATH).percent,
            "processes": len(psutil.pids()),
        }

    def _read_net(self):
        counters = self._net_counters()
        # Some containers have no interface at all: report no traffic rather than fail.
        return (counters.bytes_recv, counters.bytes_sent) if counters else (0, 0)

    def _network_rates(self):
        now, current = self._clock(), self._read_net()
        elapsed = now - self._last_net_at
        previous = self._last_net
        self._last_net, self._last_net_at = current, now
        if elapsed <= 0:
            return 0.0, 0.0
        # Counters go down when an interface is re-created; that is no negative traffic.
        return tuple(
            round(max(0, cur - prev) / elapsed, 1) for cur, prev in zip(current, previous, strict=True)
        )

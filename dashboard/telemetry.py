"""livedash's own numbers, counted in every process and summed over all of them for /metrics.

Each process (web workers, the collector, a command) counts in memory, and a
background thread adds what it counted to one Redis hash every second (HINCRBY),
so the totals are the sum over every process, on whatever host, and a counter
does not go back when a worker stops. A count that cannot reach Redis is kept and
added on a later try. Gauges (the collector's tick lag) are reported per process
under keys that expire, so a process that is gone drops out. Open connections
come from dashboard.connections, which keeps them the same way.

The exposition is prometheus_client's, through a custom collector that reads
Redis at scrape time (`render`).

Wiping Redis resets the counters to zero; Prometheus treats that as a counter reset.
"""

import atexit
import collections
import functools
import logging
import os
import threading
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from dashboard import connections
from dashboard.redis import get_sync_client, key

logger = logging.getLogger(__name__)

NAMESPACE = "livedash"
# The classic text format, which every Prometheus version reads (our names are plain ASCII).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
FLUSH_EVERY = 1.0
GAUGE_TTL = 30

# name: (help, label names). Label values come from small fixed sets, so the hash stays small.
COUNTERS = {
    "events_published": ("SSE events published, by channel kind (metrics, user).", ("channel",)),
    "events_delivered": ("SSE events written to open streams (one per event per stream).", ()),
    "stream_resets": ("stream-reset events sent: a stream whose missed events were gone.", ()),
    "stream_drops": ("Times a stream fell too far behind and its buffer was dropped.", ()),
    "catchup_reads": ("Reads of stored events to resume or repair a stream.", ()),
    "ingest_points": ("Metric points accepted (publish_metric and the HTTP API).", ()),
    "ingest_refusals": ("Metric points or requests refused, by reason.", ("reason",)),
    "series_refusals": (
        "Metric points refused because they would start a series past a limit "
        "(MAX_SERIES, MAX_SERIES_PER_METRIC).",
        ("limit",),
    ),
    "notification_deliveries": (
        "Notification deliveries, by channel (socket, email, webhook) and outcome.",
        ("channel", "outcome"),
    ),
}
GAUGES = {
    "collector_tick_lag_seconds": "How late the collector's last tick was published against its schedule.",
    "alert_evaluation_cpu_seconds": (
        "CPU time of the collector's last alert evaluation, reading the published values included."
    ),
}

_pending = collections.Counter()
_gauges = {}
_lock = threading.Lock()
_flusher_pid = None
_down = False


def count(name, amount=1, **labels):
    """Add `amount` to counter `name` (one of COUNTERS) with these label values."""
    label_names = COUNTERS[name][1]
    field = "|".join([name, *(str(labels[label]) for label in label_names)])
    with _lock:
        _pending[field] += amount
    _ensure_flusher()


class HotCounter:
    """A counter for an event loop's hot path (one delivery per stream per event): a
    plain integer add, no lock, no label formatting. Only the loop adds to `value`, and
    only the flusher thread moves `reported`, so nothing is lost between them."""

    __slots__ = ("name", "value", "reported")

    def __init__(self, name):
        if COUNTERS[name][1]:
            raise ValueError(f"{name} has labels; a hot counter has none")
        self.name, self.value, self.reported = name, 0, 0


_hot_counters = []


def hot_counter(name):
    """A HotCounter for counter `name` (one of COUNTERS, without labels); call
    `ensure_reporting()` from the process that adds to it."""
    counter = HotCounter(name)
    _hot_counters.append(counter)
    return counter


def ensure_reporting():
    _ensure_flusher()


def set_gauge(name, value):
    with _lock:
        _gauges[name] = float(value)
    _ensure_flusher()


# The call points other parts use.


def count_published(channel, amount=1):
    count("events_published", amount, channel="metrics" if channel == "metrics" else "user")


def count_ingest(points=1):
    """Points accepted for publishing: call once per accepted point or batch."""
    count("ingest_points", points)


def count_ingest_refused(reason, amount=1):
    """A refusal: reason is a short fixed word (invalid, forbidden, too_large, rate_limited, ...)."""
    count("ingest_refusals", amount, reason=reason)


def count_series_refused(limit, points):
    """`points` refused by the cardinality limit `limit` (MAX_SERIES or MAX_SERIES_PER_METRIC)."""
    count("series_refusals", points, limit=limit)


def counted_ingest(publish):
    """Decorates publish_metric, publish_metrics and publish_validated: the points they accept (one, or the
    batch they return) and each call refused with ValueError are counted."""

    @functools.wraps(publish)
    def wrapper(*args, **kwargs):
        try:
            result = publish(*args, **kwargs)
        except ValueError as exc:
            # A refusal names its reason (too_many_series); any other ValueError is bad input.
            count_ingest_refused(getattr(exc, "refusal_reason", "invalid"))
            raise
        count_ingest(len(result) if isinstance(result, list) else 1)
        return result

    return wrapper


def count_delivery(outcome, channel="socket"):
    """One notification delivery attempt: outcome is sent, failed, retrying or given_up, say."""
    count("notification_deliveries", channel=channel, outcome=outcome)


# Getting the counts to Redis.


def counters_key():
    return key("telemetry", "counters")


def _gauge_key(name):
    return key("telemetry", "gauge", name)


def read_gauge(name):
    """{process: (unix time reported, value)} of gauge `name` as each process last reported it."""
    readings = {}
    for process, raw in get_sync_client().hgetall(_gauge_key(name)).items():
        at, value = map(float, raw.split())
        readings[process.decode() if isinstance(process, bytes) else process] = (at, value)
    return readings


def _ensure_flusher():
    global _flusher_pid
    if _flusher_pid == os.getpid():
        return
    with _lock:
        if _flusher_pid == os.getpid():
            return
        _flusher_pid = os.getpid()
    threading.Thread(target=_flush_forever, name="telemetry", daemon=True).start()


def _flush_forever():
    stop = threading.Event()
    while not stop.wait(FLUSH_EVERY):
        flush()


def flush():
    """Add what this process counted since the last flush to Redis; kept for later if it fails."""
    global _down
    with _lock:
        for counter in _hot_counters:
            value = counter.value
            if value != counter.reported:
                _pending[counter.name] += value - counter.reported
                counter.reported = value
        pending = dict(_pending)
        _pending.clear()
        gauges = dict(_gauges)
    if not pending and not gauges:
        return
    try:
        with get_sync_client().pipeline(transaction=False) as pipe:
            for field, amount in pending.items():
                pipe.hincrby(counters_key(), field, amount)
            for name, value in gauges.items():
                # One hash per gauge, a field per process: "<unix time> <value>".
                pipe.hset(_gauge_key(name), connections.WORKER_ID, f"{time.time()} {value}")
                pipe.expire(_gauge_key(name), GAUGE_TTL)
            pipe.execute()
    except Exception as exc:
        with _lock:
            _pending.update(pending)
        if not _down:
            logger.warning("cannot report counts to Redis, keeping them for later: %s", exc)
        _down = True
        return
    if _down:
        logger.info("counts reach Redis again")
    _down = False


atexit.register(flush)


# The exposition.


class RedisTotals:
    """prometheus_client collector: the totals in Redis, read at each scrape."""

    def collect(self):
        client = get_sync_client()
        families = {
            name: CounterMetricFamily(f"{NAMESPACE}_{name}", help_text, labels=labels)
            for name, (help_text, labels) in COUNTERS.items()
        }
        for raw_field, raw_value in client.hgetall(counters_key()).items():
            name, *values = raw_field.decode().split("|")
            family = families.get(name)
            if family is not None and len(values) == len(COUNTERS[name][1]):
                family.add_metric(values, int(raw_value))
        for name, (_, labels) in COUNTERS.items():
            if not labels and not families[name].samples:
                families[name].add_metric([], 0)
        yield from families.values()

        open_now = GaugeMetricFamily(
            f"{NAMESPACE}_open_connections",
            "Open connections summed over every worker, by transport (sse, ws).",
            labels=["transport"],
        )
        for transport, total in connections.totals().items():
            open_now.add_metric([transport], total)
        yield open_now

        from dashboard import seriesindex

        live = GaugeMetricFamily(
            f"{NAMESPACE}_live_series", "Series pushed within the retention (the count MAX_SERIES limits)."
        )
        live.add_metric([], seriesindex.live_count())
        yield live

        for name, help_text in GAUGES.items():
            values = []
            for worker, raw in client.hgetall(_gauge_key(name)).items():
                at, value = map(float, raw.split())
                if at > time.time() - GAUGE_TTL:
                    values.append(value)
                else:  # a process that stopped reporting
                    client.hdel(_gauge_key(name), worker)
            if values:
                gauge = GaugeMetricFamily(f"{NAMESPACE}_{name}", help_text)
                gauge.add_metric([], max(values))
                yield gauge


_registry = CollectorRegistry(auto_describe=False)
_registry.register(RedisTotals())


def render():
    """The Prometheus text exposition (bytes); raises a Redis error when Redis is away."""
    return generate_latest(_registry)

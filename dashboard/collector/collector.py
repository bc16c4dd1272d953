"""The collector: samples host and app metrics and publishes one `frame` per tick.

`python manage.py collect_metrics` runs `Collector.run()` until SIGTERM/SIGINT.
Each tick reads the sampling state (interval, paused) from Redis, samples the
host with psutil and the app through Redis, asks the alert evaluator which
metrics are firing, and publishes `{"seq", "ts", "host", "values", "firing"}` on
the `metrics` SSE channel through `dashboard.live.publish_frame`: its values are
the series `name{host="..."}` of this collector's host (COLLECTOR_HOST).

Redis is the only way out of this process, so an outage must not stop it: the
collector keeps sampling (alerts keep their timing), skips publishing, retries
with backoff, and logs one line when Redis goes away and one when it is back.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass

import psutil
import redis
from django.conf import settings
from django.db import close_old_connections
from django.utils.translation import gettext_noop

# The host agent's own sampling code, so a host measured by the agent and the
# collector's host report the same metrics computed the same way.
from livedash_agent.sampling import HostSampler, external_network_counters  # noqa: F401

from dashboard import connections, frames, live, telemetry
from dashboard.collector import sampling
from dashboard.models import Metric
from dashboard.redis import get_sync_client, key

logger = logging.getLogger(__name__)

# While waiting for the next tick, look at the sampling state this often, so a
# shorter interval chosen during a long one (60 s -> 1 s) applies without waiting it out.
STATE_POLL_SECONDS = 1.0
REDIS_ERRORS = (redis.RedisError, OSError)


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    unit: str
    source: str
    order: int
    warning: float | None = None
    critical: float | None = None

    def defaults(self):
        return {
            "label": self.label,
            "unit": self.unit,
            "source": self.source,
            "display_order": self.order,
            "warning_threshold": self.warning,
            "critical_threshold": self.critical,
        }


def builtin_metrics():
    """The metrics every frame carries, with the labels and thresholds a new install starts with.
    Their order stays below 100, the default of custom metrics, so custom charts come after.
    Labels are stored in English and translated when shown (history's metric_definitions)."""
    cpus = psutil.cpu_count() or 1
    system, app = Metric.Source.SYSTEM, Metric.Source.APP
    return (
        MetricSpec("cpu", gettext_noop("CPU"), "%", system, 10, warning=80, critical=95),
        MetricSpec("memory", gettext_noop("Memory used"), "%", system, 20, warning=80, critical=95),
        # A load above the number of CPUs means work is queueing.
        MetricSpec(
            "load_1m", gettext_noop("Load average (1 min)"), "", system, 30, warning=cpus, critical=cpus * 2
        ),
        MetricSpec("net_rx", gettext_noop("Network receive"), "B/s", system, 40),
        MetricSpec("net_tx", gettext_noop("Network send"), "B/s", system, 50),
        MetricSpec("disk", gettext_noop("Disk used"), "%", system, 60, warning=85, critical=95),
        MetricSpec("processes", gettext_noop("Processes"), "", system, 70),
        MetricSpec("sse_connections", gettext_noop("Open SSE connections"), "", app, 80),
        MetricSpec("ws_connections", gettext_noop("Open WebSocket connections"), "", app, 85),
        MetricSpec("events_per_second", gettext_noop("Events published"), "/s", app, 90),
    )


def _host_key():
    return key("collector:host")


def announce_host(name=None):
    """Say which machine the host metrics come from: the page shows it in its header."""
    get_sync_client().set(_host_key(), name or settings.COLLECTOR_HOST)


def collector_host():
    """The collector's host name, or None when no collector said it (or Redis is away)."""
    try:
        name = get_sync_client().get(_host_key())
    except REDIS_ERRORS:
        return None
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def register_builtin_metrics():
    """Create the rows this collector fills. Existing rows are left alone, so an
    admin's labels, thresholds, order and enabled flag survive every restart."""
    created = []
    for spec in builtin_metrics():
        _, was_created = Metric.objects.get_or_create(key=spec.key, defaults=spec.defaults())
        if was_created:
            created.append(spec.key)
    return created


def sample_app_metrics():
    """Connection counts over every live worker and the publish rate, all read from Redis."""
    counts = connections.totals()
    return {
        "sse_connections": counts["sse"],
        "ws_connections": counts["ws"],
        "events_per_second": live.events_published_last_second(),
    }


# The next seq is one above both what Redis remembers (another run of the
# collector) and what this process last used (Redis restarted empty), so it
# never goes backwards across a collector restart or a Redis restart.
NEXT_SEQ_SCRIPT = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local nextseq = math.max(stored, tonumber(ARGV[1])) + 1
redis.call('SET', KEYS[1], nextseq)
return nextseq
"""


class SeqCounter:
    def __init__(self):
        self.last = 0
        self._script = None

    def next(self):
        if self._script is None:
            self._script = get_sync_client().register_script(NEXT_SEQ_SCRIPT)
        self.last = int(self._script(keys=[key("collector", "seq")], args=[self.last]))
        return self.last


class RedisOutage:
    """Whether Redis answers, so an outage logs one line (not one per tick) and retries back off."""

    def __init__(self, clock=time.monotonic, first_retry=0.5, max_retry=5.0):
        self._clock = clock
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.down_since = None
        self._retry_after = first_retry
        self._next_try_at = 0.0

    @property
    def is_down(self):
        return self.down_since is not None

    def may_try(self):
        return not self.is_down or self._clock() >= self._next_try_at

    def failed(self, exc):
        now = self._clock()
        if not self.is_down:
            self.down_since = now
            self._retry_after = self.first_retry
            logger.warning("Redis is unavailable (%s); sampling goes on, frames wait until it is back", exc)
        else:
            self._retry_after = min(self._retry_after * 2, self.max_retry)
        self._next_try_at = now + self._retry_after

    def succeeded(self):
        if self.is_down:
            logger.info(
                "Redis is back after %.1f s; publishing frames again", self._clock() - self.down_since
            )
        self.down_since = None


# Retrying notification pushes every tick would be a query per tick for nothing.
OUTBOX_EVERY = 5.0


class Collector:
    def __init__(
        self,
        *,
        sampler=None,
        evaluator=None,
        outbox=None,
        chores=(),
        publish=None,
        app_metrics=sample_app_metrics,
        clock=time.monotonic,
        wallclock=time.time,
        host=None,
    ):
        self.sampler = sampler or HostSampler(clock=clock)
        self.evaluator = evaluator
        # Notifications whose live push failed (Redis away) go out again from here.
        self.outbox = outbox
        self._outbox_due = 0.0
        # Housekeeping (seconds between runs, function): e.g. pruning the audit log.
        self.chores = [[0.0, every, function] for every, function in chores]
        self.publish = publish or live.publish_frame
        # The `host` label of every value this collector publishes.
        self.host = host or settings.COLLECTOR_HOST
        self.app_metrics = app_metrics
        self.clock = clock
        self.wallclock = wallclock
        self.seq = SeqCounter()
        self.redis = RedisOutage(clock=clock)
        self.state = sampling.SamplingState()
        self._stopping = threading.Event()

    def stop(self):
        """Safe from a signal handler: the current tick finishes, then run() returns."""
        self._stopping.set()

    @property
    def stopping(self):
        return self._stopping.is_set()

    def run(self, max_ticks=None):
        """Tick until stop(); ticks are scheduled on the monotonic clock, so they don't drift."""
        ticks = 0
        next_at = self.clock()
        self._with_redis(announce_host)
        while not self.stopping:
            started = self.clock()
            self.tick()
            telemetry.set_gauge("collector_tick_lag_seconds", max(0.0, self.clock() - next_at))
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            next_at += self.state.interval
            if next_at < self.clock():
                # A stall (a suspended laptop, a slow Redis timeout): skip the missed
                # ticks instead of publishing a burst of them.
                next_at = self.clock()
            next_at = self._wait_until(next_at, started)
        return ticks

    def tick(self):
        """One sample; returns the frame published, or None when paused or Redis is away."""
        self._refresh_state()
        ts = self.wallclock()
        # Sampled even when paused, so rates and CPU after a resume cover one interval, not the pause.
        values = self.sampler.sample()
        self._flush_outbox()
        self._run_chores()
        if self.state.paused:
            return None
        values.update(self._with_redis(self.app_metrics) or {})
        firing = self._evaluate(values, ts)
        return self._with_redis(self._publish, values, firing, ts)

    def _publish(self, values, firing, ts):
        frame = frames.frame(self.seq.next(), round(ts, 3), values, sorted(firing), self.host)
        self.publish(frame["seq"], frame["ts"], frame["values"], firing=frame["firing"], host=self.host)
        return frame

    def _refresh_state(self):
        # During an outage the last known state holds.
        self.state = self._with_redis(sampling.get_state) or self.state

    def _with_redis(self, function, *args):
        if not self.redis.may_try():
            return None
        try:
            result = function(*args)
        except REDIS_ERRORS as exc:
            self.redis.failed(exc)
            return None
        self.redis.succeeded()
        return result

    def _flush_outbox(self):
        if self.outbox is None or self.clock() < self._outbox_due:
            return
        self._outbox_due = self.clock() + OUTBOX_EVERY
        try:
            self.outbox()
        except Exception as exc:  # the database away: the next round tries again
            logger.warning("could not retry notification pushes: %s", exc)
        close_old_connections()

    def _run_chores(self):
        for chore in self.chores:
            due, every, function = chore
            if self.clock() < due:
                continue
            chore[0] = self.clock() + every
            try:
                function()
            except Exception as exc:  # the database away: the next round tries again
                logger.warning("housekeeping %s failed: %s", getattr(function, "__name__", function), exc)
            close_old_connections()

    def _evaluate(self, values, ts):
        if self.evaluator is None:
            return set()
        finite = {name: value for name, value in values.items() if math.isfinite(value)}
        # This thread's CPU only: the delivery sender beside it is not the evaluation's cost.
        started = time.thread_time()
        firing = set(self.evaluator.evaluate(finite, ts))
        telemetry.set_gauge("alert_evaluation_cpu_seconds", time.thread_time() - started)
        # The evaluator reads the database; a long-running process must not keep
        # a connection the server has dropped (a PostgreSQL restart, say).
        close_old_connections()
        return firing

    def _wait_until(self, next_at, tick_started):
        """Sleep until next_at (or stop()); returns when the next tick is due, which a
        shorter interval set meanwhile brings forward."""
        while not self.stopping:
            remaining = next_at - self.clock()
            if remaining <= 0 or self._stopping.wait(min(remaining, STATE_POLL_SECONDS)):
                break
            if next_at - self.clock() > 0:
                self._refresh_state()
                next_at = min(next_at, tick_started + self.state.interval)
        return next_at

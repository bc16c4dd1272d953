"""In-memory aggregation, pushed in batches from one background thread.

The request path (or a task) only updates counters and summaries under a lock:
no I/O, no allocation beyond the first time a series is seen. Every `interval`
seconds the background thread turns them into line protocol:

- a counter becomes `<name>`: events per second over the interval (so a chart
  reads the same whatever the interval), and 0 for one interval after its last
  event, so a rate falls to 0 instead of staying at its last value;
- a summary becomes `<name>_p50`, `<name>_p95` and `<name>_max` over the interval
  (percentiles of a bounded random sample of the values, the maximum exact).

Bounded everywhere, so an application is never hurt by livedash being away:
at most `max_series` series an interval (others are counted and dropped with a
warning), and at most `max_pending` batches waiting to be sent (the oldest is
dropped first, with a counted warning). Sending never happens on the caller's
thread.
"""

import logging
import math
import os
import random
import threading
import time
import weakref
from collections import deque

from livedash_agent.lineprotocol import encode_line
from livedash_agent.sender import Backoff, Result, Sender

logger = logging.getLogger("livedash_client")

DEFAULT_INTERVAL = 5.0
# Values kept per summary and interval for the percentiles (the count and maximum are exact).
RESERVOIR_SIZE = 512
MAX_SERIES = 2000
# 10 minutes of 5 s batches wait for livedash to come back; older ones are dropped.
MAX_PENDING = 120
SEND_TIMEOUT = 5.0
# Warnings about dropped data at most this often, each with the count since the last one.
WARN_EVERY = 60.0


class Summary:
    __slots__ = ("count", "maximum", "sample")

    def __init__(self):
        self.count = 0
        self.maximum = -math.inf
        self.sample = []

    def add(self, value, rng=random.random):
        self.count += 1
        if value > self.maximum:
            self.maximum = value
        if len(self.sample) < RESERVOIR_SIZE:
            self.sample.append(value)
        else:
            # Reservoir sampling: every value of the interval has the same chance to be kept.
            slot = int(rng() * self.count)
            if slot < RESERVOIR_SIZE:
                self.sample[slot] = value

    def percentile(self, fraction):
        ordered = sorted(self.sample)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class RateLimitedWarning:
    def __init__(self, message, clock=time.monotonic):
        self.message = message
        self.clock = clock
        self.total = 0
        self._unwarned = 0
        self._last = None

    def add(self, count=1):
        self.total += count
        self._unwarned += count
        now = self.clock()
        if self._last is None or now - self._last >= WARN_EVERY:
            logger.warning(self.message, self._unwarned)
            self._last, self._unwarned = now, 0


class Recorder:
    def __init__(
        self,
        url,
        token,
        app,
        *,
        interval=DEFAULT_INTERVAL,
        max_series=MAX_SERIES,
        max_pending=MAX_PENDING,
        sender=None,
        clock=time.monotonic,
        wallclock_ns=time.time_ns,
    ):
        self.app = app
        self.interval = interval
        self.max_series = max_series
        self.sender = sender or Sender(url, token, user_agent="livedash-client", timeout=SEND_TIMEOUT)
        self.clock = clock
        self.wallclock_ns = wallclock_ns
        self.pending = deque()
        self.max_pending = max_pending
        self.dropped_series = RateLimitedWarning(
            f"over {max_series} series in an interval: %d value(s) dropped"
        )
        self.dropped_batches = RateLimitedWarning(
            "livedash unreachable for long: dropped the oldest %d batch(es)"
        )
        self._backoff = Backoff(first=1.0, cap=60.0)
        self._retry_at = 0.0
        self._reset_after_fork()
        # A forked worker (gunicorn, Celery's prefork pool) starts with no thread, no data and no
        # lock state of its parent: it records its own and starts its own thread when it does.
        myself = weakref.ref(self)

        def reset_in_child():
            recorder = myself()
            if recorder is not None:
                recorder._reset_after_fork()

        os.register_at_fork(after_in_child=reset_in_child)

    def _reset_after_fork(self):
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread = None
        self._counters = {}
        self._summaries = {}
        self._last_counter_keys = set()
        self._interval_started = self.clock()
        self.pending.clear()

    # The caller's side: cheap, never blocks on I/O.

    def count(self, name, labels, amount=1):
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            if key in self._counters:
                self._counters[key] += amount
            elif self._has_room():
                self._counters[key] = amount
            else:
                self.dropped_series.add()
        self._ensure_thread()

    def observe(self, name, labels, value):
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            summary = self._summaries.get(key)
            if summary is None:
                if not self._has_room():
                    self.dropped_series.add()
                    return
                summary = self._summaries[key] = Summary()
            summary.add(value)
        self._ensure_thread()

    def _has_room(self):
        return len(self._counters) + len(self._summaries) < self.max_series

    def _ensure_thread(self):
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="livedash-client", daemon=True)
                self._thread.start()

    # The background thread's side.

    def collect(self):
        """The interval's line protocol, and a fresh interval begun."""
        with self._lock:
            counters, self._counters = self._counters, {}
            summaries, self._summaries = self._summaries, {}
            now = self.clock()
            elapsed, self._interval_started = max(now - self._interval_started, 1e-6), now
            quiet = self._last_counter_keys - counters.keys()
            self._last_counter_keys = set(counters)
        ts = self.wallclock_ns()
        base = {"app": self.app}
        lines = []
        for (name, labels), amount in counters.items():
            lines.append(encode_line(name, amount / elapsed, ts, {**base, **dict(labels)}))
        for name, labels in quiet:
            lines.append(encode_line(name, 0.0, ts, {**base, **dict(labels)}))
        for (name, labels), summary in summaries.items():
            tags = {**base, **dict(labels)}
            lines.append(encode_line(f"{name}_p50", summary.percentile(0.5), ts, tags))
            lines.append(encode_line(f"{name}_p95", summary.percentile(0.95), ts, tags))
            lines.append(encode_line(f"{name}_max", summary.maximum, ts, tags))
        return lines

    def flush(self):
        """Collect the interval and send what is pending (the background thread does this)."""
        lines = self.collect()
        if lines:
            if len(self.pending) >= self.max_pending:
                self.pending.popleft()
                self.dropped_batches.add()
            self.pending.append(lines)
        self._send_pending()

    def _send_pending(self):
        while self.pending and self.clock() >= self._retry_at and not self._stopping.is_set():
            outcome = self.sender.push(self.pending[0])
            if outcome.result is Result.RETRY:
                delay = self._backoff.next_delay(outcome.retry_after)
                if self._backoff.failures == 1:
                    logger.warning("%s; batches wait in memory", outcome.detail)
                self._retry_at = self.clock() + delay
                return
            self.pending.popleft()
            self._backoff.reset()
            if outcome.result is Result.REFUSED:
                logger.error("livedash refused a batch, dropped: %s", outcome.detail)

    def _run(self):
        next_at = self.clock() + self.interval
        while not self._stopping.wait(max(0.0, next_at - self.clock())):
            next_at += self.interval
            try:
                self.flush()
            except Exception:  # nothing here may ever reach the application
                logger.exception("could not push a batch")

    def stop(self):
        """For tests and orderly shutdowns: the background thread ends after its current push."""
        self._stopping.set()


_recorders = {}
_recorders_lock = threading.Lock()


def get_recorder(url, token, app, interval=DEFAULT_INTERVAL):
    """One recorder (one background thread) per destination in a process, shared by the
    middleware and the Celery hooks."""
    key = (url, token, app, interval)
    with _recorders_lock:
        recorder = _recorders.get(key)
        if recorder is None:
            recorder = _recorders[key] = Recorder(url, token, app, interval=interval)
        return recorder

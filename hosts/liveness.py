"""Whether each host is up: learned in the collector, kept in Redis for the hosts page.

A host is every value of the label `host` (an agent's samples, the collector's own
frames, anything else pushed with it). Each of its series teaches the tracker how
often it comes: the median gap between its points' own timestamps, so a batch an
agent sends late, after an outage, still says its real spacing. A host is up while
at least one of its series whose spacing is known has been heard from within
DOWN_INTERVALS of its spacing; a host none of whose series came twice has no
spacing yet and is never called down (a one-off value labelled with a host is not a
host going quiet).

When a point was heard is the collector's clock, not the host's: its own timestamp
clamped between the previous tick and this one, so a host whose clock runs late is
not called down, and the tick's length is allowed on top of the intervals (a
collector ticking slower than a host pushes cannot tell sooner).

The alert evaluator feeds the tracker every tick and turns each judged host into a
`host_up{host="..."}` value (1 up, 0 down) that the built-in "Host down" rule
watches (hosts/rules.py). What the tracker knows of each host is written to Redis
(`hosts:seen`), so the page shows the same spacing and deadline, and a restarted
collector still notices a host that stopped while it was away.

Revoking a host on the page forgets it (`hosts:forgotten`): the tracker drops it
unless it was heard after that, and its alert, if firing, resolves as "no data".
"""

import json
import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass, field

from dashboard.redis import get_sync_client, key
from dashboard.storage import retention_seconds

logger = logging.getLogger(__name__)

HOST_LABEL = "host"
UP_METRIC = "host_up"
# A host is down once none of its series has come for this many of its intervals.
DOWN_INTERVALS = 3
# Gaps remembered per series; the median of them is its interval.
GAPS_KEPT = 8
# Gaps needed before a series' interval counts.
GAPS_NEEDED = 2
# Two points closer than this are one sample (an agent's lines share a timestamp).
SAME_SAMPLE_SECONDS = 0.05
# A value arriving within this long after a host was revoked is still the old agent's.
FORGET_GRACE_SECONDS = 5.0


def seen_key():
    return key("hosts", "seen")


def forgotten_key():
    return key("hosts", "forgotten")


def up_series_id(host):
    from dashboard import series

    return series.format_id(UP_METRIC, {HOST_LABEL: host})


@dataclass
class SeriesPace:
    last_ts: float
    heard: float
    gaps: deque = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))

    @property
    def interval(self):
        if len(self.gaps) < GAPS_NEEDED:
            return None
        return statistics.median(self.gaps)


@dataclass
class HostState:
    series: dict = field(default_factory=dict)
    # From Redis after a restart: (heard, interval) until its series are learned again.
    restored: tuple | None = None
    changed: bool = True

    @property
    def heard(self):
        times = [pace.heard for pace in self.series.values()]
        if self.restored:
            times.append(self.restored[0])
        return max(times) if times else None

    def paces(self):
        """(heard, interval) of each series whose interval is known."""
        found = [(pace.heard, pace.interval) for pace in self.series.values() if pace.interval]
        if self.restored and self.restored[1]:
            found.append(self.restored)
        return found

    def deadline(self):
        """(when it is down unless heard again, the interval that says so), or (None, None)."""
        best = (None, None)
        for heard, interval in self.paces():
            due = heard + DOWN_INTERVALS * interval
            if best[0] is None or due > best[0]:
                best = (due, interval)
        return best

    def as_json(self):
        deadline, interval = self.deadline()
        return json.dumps({"heard": self.heard, "interval": interval, "deadline": deadline})


class HostTracker:
    def __init__(self, client=None):
        self._client = client
        self.hosts = {}
        self._last_tick = None
        self._loaded = False
        self._failing = False
        self._blinded = False
        # The last judgement: {host: up?}.
        self.up = {}

    @property
    def client(self):
        return self._client or get_sync_client()

    def observe(self, points, now):
        """Learn from (series id, name, labels, ts, value) points that arrived since the last tick."""
        since = self._last_tick if self._last_tick is not None and self._last_tick <= now else now
        for series_id, name, labels, ts, _value in points:
            host = labels.get(HOST_LABEL) if isinstance(labels, dict) else None
            if not host or name == UP_METRIC:
                continue
            state = self.hosts.get(host)
            if state is None:
                state = self.hosts[host] = HostState()
            heard = min(max(float(ts), since), now)
            pace = state.series.get(series_id)
            if pace is None:
                state.series[series_id] = SeriesPace(last_ts=float(ts), heard=heard)
            else:
                gap = float(ts) - pace.last_ts
                if gap > SAME_SAMPLE_SECONDS:
                    pace.gaps.append(gap)
                if ts > pace.last_ts:
                    pace.last_ts = float(ts)
                pace.heard = max(pace.heard, heard)
            state.changed = True

    def blind(self, now):
        """This tick could not read what was published (Redis away): silence means
        nothing, so nobody is judged, and hosts up before get a fresh start once the
        values flow again (their agents were refused meanwhile, and catch up)."""
        self._last_tick = now
        self._blinded = True

    def _excuse(self, now):
        for host, state in self.hosts.items():
            if not self.up.get(host):
                continue  # down before: still down until heard from
            for pace in state.series.values():
                pace.heard = max(pace.heard, now)
            if state.restored:
                state.restored = (max(state.restored[0], now), state.restored[1])
            state.changed = True

    def judge(self, now):
        """({host: up?} of every host with a known interval, [hosts forgotten or expired]).
        Saves what changed to Redis; a Redis error is logged and the judgement stands."""
        tick = 0.0 if self._last_tick is None else max(0.0, now - self._last_tick)
        self._last_tick = now
        if self._blinded:
            self._blinded = False
            self._excuse(now)
        gone = []
        try:
            self._load_once()
            gone = self._forget(now)
        except Exception as exc:
            self._redis_failed("read", exc)
        judged = {}
        for host, state in self.hosts.items():
            paces = state.paces()
            if not paces:
                continue
            judged[host] = any(now - heard <= DOWN_INTERVALS * interval + tick for heard, interval in paces)
        self.up = judged
        try:
            self._save(gone)
        except Exception as exc:
            self._redis_failed("save", exc)
        else:
            if self._failing:
                logger.info("the hosts' state is saved to Redis again")
            self._failing = False
        return judged, gone

    def _redis_failed(self, what, exc):
        # One line an outage, not one a tick; judging goes on from memory meanwhile.
        if not self._failing:
            logger.warning("could not %s the hosts' state in Redis (%s); judging from memory", what, exc)
        self._failing = True

    def _load_once(self):
        if self._loaded:
            return
        stored = self.client.hgetall(seen_key())
        self._loaded = True
        for raw_host, raw in stored.items():
            host = raw_host.decode() if isinstance(raw_host, bytes) else raw_host
            try:
                stored = json.loads(raw)
                heard, interval = float(stored["heard"]), stored.get("interval")
            except (ValueError, TypeError, KeyError):
                continue
            self.hosts.setdefault(host, HostState(restored=(heard, interval), changed=False))

    def _forget(self, now):
        gone = []
        forgotten = dict(self.client.zrange(forgotten_key(), 0, -1, withscores=True))
        expired_before = now - retention_seconds()
        for host, state in list(self.hosts.items()):
            at = forgotten.get(host.encode()) or forgotten.get(host)
            heard = state.heard or 0.0
            if (at is not None and heard <= at + FORGET_GRACE_SECONDS) or heard < expired_before:
                del self.hosts[host]
                gone.append(host)
        return gone

    def _save(self, gone):
        changed = {host: state.as_json() for host, state in self.hosts.items() if state.changed}
        if not changed and not gone:
            return
        with self.client.pipeline(transaction=False) as pipe:
            if changed:
                pipe.hset(seen_key(), mapping=changed)
            if gone:
                pipe.hdel(seen_key(), *gone)
            pipe.execute()
        for host in changed:
            self.hosts[host].changed = False


def forget(host, now=None):
    """The hosts page revoked `host`: the collector drops it (its alert resolves) and
    the page stops listing it, unless it is heard from again."""
    now = time.time() if now is None else now
    client = get_sync_client()
    with client.pipeline(transaction=True) as pipe:
        pipe.zadd(forgotten_key(), {host: now})
        pipe.hdel(seen_key(), host)
        # Past the retention its series are gone from the index anyway.
        pipe.zremrangebyscore(forgotten_key(), "-inf", now - retention_seconds())
        pipe.execute()


def forgotten():
    """{host: when it was revoked}."""
    return {
        (name.decode() if isinstance(name, bytes) else name): score
        for name, score in get_sync_client().zrange(forgotten_key(), 0, -1, withscores=True)
    }


def seen():
    """{host: {"heard", "interval", "deadline"}} as the collector last wrote it."""
    answer = {}
    for raw_host, raw in get_sync_client().hgetall(seen_key()).items():
        try:
            answer[raw_host.decode() if isinstance(raw_host, bytes) else raw_host] = json.loads(raw)
        except ValueError:
            continue
    return answer

"""The live series index, in Redis: which series exist now, their labels, their last value.

A series is live while it is pushed: it stays in the index for the event store's
retention (`METRICS_RETENTION_HOURS`) after its last point, then expires. The index
answers `/api/v1/series` and `/api/v1/labels/NAME/values`, and it is where the
cardinality limits (`MAX_SERIES`, `MAX_SERIES_PER_METRIC`) are kept.

Layout (under the installation's prefix; a fixed number of keys plus one per metric
name, never one per request or per point):

- `series:live`: sorted set, each series' storage key scored by when it was last pushed;
- `series:metric:<name>`: the same, for the series of one metric name (the per-name count);
- `series:names`: sorted set of the metric names, scored the same way;
- `series:meta`: hash, storage key -> `[id, name, labels]` (JSON), written once per series;
- `series:last`: hash, storage key -> `[ts, value]` (JSON), the newest point by `ts`;
- `series:built`: present once the index holds everything storage knows (see `rebuild`);
- `series:version`: a counter moved on whenever a series joins or leaves the live set,
  so a process can keep its own copy of the set and know, with one GET, that it is
  still the set (see `_live`).

Publishing calls `admit` once per batch: one Lua script checks both limits, records
the batch's series and last values, and drops a bounded number of expired series, all
atomically, so two processes cannot together pass a limit: the limits are exact.

After Redis loses the index (a wipe, a restart without persistence) `series:built` is
gone; the first publish or read then runs `rebuild`, which refills it from the rollups
in the database (every series with a bucket within the retention) and the events the
store still holds (their last values), while other processes wait for it.
"""

import json
import logging
import math
import secrets
import time
import weakref

from django.conf import settings

from dashboard import frames, series
from dashboard.redis import get_sync_client, key
from dashboard.storage import retention_seconds

logger = logging.getLogger(__name__)

# Expired series dropped per admission at most: the work a publish does for hygiene
# stays bounded; counts never rely on it (they only count series seen within the retention).
EXPIRE_PER_CALL = 200
# Series answered by `find` at most; past it the answer says `truncated`.
ANSWER_LIMIT = 10_000
# HMGET batch size when reading the index.
READ_BATCH = 1000
# Newest events read back from the store when rebuilding, for last values.
REBUILD_EVENTS = 20_000
# How long a process waits for another's rebuild before it rebuilds itself.
REBUILD_WAIT_SECONDS = 30.0
REBUILD_LOCK_SECONDS = 60


class TooManySeries(ValueError):
    """A point would start a series past `MAX_SERIES` or `MAX_SERIES_PER_METRIC`."""

    refusal_reason = "too_many_series"

    def __init__(self, message, limit, points):
        super().__init__(message)
        # Which limit (MAX_SERIES or MAX_SERIES_PER_METRIC), and how many points were refused.
        self.limit, self.points = limit, points


def live_key():
    return key("series", "live")


def metric_key(name):
    return key("series", "metric", name)


def names_key():
    return key("series", "names")


def meta_key():
    return key("series", "meta")


def last_key():
    return key("series", "last")


def built_key():
    return key("series", "built")


def version_key():
    return key("series", "version")


def rebuilding_key():
    return key("series", "rebuilding")


# KEYS: live, meta, last, built, names, metric key prefix, version
# ARGV: now, cutoff, MAX_SERIES, MAX_SERIES_PER_METRIC, enforce (1/0), expire count,
#       then a JSON array of [storage key, name, meta JSON, ts, value JSON] per series
#       (one argument, not five per series: packing thousands of arguments was a
#       large part of a labelled batch's publish).
# Each step is one command for the whole batch (ZMSCORE, ZADD and HSET of many members),
# not one per series: a batch of a thousand series costs about ten commands, not seven thousand.
ADMIT = """
local now, cutoff = ARGV[1], tonumber(ARGV[2])
local max_all, max_metric = tonumber(ARGV[3]), tonumber(ARGV[4])
local enforce = ARGV[5] == '1'
if enforce and redis.call('EXISTS', KEYS[4]) == 0 then
  return {'rebuild'}
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[6]))
for _, k in ipairs(expired) do
  local meta = redis.call('HGET', KEYS[2], k)
  if meta then
    local name = cjson.decode(meta)[2]
    redis.call('ZREM', KEYS[6] .. name, k)
    if redis.call('ZCARD', KEYS[6] .. name) == 0 then
      redis.call('ZREM', KEYS[5], name)
    end
  end
  redis.call('ZREM', KEYS[1], k)
  redis.call('HDEL', KEYS[2], k)
  redis.call('HDEL', KEYS[3], k)
end
local rows = cjson.decode(ARGV[7])
local CHUNK = 1000
-- Calls with many members, a chunk at a time (Lua's stack bounds unpack).
local function each_chunk(items, call)
  for i = 1, #items, CHUNK do
    call(unpack(items, i, math.min(i + CHUNK - 1, #items)))
  end
end
local stores = {}
for i, row in ipairs(rows) do stores[i] = row[1] end
local seen = {}
each_chunk(stores, function(...)
  for _, score in ipairs(redis.call('ZMSCORE', KEYS[1], ...)) do seen[#seen + 1] = score end
end)
local new, order, by_name = {}, {}, {}
local new_total, new_by_name = 0, {}
for i, row in ipairs(rows) do
  local score = seen[i]
  new[i] = (not score) or tonumber(score) < cutoff
  local name = row[2]
  if not by_name[name] then
    by_name[name] = {}
    new_by_name[name] = 0
    order[#order + 1] = name
  end
  local members = by_name[name]
  members[#members + 1] = now
  members[#members + 1] = row[1]
  if new[i] then
    new_total = new_total + 1
    new_by_name[name] = new_by_name[name] + 1
  end
end
if enforce and new_total > 0 then
  local live = redis.call('ZCOUNT', KEYS[1], ARGV[2], '+inf')
  if live + new_total > max_all then
    return {'MAX_SERIES', '', tostring(live), tostring(new_total)}
  end
  for _, name in ipairs(order) do
    local live_metric = redis.call('ZCOUNT', KEYS[6] .. name, ARGV[2], '+inf')
    if live_metric + new_by_name[name] > max_metric then
      return {'MAX_SERIES_PER_METRIC', name, tostring(live_metric), tostring(new_by_name[name])}
    end
  end
end
local live_members, names, metas, lasts = {}, {}, {}, {}
for _, row in ipairs(rows) do
  live_members[#live_members + 1] = now
  live_members[#live_members + 1] = row[1]
end
for _, name in ipairs(order) do
  names[#names + 1] = now
  names[#names + 1] = name
end
each_chunk(live_members, function(...) redis.call('ZADD', KEYS[1], 'GT', ...) end)
for _, name in ipairs(order) do
  each_chunk(by_name[name], function(...) redis.call('ZADD', KEYS[6] .. name, 'GT', ...) end)
end
each_chunk(names, function(...) redis.call('ZADD', KEYS[5], 'GT', ...) end)
for i, row in ipairs(rows) do
  -- A live series has its meta already: only a new (or expired) one writes it.
  if new[i] then
    metas[#metas + 1] = row[1]
    metas[#metas + 1] = row[3]
  end
end
-- HSETNX one by one: there is no many-field form, and only new series get here.
for i = 1, #metas, 2 do redis.call('HSETNX', KEYS[2], metas[i], metas[i + 1]) end
local lasts_now = {}
each_chunk(stores, function(...)
  for _, last in ipairs(redis.call('HMGET', KEYS[3], ...)) do lasts_now[#lasts_now + 1] = last end
end)
for i, row in ipairs(rows) do
  local last, ts = lasts_now[i], row[4]
  if (not last) or tonumber(string.match(last, '^%[([^,]+),')) <= tonumber(ts) then
    lasts[#lasts + 1] = row[1]
    lasts[#lasts + 1] = '[' .. ts .. ',' .. row[5] .. ']'
  end
end
each_chunk(lasts, function(...) redis.call('HSET', KEYS[3], ...) end)
if new_total > 0 or #expired > 0 then
  redis.call('INCR', KEYS[7])
end
return {'ok'}
"""

# One Script per client (its SHA computed once); a client replaced after a failover
# takes its scripts with it.
_scripts = weakref.WeakKeyDictionary()


def _script(client, source):
    scripts = _scripts.setdefault(client, {})
    if source not in scripts:
        scripts[source] = client.register_script(source)
    return scripts[source]


def cutoff(now=None):
    """Series last pushed before this (unix seconds) are no longer live."""
    return (time.time() if now is None else now) - retention_seconds()


def _number_text(number):
    """JSON for a finite number (what `json.dumps` writes, at a fraction of its cost on
    the publish path), and a ts Lua's tonumber reads back exactly (repr round-trips).
    The base types' repr: a subclass's own (numpy's) is no JSON."""
    return int.__repr__(number) if isinstance(number, int) else float.__repr__(number)


# The `series:meta` text of each series this process admitted lately: derived from the
# id, so the same every time, and a batch of a thousand series would otherwise encode
# a thousand of them on every publish. Bounded: past META_TEXTS_KEPT it starts afresh.
_meta_texts = {}
META_TEXTS_KEPT = 50_000


def _meta_text(store, series_id, name, labels):
    text = _meta_texts.get(store)
    if text is None:
        if len(_meta_texts) >= META_TEXTS_KEPT:
            _meta_texts.clear()
        text = json.dumps([series_id, name, labels], ensure_ascii=False, separators=(",", ":"))
        _meta_texts[store] = text
    return text


def _latest_per_series(points):
    """{storage key: (id, name, labels, ts, value)} keeping each series' newest point by
    ts (the later one of equal ts, as it was published later)."""
    latest = {}
    for series_id, name, labels, ts, value in points:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        store = series.storage_key(series_id)
        kept = latest.get(store)
        if kept is None or ts >= kept[3]:
            latest[store] = (series_id, name, labels, ts, value)
    return latest


def admit(points, enforce=True):
    """Record `(series id, name, labels, ts, value)` points in the index, in one round
    trip: their series become (or stay) live and their last values move on.

    With `enforce` (every published point but the collector's own), raises
    `TooManySeries` and records nothing when the batch would start a series past
    `MAX_SERIES` or `MAX_SERIES_PER_METRIC`; the caller then publishes nothing."""
    points = list(points)
    latest = _latest_per_series(points)
    if not latest:
        return
    args = [
        repr(time.time()),
        repr(cutoff()),
        int(settings.MAX_SERIES),
        int(settings.MAX_SERIES_PER_METRIC),
        1 if enforce else 0,
        EXPIRE_PER_CALL,
    ]
    rows = [
        [store, name, _meta_text(store, series_id, name, labels), _number_text(ts), _number_text(value)]
        for store, (series_id, name, labels, ts, value) in latest.items()
    ]
    args.append(json.dumps(rows, ensure_ascii=False, separators=(",", ":")))
    client = get_sync_client()
    keys = [live_key(), meta_key(), last_key(), built_key(), names_key(), metric_key(""), version_key()]
    script = _script(client, ADMIT)
    answer = [_text(part) for part in script(keys=keys, args=args)]
    if answer[0] == "rebuild":
        ensure_built()
        answer = [_text(part) for part in script(keys=keys, args=args)]
    if answer[0] == "ok":
        return
    if answer[0] == "rebuild":  # wiped again meanwhile: refuse rather than count blind
        raise RuntimeError("the series index is being rebuilt; try again")
    limit, name, live, new = answer[0], answer[1], int(answer[2]), int(answer[3])
    if limit == "MAX_SERIES":
        message = f"{new} new series would pass MAX_SERIES ({settings.MAX_SERIES}; {live} live)"
    else:
        message = (
            f"{new} new series of metric {name!r} would pass MAX_SERIES_PER_METRIC "
            f"({settings.MAX_SERIES_PER_METRIC}; {live} live)"
        )
    raise TooManySeries(message, limit, len(points))


def _json_or_null(raw):
    return raw.encode() if isinstance(raw, str) else (raw or b"null")


def _text(raw):
    return raw.decode() if isinstance(raw, bytes) else str(raw)


# ---- rebuilding ----------------------------------------------------------------


def ensure_built():
    """Rebuild the index if Redis lost it; when another process is rebuilding, wait for it."""
    client = get_sync_client()
    if client.exists(built_key()):
        return
    deadline = time.monotonic() + REBUILD_WAIT_SECONDS
    token = secrets.token_hex(8)
    while True:
        if client.set(rebuilding_key(), token, nx=True, ex=REBUILD_LOCK_SECONDS):
            try:
                if not client.exists(built_key()):
                    rebuild()
            finally:
                # Ours only: a lock that expired and was taken by another stays theirs.
                if _text(client.get(rebuilding_key()) or b"") == token:
                    client.delete(rebuilding_key())
            return
        if client.exists(built_key()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the series index is being rebuilt by another process; try again")
        time.sleep(0.05)


def rebuild():
    """Fill the index from storage: every series with a rollup bucket within the
    retention (the coarsest tier's buckets, the fewest rows), then the events the store
    still keeps, newest first, for their last values. What live publishing wrote
    meanwhile is newer and wins (scores only rise, a last value is replaced only by a
    newer one). Returns how many series it found."""
    found = {}  # storage key -> [id, name, labels, seen, last or None]
    since = cutoff()
    for series_id, seen in _series_in_rollups(since):
        try:
            name, labels = series.parse_series_id(series_id)
        except ValueError:  # a key of a metric named before today's rules
            continue
        found.setdefault(series.storage_key(series_id), [series_id, name, labels, seen, None])
    for series_id, name, labels, ts, value in _newest_points(since):
        entry = found.setdefault(series.storage_key(series_id), [series_id, name, labels, ts, None])
        entry[3] = max(entry[3], ts)
        if entry[4] is None:  # newest first: the first seen is the last value
            entry[4] = [ts, value]
    client = get_sync_client()
    now = time.time()
    items = list(found.items())
    for start in range(0, len(items), READ_BATCH):
        with client.pipeline(transaction=False) as pipe:
            for store, (series_id, name, labels, seen, last) in items[start : start + READ_BATCH]:
                seen = min(seen, now)
                # GT adds a missing member too, and never moves a newer score back.
                pipe.zadd(live_key(), {store: seen}, gt=True)
                pipe.zadd(metric_key(name), {store: seen}, gt=True)
                pipe.zadd(names_key(), {name: seen}, gt=True)
                meta = json.dumps([series_id, name, labels], ensure_ascii=False, separators=(",", ":"))
                pipe.hsetnx(meta_key(), store, meta)
                if last is not None:
                    pipe.hsetnx(last_key(), store, json.dumps(last, allow_nan=False))
            pipe.execute()
    client.incr(version_key())
    client.set(built_key(), repr(now))
    logger.info("series index rebuilt: %d series", len(found))
    return len(found)


def _series_in_rollups(since):
    """(series id, about when it was last pushed) for every series with a bucket of the
    coarsest tier that reaches past `since`."""
    from dashboard import rollups

    return rollups.series_since(since)


def _newest_points(since):
    """(id, name, labels, ts, value) of the newest events the store keeps, newest first,
    at most REBUILD_EVENTS events, none older than `since`."""
    from dashboard.storage import DashboardRedisStorage
    from dashboard.stream.channels import METRICS_CHANNEL

    storage = DashboardRedisStorage()
    current = storage.get_current_id(METRICS_CHANNEL)
    for read, event in enumerate(storage.read_back(METRICS_CHANNEL, current)):
        if read >= REBUILD_EVENTS:
            return
        try:
            data = json.loads(event.data)
        except ValueError:
            continue
        for series_id, name, labels, ts, value in frames.points_of(event.type, data):
            if isinstance(ts, int | float) and ts >= since:
                yield series_id, name, labels, ts, value


# ---- reading ---------------------------------------------------------------------


class _LiveSet:
    """The live set as this process last read it: its storage keys, the token it was
    read under (`series:built` and `series:version`), the lowest score among them, and,
    once asked, each one's (store, id, name, labels), all of them and by metric name."""

    def __init__(self, token, stores, oldest):
        self.token, self.stores, self.oldest = token, stores, oldest
        self._entries = self._by_name = None
        # Selection -> the entries it wants: the same set gives the same answer.
        self._matched = {}

    def entries(self, client):
        if self._entries is None:
            self._entries = list(_metas(client, self.stores))
        return self._entries

    def by_name(self, client):
        if self._by_name is None:
            by_name = {}
            for entry in self.entries(client):
                by_name.setdefault(entry[2], []).append(entry)
            self._by_name = by_name
        return self._by_name

    def matching(self, client, selection):
        """The entries `selection` wants, worked out once per set and selection (the
        selections of a process are shared objects, see `selectors.selection`)."""
        found = self._matched.get(selection)
        if found is None:
            names = {selector.metric_name for selector in selection.selectors}
            if None in names:
                candidates = self.entries(client)
            else:
                by_name = self.by_name(client)
                candidates = [entry for name in sorted(names) for entry in by_name.get(name, ())]
            wants = selection.wants
            found = [entry for entry in candidates if wants(entry[1], entry[2], entry[3])]
            if len(self._matched) >= MATCHED_KEPT:
                self._matched.clear()
            self._matched[selection] = found
        return found


# Selections whose answer one live set keeps at most (past it, it starts afresh).
MATCHED_KEPT = 64
_live_kept = None


def _live(client, since):
    """The live set (`_LiveSet`): series pushed at or after `since`.

    Kept per process, and read again only when it may have changed: when
    `series:version` or `series:built` moved (a series joined or left it, or the index
    was rebuilt), or when `since` has passed the oldest kept score (a series may have
    expired without any publish dropping it). Scores only rise, so every kept series
    is still live until then. One GET pair instead of the whole set, which at
    MAX_SERIES was most of a read's time."""
    global _live_kept
    with client.pipeline(transaction=False) as pipe:
        pipe.get(built_key())
        pipe.get(version_key())
        token = tuple(pipe.execute())
    kept = _live_kept
    if kept is not None and token[0] is not None and kept.token == token and since <= kept.oldest:
        return kept
    with client.pipeline(transaction=False) as pipe:
        pipe.get(built_key())
        pipe.get(version_key())
        pipe.zrangebyscore(live_key(), since, "+inf")
        pipe.zrangebyscore(live_key(), since, "+inf", start=0, num=1, withscores=True)
        built, version, stores, oldest = pipe.execute()
    # Read after the token: a change in between makes the token older than the set,
    # and the next read reads the set again.
    _live_kept = _LiveSet((built, version), stores, oldest[0][1] if oldest else math.inf)
    return _live_kept


# What each storage key stands for, per process: a key's id, name and labels never
# change (the key is derived from the id), so a read fetches only the ones it has not
# met yet. Bounded: past META_KEPT entries it starts afresh.
_meta_kept = {}
META_KEPT = 50_000


def _metas(client, stores):
    """(store, id, name, labels) of each of `stores` the index knows."""
    unknown = [store for store in stores if store not in _meta_kept]
    if len(_meta_kept) + len(unknown) > META_KEPT:
        _meta_kept.clear()
        unknown = list(stores)
    for start in range(0, len(unknown), READ_BATCH):
        batch = unknown[start : start + READ_BATCH]
        for store, raw in zip(batch, client.hmget(meta_key(), batch), strict=True):
            if raw is not None:
                _meta_kept[store] = tuple(json.loads(raw))
    for store in stores:
        meta = _meta_kept.get(store)
        if meta is not None:
            yield (store, *meta)


def _matching(client, selection):
    """(store, id, name, labels) of the live series `selection` wants (all without one)."""
    live = _live(client, cutoff())
    return live.entries(client) if selection is None else live.matching(client, selection)


def find(selection=None, limit=ANSWER_LIMIT):
    """(series, truncated): the live series `selection` (a `selectors.Selection`) wants,
    all without one, ordered by id, each `{"id", "name", "labels", "last": [ts, value] or None}`;
    at most `limit`, `truncated` when there were more."""
    ensure_built()
    client = get_sync_client()
    matched = sorted(_matching(client, selection), key=lambda item: item[1])
    truncated = len(matched) > limit
    matched = matched[:limit]
    answer = []
    for start in range(0, len(matched), READ_BATCH):
        batch = matched[start : start + READ_BATCH]
        lasts = client.hmget(last_key(), [store for store, *_ in batch])
        # One decode for the batch: a thousand small `json.loads` cost several times more.
        lasts = json.loads(b"[" + b",".join(_json_or_null(last) for last in lasts) + b"]")
        for (_store, series_id, name, labels), last in zip(batch, lasts, strict=True):
            answer.append({"id": series_id, "name": name, "labels": labels, "last": last})
    return answer, truncated


NAME_LABEL = "__name__"


def label_values(label, selection=None):
    """The values label `label` takes among the live series `selection` wants (all
    without one), sorted; `__name__` gives the metric names."""
    ensure_built()
    client = get_sync_client()
    if label == NAME_LABEL and selection is None:
        return sorted(_text(name) for name in client.zrangebyscore(names_key(), cutoff(), "+inf"))
    values = set()
    for _store, _series_id, name, labels in _matching(client, selection):
        value = name if label == NAME_LABEL else labels.get(label)
        if value is not None:
            values.add(value)
    return sorted(values)


def live_count():
    """Live series in all (for /metrics)."""
    return get_sync_client().zcount(live_key(), cutoff(), "+inf")


def live_ids(series_ids):
    """Those of `series_ids` that are live series now, in one round trip: a publisher
    that was refused for a limit finds which of its series already exist (they are
    never refused, as they start no series)."""
    ids = list(dict.fromkeys(series_ids))
    if not ids:
        return set()
    scores = get_sync_client().zmscore(live_key(), [series.storage_key(series_id) for series_id in ids])
    since = cutoff()
    return {
        series_id
        for series_id, score in zip(ids, scores, strict=True)
        if score is not None and score >= since
    }


def room(names):
    """(new series the index takes now in all, {name: new series it takes of that name}):
    what `MAX_SERIES` and `MAX_SERIES_PER_METRIC` leave, for a publisher cutting a batch
    to what fits. Another publisher may take some meanwhile; `admit` stays the judge."""
    names = list(dict.fromkeys(names))
    since = cutoff()
    with get_sync_client().pipeline(transaction=False) as pipe:
        pipe.zcount(live_key(), since, "+inf")
        for name in names:
            pipe.zcount(metric_key(name), since, "+inf")
        live, *per_name = pipe.execute()
    free = max(0, int(settings.MAX_SERIES) - live)
    limit = int(settings.MAX_SERIES_PER_METRIC)
    return free, {name: max(0, limit - count) for name, count in zip(names, per_name, strict=True)}

"""Event storage for django-eventstream, in Redis.

Why Redis rather than `DjangoModelStorage`: the collector writes an event every
second (more when teams push metrics) and those writes should not land on the SQL
database, which serves logins and pages; Redis already sits between every process
(pub/sub, channel layer, counts), so it costs nothing new to run; and key expiry
gives bounded retention for free, with no pruning job (`METRICS_RETENTION_HOURS`).

Why not the library's own `RedisStorage` (this is a `StorageBase` of its own, with
async variants of its reads): it opens a Redis connection per stream,
keeps its keys outside this installation's prefix, and allocates the id and stores
the event in two round trips. Here one Lua script, run on the process' shared pool,
allocates the id, stores the event with its expiry, counts it for the "events
published per second" metric and publishes it on the `sse` pub/sub channel, all
atomically. Atomic publish matters: two processes publishing at once must reach
subscribers in id order, or a stream that drops ids it has already passed would
drop a real event.

Data is kept as the JSON text the publisher serialised once (the library's
convention: `Event.data` is already encoded), so nobody parses and re-encodes it.
"""

import json
import time
import weakref

from django.conf import settings
from django_eventstream.event import Event
from django_eventstream.storage import EventDoesNotExist, StorageBase

from dashboard.redis import get_async_client, get_sync_client, key

# MGET batch size when reading history: large enough to be few round trips for an
# hour of frames, small enough not to block Redis for long.
READ_BATCH = 500

# A missing counter (first start, or Redis restarted empty) is seeded from one
# epoch per Redis lifetime: the clock in microseconds at the first event of any
# channel, rather than 1, so ids keep rising across a Redis restart: a client
# resuming from an id of the old history then finds it missing and gets
# `stream-reset`, instead of silently skipping new events that reuse old numbers.
# (Microseconds since 1970 stay below 2^53, so browsers read the ids exactly.)
# Only a write seeds a channel (two keys per channel that has events): reading a
# channel never creates state of its own, so no client can grow Redis by reading.
# The one epoch key may be set by whichever comes first, a read or a write.
# Lua prints large numbers in exponent form, hence string.format for keys and JSON.
# KEYS: counter, first-id key, ..., epoch key (KEYS[6])
SEED_COUNTER = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local epoch = redis.call('GET', KEYS[6])
  if not epoch then
    local now = redis.call('TIME')
    epoch = string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2]))
    redis.call('SET', KEYS[6], epoch)
  end
  redis.call('SET', KEYS[1], epoch)
  redis.call('SET', KEYS[2], string.format('%.0f', tonumber(epoch) + 1))
end
"""

# KEYS: counter, first-id key, event key prefix, per-second rate key, pub/sub channel, epoch
# ARGV: channel, event type, data (JSON text), expiry seconds
APPEND_AND_PUBLISH = (
    SEED_COUNTER
    + """
local id = redis.call('INCR', KEYS[1])
local sid = string.format('%.0f', id)
redis.call('SET', KEYS[3] .. sid, ARGV[2] .. '\\n' .. ARGV[3], 'EX', tonumber(ARGV[4]))
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], 10)
redis.call('PUBLISH', KEYS[5], cjson.encode({channel = ARGV[1], id = sid, type = ARGV[2], data = ARGV[3]}))
return id
"""
)

# The same for many events of one type in one call (a batch from the ingest API):
# ids are consecutive, and nothing from another process lands between them. They
# are published as one message, `batch` holding each event's data in id order from
# `id`, so a worker's hub hands the whole run to each stream at once: the cost per
# stream is per batch, not per point.
# KEYS: as above. ARGV: channel, event type, expiry seconds, data (JSON text)...
APPEND_MANY_AND_PUBLISH = (
    SEED_COUNTER
    + """
local count = #ARGV - 3
local last = redis.call('INCRBY', KEYS[1], count)
local first = last - count + 1
local batch = {}
for i = 1, count do
  local sid = string.format('%.0f', first + i - 1)
  local data = ARGV[i + 3]
  redis.call('SET', KEYS[3] .. sid, ARGV[2] .. '\\n' .. data, 'EX', tonumber(ARGV[3]))
  batch[i] = data
end
redis.call('INCRBY', KEYS[4], count)
redis.call('EXPIRE', KEYS[4], 10)
local message = {channel = ARGV[1], id = string.format('%.0f', first), type = ARGV[2], batch = batch}
redis.call('PUBLISH', KEYS[5], cjson.encode(message))
return first
"""
)

# A stream or a history read on a channel that has no event yet starts at the id
# right before its first event (the epoch that event will be numbered from):
# otherwise every open stream (and Pushpin's prev-id check) would see the first
# event as a gap and all of them would ask storage to catch up at once. Nothing
# per channel is written; before any event at all, the epoch itself is fixed.
# KEYS: counter, epoch
CURRENT_ID = """
local current = redis.call('GET', KEYS[1])
if current then return current end
local epoch = redis.call('GET', KEYS[2])
if epoch then return epoch end
local now = redis.call('TIME')
epoch = string.format('%.0f', tonumber(now[1]) * 1000000 + tonumber(now[2]))
redis.call('SET', KEYS[2], epoch)
return epoch
"""


def pubsub_channel():
    """The one Redis pub/sub channel every SSE event goes through."""
    return key("sse")


def revocation_channel():
    """Pub/sub channel naming a user whose access changed: every worker's hub ends their streams."""
    return key("sse-revoke")


def current_id_key(channel):
    """Where `channel`'s newest id is kept (missing before its first event). Public for
    the one reader outside Django's processes, the bench's do-nothing Pushpin origin,
    which GETs it as the product's connect reads the current id."""
    return key("events", channel, "last")


def first_id_key(channel):
    return key("events", channel, "first")


def event_key(channel, event_id):
    return key("events", channel, event_id)


def epoch_key():
    return key("events", "epoch")


def rate_key(second):
    return key("events", "rate", int(second))


def retention_seconds():
    return int(settings.METRICS_RETENTION_HOURS) * 3600


def decode_event(channel, event_id, raw):
    """An `Event` from the stored `type\\ndata` text (data stays JSON text)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    event_type, _, data = text.partition("\n")
    return Event(channel, event_type, data, id=event_id)


def parse_published(raw):
    """The events carried by a pub/sub message: one from `append_event`, or a run of
    consecutive ids from `append_events` (`batch`: each event's data, from `id` on)."""
    message = json.loads(raw)
    channel, event_type, first = message["channel"], message["type"], int(message["id"])
    if "batch" in message:
        return [Event(channel, event_type, data, id=first + i) for i, data in enumerate(message["batch"])]
    return [Event(channel, event_type, message["data"], id=first)]


def _event_keys(channel, ids):
    return [event_key(channel, event_id) for event_id in ids]


def _batches_back(last_id, floor_id):
    """The ids from `last_id` down to `floor_id` (excluded) in MGET batches, the newest
    batch first, each batch in ascending order."""
    upper = last_id
    while upper > floor_id:
        lower = max(floor_id + 1, upper - READ_BATCH + 1)
        yield range(lower, upper + 1)
        upper = lower - 1


def _newest_first(channel, ids, values):
    """One batch's events newest first; None for an event no longer stored."""
    for event_id, raw in zip(reversed(ids), reversed(values), strict=True):
        yield None if raw is None else decode_event(channel, event_id, raw)


def _events_from(channel, ids, values):
    """Events for `ids`; a missing one means retention already dropped it."""
    events = []
    for event_id, raw in zip(ids, values, strict=True):
        if raw is None:
            return events, event_id
        events.append(decode_event(channel, event_id, raw))
    return events, None


def _check_resumable(channel, last_id, current_id):
    # An id from the future belongs to another history (Redis was emptied): the
    # client must reload rather than wait for ids that mean something else.
    if last_id > current_id:
        raise EventDoesNotExist(f"No such event {channel}:{last_id}", current_id)


class DashboardRedisStorage(StorageBase):
    """`EVENTSTREAM_STORAGE_CLASS`: prefixed keys, the shared pools, expiry = retention.

    No connection of its own: it uses dashboard.redis' pools, so making one is free."""

    @property
    def redis(self):
        return get_sync_client()

    _scripts = weakref.WeakKeyDictionary()

    def _script(self, client, source=APPEND_AND_PUBLISH):
        # One Script object per client and source, so its SHA is computed once and EVALSHA reused.
        scripts = self._scripts.setdefault(client, {})
        if source not in scripts:
            scripts[source] = client.register_script(source)
        return scripts[source]

    def _append_args(self, channel, event_type, data):
        keys = [
            current_id_key(channel),
            first_id_key(channel),
            key("events", channel, ""),
            rate_key(time.time()),
            pubsub_channel(),
            epoch_key(),
        ]
        return keys, [channel, event_type, data, retention_seconds()]

    def append_event(self, channel, event_type, data):
        """Store and publish one event; `data` is JSON text. Returns the `Event` with its id."""
        keys, args = self._append_args(channel, event_type, data)
        event_id = self._script(self.redis)(keys=keys, args=args)
        return Event(channel, event_type, data, id=int(event_id))

    def append_events(self, channel, event_type, datas, chunk=500):
        """`append_event` for many events of one type: one script call per `chunk`
        rather than one per event, which is what lets a batch of thousands out at
        once. A chunk is atomic; `chunk` bounds how long it holds Redis."""
        script = self._script(self.redis, APPEND_MANY_AND_PUBLISH)
        events = []
        for start in range(0, len(datas), chunk):
            part = datas[start : start + chunk]
            keys, args = self._append_args(channel, event_type, "")
            first = int(script(keys=keys, args=[channel, event_type, retention_seconds(), *part]))
            events.extend(Event(channel, event_type, data, id=first + i) for i, data in enumerate(part))
        return events

    def get_current_id(self, channel):
        keys = [current_id_key(channel), epoch_key()]
        return int(self._script(self.redis, CURRENT_ID)(keys=keys))

    async def aget_current_id(self, channel):
        keys = [current_id_key(channel), epoch_key()]
        return int(await self._script(get_async_client(), CURRENT_ID)(keys=keys))

    def get_events(self, channel, last_id, limit=100):
        """Events after `last_id`, oldest first, at most `limit`.

        Raises `EventDoesNotExist` when the event right after `last_id` is no longer
        kept, so the caller sends `stream-reset` rather than skipping a hole."""
        current_id = self.get_current_id(channel)
        _check_resumable(channel, last_id, current_id)
        if last_id == 0:
            first_id = self.redis.get(first_id_key(channel))
            if first_id is None:
                return []  # no event on this channel yet
            last_id = int(first_id) - 1
        ids = list(range(last_id + 1, min(last_id + limit, current_id) + 1))
        events = []
        for start in range(0, len(ids), READ_BATCH):
            batch = ids[start : start + READ_BATCH]
            values = self.redis.mget(_event_keys(channel, batch))
            found, missing = _events_from(channel, batch, values)
            events.extend(found)
            if missing is not None:
                return self._after_missing(channel, events, missing, current_id)
        return events

    async def aget_events(self, channel, last_id, limit=100):
        current_id = await self.aget_current_id(channel)
        _check_resumable(channel, last_id, current_id)
        if last_id == 0:
            # 0 is "before the first event" (a page that loaded before any event).
            first_id = await get_async_client().get(first_id_key(channel))
            if first_id is None:
                return []  # no event on this channel yet
            last_id = int(first_id) - 1
        ids = list(range(last_id + 1, min(last_id + limit, current_id) + 1))
        events = []
        client = get_async_client()
        for start in range(0, len(ids), READ_BATCH):
            batch = ids[start : start + READ_BATCH]
            values = await client.mget(_event_keys(channel, batch))
            found, missing = _events_from(channel, batch, values)
            events.extend(found)
            if missing is not None:
                return self._after_missing(channel, events, missing, current_id)
        return events

    def read_back(self, channel, last_id, floor_id=0):
        """Stored events of `channel` from `last_id` down to `floor_id` (excluded), newest
        first: the one backward reader (the history endpoint, and through `aread_back` the
        socket's snapshot). One MGET per READ_BATCH ids, made only when the caller asks
        for more, so a caller that stops early (at its window's start) reads no further;
        it ends at the first event retention already dropped (expiry removes the oldest
        first, so nothing older is kept either)."""
        for ids in _batches_back(last_id, floor_id):
            values = self.redis.mget(_event_keys(channel, ids))
            for event in _newest_first(channel, ids, values):
                if event is None:
                    return
                yield event

    async def aread_back(self, channel, last_id, floor_id=0):
        """`read_back` on the event loop."""
        client = get_async_client()
        for ids in _batches_back(last_id, floor_id):
            values = await client.mget(_event_keys(channel, ids))
            for event in _newest_first(channel, ids, values):
                if event is None:
                    return
                yield event

    async def alatest_events(self, channel, count):
        """The events of the newest `count` ids of `channel`, newest first, as far back as
        they are kept: one GET of the counter (not the id script, which would seed an
        unused channel) and one MGET."""
        current = int(await get_async_client().get(current_id_key(channel)) or 0)
        floor_id = max(0, current - count)
        return [event async for event in self.aread_back(channel, current, floor_id)]

    def oldest_kept_id(self, channel, after_id, current_id):
        """The first id after `after_id` whose event is still stored, or None. Events
        expire oldest first (same expiry, appended in id order), so a binary search finds
        where the kept ones start; a Redis emptied meanwhile starts again at its first id."""
        client = self.redis
        low = max(after_id + 1, int(client.get(first_id_key(channel)) or 1))
        high = current_id
        if low > high or not client.exists(event_key(channel, high)):
            return None
        while low < high:
            middle = (low + high) // 2
            if client.exists(event_key(channel, middle)):
                high = middle
            else:
                low = middle + 1
        return low

    @staticmethod
    def _after_missing(channel, events, missing_id, current_id):
        # Expiry removes the oldest first, so a missing event is one the client
        # never got and never will: that is a reset, not a gap to step over.
        if not events:
            raise EventDoesNotExist(f"No such event {channel}:{missing_id}", current_id)
        # Something expired or vanished mid-range: deliver what is contiguous; the
        # next read from the last delivered id reports the reset.
        return events

"""The selections of the streams Pushpin holds (`/events/?match=` behind the edge).

Pushpin sends a held stream whatever is published to the GRIP channels its connect
subscribed it to; it cannot filter. So a filtered stream is subscribed to a channel of
its own selection, `metrics~<digest>` (GRIP channel `events-metrics~<digest>`), and
publishers, whichever process they run in (dashboard.live), send each selection there
what it wants of every `metrics` event, beside the whole event on `metrics`.

Connects register their selection before they read storage, and publishers look at
the registry after they store: whatever a connect did not read is published to its
selection. (A publisher reads the registry's version, one GET, on every publish, and
the registry itself when that changed.) A selection is kept while its streams come
back to the worker: each connect and each of Pushpin's periodic next-link requests
(`REFRESH_SECONDS`) registers it again, and one nobody registered for `KEPT_SECONDS`
is forgotten. At most `MAX_SELECTIONS` are kept, the least recently registered
forgotten first: publishing costs one decision per event and selection.

Each selection's publishes chain their ids: the `prev-id` of one is the id of the
previous event published to that selection. Pushpin checks the chain as it does on
`metrics`, and a break (two publishers racing, a publish lost) makes it recover from
the worker, which replays from storage with the same filter. A chain's first publish
names a `prev-id` no stream holds (`CHAIN_START`), so that Pushpin recovers each
stream of a new selection once, from what its connect read: nothing is lost, nothing
comes twice.
"""

import hashlib
import json
import threading
import time

from dashboard import selectors
from dashboard.redis import get_async_client, get_sync_client, key
from dashboard.stream.channels import METRICS_CHANNEL

MAX_SELECTIONS = 256
REFRESH_SECONDS = 600
KEPT_SECONDS = 3 * REFRESH_SECONDS
# Event ids start at 1: a prev-id of 0 follows on from nothing a stream holds.
CHAIN_START = "0"
# Expired selections leave a publisher's copy of the registry at least this often.
REREAD_SECONDS = 60


def registry_keys():
    """(ZSET digest -> when last registered, HASH digest -> JSON list of its selector
    texts, HASH digest -> id of the last event published to it, the registry's version:
    a counter moved on whenever a selection is added)."""
    return tuple(key("edge-selections", part) for part in ("seen", "texts", "chain", "version"))


def digest(selection):
    return hashlib.sha256(str(selection).encode()).hexdigest()[:20]


def channel(name):
    """The channel (GRIP: `events-<channel>`) the streams of selection `name` are held on."""
    return f"{METRICS_CHANNEL}~{name}"


# Registers a selection and trims the registry; returns the selection's last chained id.
# KEYS: registry_keys(). ARGV: digest, texts JSON, now, kept seconds, max kept.
_REGISTER = """
if redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) == 1 then redis.call('INCR', KEYS[4]) end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3] - ARGV[4])
local over = redis.call('ZCARD', KEYS[1]) - #gone - tonumber(ARGV[5])
if over > 0 then
  for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do table.insert(gone, d) end
end
for _, d in ipairs(gone) do
  redis.call('ZREM', KEYS[1], d)
  redis.call('HDEL', KEYS[2], d)
  redis.call('HDEL', KEYS[3], d)
end
return redis.call('HGET', KEYS[3], ARGV[1])
"""

# Moves a selection's chain on to ARGV[2] (the last id published to it now); returns the
# id before (nil when the chain starts here). KEYS: chains. ARGV: digest, last id.
_CHAIN = """
local before = redis.call('HGET', KEYS[1], ARGV[1])
if not before or tonumber(before) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return before
"""


async def aregister(selection):
    """Keep `selection` published to; returns the id of the last event published to it
    (None if none yet), where a new subscription's chain starts."""
    client = get_async_client()
    texts = json.dumps([str(s) for s in selection.selectors])
    last = await client.eval(
        _REGISTER, 4, *registry_keys(), digest(selection), texts, time.time(), KEPT_SECONDS, MAX_SELECTIONS
    )
    return None if last is None else int(last)


class Registry:
    """A publisher's copy of the registry, read again when its version moved on."""

    def __init__(self):
        self.version = None
        self.read_at = 0.0
        self.selections = []
        self.lock = threading.Lock()

    def active(self):
        """[(digest, Selection)] of the selections streams are held on now."""
        client = get_sync_client()
        version = client.get(registry_keys()[3])
        now = time.monotonic()
        if version != self.version or now - self.read_at >= REREAD_SECONDS:
            with self.lock:
                self.selections = read_active(client)
                self.version, self.read_at = version, now
        return self.selections


def read_active(client):
    seen, texts_key, _, _ = registry_keys()
    digests = [d.decode() for d in client.zrangebyscore(seen, time.time() - KEPT_SECONDS, "+inf")]
    if not digests:
        return []
    active = []
    for name, texts in zip(digests, client.hmget(texts_key, digests), strict=True):
        if texts is None:
            continue
        try:
            active.append((name, selectors.known_selection(json.loads(texts))))
        except (ValueError, selectors.SelectorError):
            continue  # written by a version that parsed differently: its streams re-register
    return active


registry = Registry()


def chain(name, last_id):
    """The `prev-id` of the next publish to selection `name` (its previous id, or
    CHAIN_START), the chain moved on to `last_id`."""
    before = get_sync_client().eval(_CHAIN, 1, registry_keys()[2], name, last_id)
    return CHAIN_START if before is None else before.decode()

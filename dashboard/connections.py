"""Open SSE and WebSocket connections, counted per worker and summed over all.

Each worker keeps its own counts in memory and reports them to Redis every
second under a key that expires in a few seconds, so a worker that dies simply
drops out of the total instead of leaving its last count behind forever.
The workers that reported are listed in one sorted set (scored by time), so the
total is read without scanning Redis' keyspace; the list forgets a worker an
hour after its last report.
"""

import asyncio
import collections
import logging
import os
import secrets
import socket
import time
import uuid

from django.conf import settings

from dashboard.redis import get_async_client, get_sync_client, key

logger = logging.getLogger(__name__)

KINDS = ("sse", "ws")
REPORT_EVERY = 1.0
REPORT_TTL = 5
FORGET_AFTER = 3600

WORKER_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
_counts = dict.fromkeys(KINDS, 0)
_reporter = None


def _report_key(kind, worker_id=WORKER_ID):
    return key("conn", kind, worker_id)


def workers_key():
    return key("conn", "workers")


def opened(kind):
    """Call from the event loop when a connection of `kind` opens."""
    _counts[kind] += 1
    _ensure_reporter()


def closed(kind):
    _counts[kind] = max(0, _counts[kind] - 1)


# Per user, on this worker: what MAX_CONNECTIONS_PER_USER caps.
_per_user = collections.Counter()


def claim(kind, user_id):
    """Take one of the user's MAX_CONNECTIONS_PER_USER places for `kind` on this worker;
    False when they hold them all (one session held 300 sockets and 200 streams)."""
    if _per_user[(kind, user_id)] >= settings.MAX_CONNECTIONS_PER_USER:
        return False
    _per_user[(kind, user_id)] += 1
    return True


def release(kind, user_id):
    _per_user[(kind, user_id)] -= 1
    if _per_user[(kind, user_id)] <= 0:
        del _per_user[(kind, user_id)]


def held(kind, user_id):
    return _per_user[(kind, user_id)]


# Open streams per share link on this worker, reported beside the counts: what
# SHARE_MAX_VIEWERS caps, summed over every worker.
_per_share = collections.Counter()
# link id -> (read at, open streams of the link on the other workers): a connect reads
# Redis at most once per REPORT_EVERY per link, whatever the crowd.
_elsewhere = {}


def _share_key(worker_id=WORKER_ID):
    return key("conn", "share", worker_id)


async def _streams_elsewhere(link_id):
    kept = _elsewhere.get(link_id)
    now = time.monotonic()
    if kept is not None and now - kept[0] < REPORT_EVERY:
        return kept[1]
    client = get_async_client()
    workers = [
        raw.decode() for raw in await client.zrangebyscore(workers_key(), time.time() - REPORT_TTL, "+inf")
    ]
    others = [worker for worker in workers if worker != WORKER_ID]
    total = 0
    if others:
        async with client.pipeline(transaction=False) as pipe:
            for worker in others:
                pipe.hget(_share_key(worker), str(link_id))
            total = sum(int(value) for value in await pipe.execute() if value is not None)
    if len(_elsewhere) > 10000:
        _elsewhere.clear()
    _elsewhere[link_id] = (now, total)
    return total


async def aclaim_share(link_id, cap):
    """Take a place among share link `link_id`'s `cap` viewers, counted over every worker
    (the others' counts as they reported them within the last second); False when full."""
    elsewhere = await _streams_elsewhere(link_id)
    if _per_share[link_id] + elsewhere >= cap:
        return False
    _per_share[link_id] += 1
    _ensure_reporter()
    return True


def release_share(link_id):
    _per_share[link_id] -= 1
    if _per_share[link_id] <= 0:
        del _per_share[link_id]


def share_viewers(link_ids):
    """{link id: open streams over every live worker} (sync, for the API's list)."""
    client = get_sync_client()
    workers = [raw.decode() for raw in client.zrangebyscore(workers_key(), time.time() - REPORT_TTL, "+inf")]
    counts = dict.fromkeys(link_ids, 0)
    if not link_ids:
        return counts
    fields = [str(link_id) for link_id in link_ids]
    now = time.time()
    with client.pipeline(transaction=False) as pipe:
        for worker in workers:
            pipe.hmget(_share_key(worker), fields)
        for link_id in link_ids:  # and those held at the Pushpin edge
            pipe.zcount(_edge_key(link_id), now, "+inf")
        answers = pipe.execute()
    for values in answers[: len(workers)]:
        for link_id, value in zip(link_ids, values, strict=True):
            counts[link_id] += int(value or 0)
    for link_id, held in zip(link_ids, answers[len(workers) :], strict=True):
        counts[link_id] += int(held)
    return counts


def local_count(kind):
    return _counts[kind]


def _ensure_reporter():
    global _reporter
    if _reporter is None or _reporter.done():
        _reporter = asyncio.get_running_loop().create_task(_report_forever())


async def _report_forever():
    down = False
    while True:
        try:
            client = get_async_client()
            async with client.pipeline(transaction=True) as pipe:
                for kind in KINDS:
                    pipe.set(_report_key(kind), _counts[kind], ex=REPORT_TTL)
                # Replaced whole: a link whose last stream closed drops out of it.
                pipe.delete(_share_key())
                if _per_share:
                    pipe.hset(_share_key(), mapping={str(k): v for k, v in _per_share.items()})
                    pipe.expire(_share_key(), REPORT_TTL)
                pipe.zadd(workers_key(), {WORKER_ID: time.time()})
                await pipe.execute()
            if down:
                logger.info("connection counts reach Redis again")
            down = False
        except Exception as exc:  # Redis away: keep serving, report once per outage.
            if not down:
                logger.warning("cannot report connection counts to Redis: %s", exc)
            down = True
        await asyncio.sleep(REPORT_EVERY)


def counts_by_worker(kind):
    """{worker id: open connections of `kind`} for every live worker (sync), read through
    the list of reporting workers rather than a SCAN of the whole keyspace."""
    client = get_sync_client()
    client.zremrangebyscore(workers_key(), "-inf", time.time() - FORGET_AFTER)
    workers = [raw.decode() for raw in client.zrange(workers_key(), 0, -1)]
    values = client.mget([_report_key(kind, worker) for worker in workers]) if workers else []
    return {worker: int(value) for worker, value in zip(workers, values, strict=True) if value is not None}


def totals():
    """Open connections of each kind summed over every live worker (sync, for the collector)."""
    return {kind: sum(counts_by_worker(kind).values()) for kind in KINDS}


# --- share viewers held at the Pushpin edge ---------------------------------------------
# Behind Pushpin a worker answers a viewer's connect and is gone: no response stays open
# to count, and nothing tells a worker when the viewer leaves. So at the edge a viewer
# is a connect within the last SHARE_EDGE_LEASE_SECONDS: each takes a place, a member
# of one sorted set per link scored by when its lease ends, claimed by one script so
# that concurrent connects on every worker see one count.
# Why no renewal: a place renewed by Pushpin's next-link request needs the viewer's id
# in that link, which makes every connection's link its own; Pushpin then recovers
# each connection by its own request instead of one per link, and under a crowd of
# viewers delivery stalled (docs/performance.md).

_CLAIM_EDGE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def _edge_key(link_id):
    return key("conn", "share-edge", str(link_id))


async def aclaim_edge_share(link_id, cap):
    """Take one of share link `link_id`'s `cap` places at the edge for a lease; False
    when they are all taken."""
    now = time.time()
    lease = settings.SHARE_EDGE_LEASE_SECONDS
    member = secrets.token_hex(8)
    claimed = await get_async_client().eval(
        _CLAIM_EDGE, 1, _edge_key(link_id), now, cap, now + lease, member, lease + 60
    )
    return bool(claimed)

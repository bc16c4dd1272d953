"""The product's Redis clients, one pool per process (sync) and per event loop (async).

Sharing a pool matters: a connection per stream or per request costs memory on
both sides and runs into Redis' connection limits under load.

Every client is made here, from REDIS_URL, or under Sentinel (REDIS_SENTINELS and
REDIS_SENTINEL_MASTER) from the primary the sentinels name: a connection made
after a failover asks them again, so a pool follows the new primary by itself.
The channel layer's pool is channels_redis' own, from the same settings.
"""

import asyncio
import functools
import logging

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.retry
import redis.sentinel
from django.conf import settings
from redis.backoff import NoBackoff

logger = logging.getLogger(__name__)

# Fail fast on a dead Redis rather than hanging a request or a tick.
SOCKET_TIMEOUT = 2.0


def key(*parts):
    """A Redis key or pub/sub channel under this installation's prefix."""
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])


def sentinel_in_use():
    return bool(settings.REDIS_SENTINELS)


def _sentinel_kwargs(retry_class):
    # One try per sentinel: the next one in the list is the retry, and a sentinel
    # that is down must not hold every reconnect for seconds of backoff. The
    # sentinels take the servers' password: one that answered without it could
    # name any server as the primary, and be sent the password.
    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "retry": retry_class(NoBackoff(), 0),
        **_sentinel_password(),
    }


def _sentinel_password():
    password = settings.REDIS_NODE_OPTIONS.get("password")
    return {"password": password} if password else {}


@functools.cache
def _sync_sentinel():
    return redis.sentinel.Sentinel(
        settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs(redis.retry.Retry)
    )


_async_sentinels = {}


def _async_sentinel():
    loop = asyncio.get_running_loop()
    sentinel = _async_sentinels.get(loop)
    if sentinel is None:
        sentinel = _async_sentinels[loop] = redis.asyncio.sentinel.Sentinel(
            settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_kwargs(redis.asyncio.retry.Retry)
        )
    return sentinel


def _sync_client(**options):
    if sentinel_in_use():
        return _sync_sentinel().master_for(
            settings.REDIS_SENTINEL_MASTER, **settings.REDIS_NODE_OPTIONS, **options
        )
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def _async_client(**options):
    if sentinel_in_use():
        return _async_sentinel().master_for(
            settings.REDIS_SENTINEL_MASTER, **settings.REDIS_NODE_OPTIONS, **options
        )
    return redis.asyncio.Redis.from_url(settings.REDIS_URL, **options)


@functools.cache
def get_sync_client():
    return _sync_client(
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        max_connections=50,
    )


class SharedConnectionPool(redis.ConnectionPool):
    """The cache's pool class (`CACHES[...]["OPTIONS"]["pool_class"]`): one pool per
    URL and options for the whole process.

    Django builds a cache client per request context, and each client its own
    pool, so every session read through the cache (each page, each SSE connect)
    opened a new TCP connection to Redis. Sharing the pool reuses them. Under
    Sentinel the pool is the sentinels' (the URL gives only the password and
    database number)."""

    _shared = {}

    @classmethod
    def from_url(cls, url, **options):
        pool_key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        pool = cls._shared.get(pool_key)
        if pool is None:
            pool = cls._shared.setdefault(pool_key, cls._new_pool(url, options))
        return pool

    @classmethod
    def _new_pool(cls, url, options):
        if sentinel_in_use():
            return redis.sentinel.SentinelConnectionPool(
                settings.REDIS_SENTINEL_MASTER, _sync_sentinel(), **settings.REDIS_NODE_OPTIONS, **options
            )
        return super().from_url(url, **options)


_async_clients = {}


def get_async_client():
    """A client bound to the running loop (redis.asyncio pools can't cross loops)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        options = {
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            "health_check_interval": 30,
        }
        if sentinel_in_use():
            client = _async_client(max_connections=200, **options)
        else:
            # A burst of connects (a share link's thousands of viewers arriving at once)
            # waits for a free connection instead of failing with "Too many connections"
            # and a 500; only a Redis that gives none for SOCKET_TIMEOUT is an error.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=200, timeout=SOCKET_TIMEOUT, **options
            )
            client = redis.asyncio.Redis(connection_pool=pool)
        _async_clients[loop] = client
    return client


def new_subscriber_client():
    """A client of its own for one pub/sub subscriber, which its owner closes.

    A subscriber blocks on reads, so it has no read timeout. And it never
    reconnects by itself: redis-py would subscribe again silently within its
    retries, and what was published in between (a failover takes seconds) would
    wait for a later message to reveal the gap. Losing the connection raises, so
    the owner's "Redis lost and back" path (the SSE hub's catch-up) runs every time."""
    return _async_client(
        socket_connect_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
    )


# How often a subscriber looks up from its reads to see whether it was cancelled.
CANCEL_CHECK_SECONDS = 0.5


async def messages(pubsub):
    """The messages a subscriber hears, until its task is cancelled.

    redis-py can swallow a cancel that lands while the subscriber connects (the task
    stays "cancelling" but waits on the socket forever), and such a task keeps its
    event loop from closing. So reads are bounded and each bound checks for a
    pending cancel: the task always ends when cancelled."""
    task = asyncio.current_task()
    while True:
        if task.cancelling():
            raise asyncio.CancelledError
        message = await pubsub.get_message(timeout=CANCEL_CHECK_SECONDS)
        if message is not None:
            yield message


# A subscriber that lost Redis tries again after 0.1 s, doubling up to this.
RECONNECT_MAX_SECONDS = 5.0


async def subscribe_forever(channel, on_message, *, name, connected, on_reconnect=None, on_lost=None):
    """Hear `channel` for as long as the task runs, through outages: each message's data
    goes to `on_message`; `connected` (an asyncio.Event) is set while subscribed; after an
    outage `on_reconnect` runs once subscribed again, and `on_lost` when it is noticed
    (pub/sub keeps nothing, so what was published meanwhile only storage knows). Reconnects
    back off from 0.1 s to RECONNECT_MAX_SECONDS; `name` is what the log calls it."""
    delay = 0.1
    down = False
    while True:
        client = new_subscriber_client()
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                connected.set()
                if down:
                    logger.info("%s reconnected to Redis", name)
                    if on_reconnect is not None:
                        on_reconnect()
                down, delay = False, 0.1
                async for message in messages(pubsub):
                    if message["type"] == "message":
                        on_message(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            connected.clear()
            if on_lost is not None:
                on_lost()
            if not down:
                logger.warning("%s lost Redis (%s); retrying with backoff", name, exc)
            down = True
        finally:
            await client.aclose()
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX_SECONDS)


def sentinel_primary():
    """`host:port` of the primary the sentinels name now (redis.ConnectionError if none)."""
    host, port = _sync_sentinel().discover_master(settings.REDIS_SENTINEL_MASTER)
    return f"{host}:{port}"

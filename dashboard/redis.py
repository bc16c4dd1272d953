"""The product's Redis clients, one pool per process (sync) and per event loop (async).

Sharing a pool matters: a connection per stream or per request costs memory on
both sides and runs into Redis' connection limits under load.
"""

import asyncio
import functools

import redis
import redis.asyncio
from django.conf import settings

# Fail fast on a dead Redis rather than hanging a request or a tick.
SOCKET_TIMEOUT = 2.0


def key(*parts):
    """A Redis key or pub/sub channel under this installation's prefix."""
    return ":".join([settings.REDIS_PREFIX, *map(str, parts)])


@functools.cache
def get_sync_client():
    return redis.Redis.from_url(
        settings.REDIS_URL,
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
    opened a new TCP connection to Redis. Sharing the pool reuses them."""

    _shared = {}

    @classmethod
    def from_url(cls, url, **options):
        pool_key = (url, tuple(sorted((name, repr(value)) for name, value in options.items())))
        pool = cls._shared.get(pool_key)
        if pool is None:
            pool = cls._shared.setdefault(pool_key, super().from_url(url, **options))
        return pool


_async_clients = {}


def get_async_client():
    """A client bound to the running loop (redis.asyncio pools can't cross loops)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            health_check_interval=30,
            max_connections=200,
        )
        _async_clients[loop] = client
    return client

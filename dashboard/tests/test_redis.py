import asyncio

import pytest
import redis.asyncio.sentinel
import redis.sentinel
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from dashboard.redis import key


def test_keys_live_under_the_installation_prefix(settings):
    settings.REDIS_PREFIX = "acme"
    assert key("events", "metrics", 7) == "acme:events:metrics:7"


def test_cache_clients_share_one_connection_pool(redis_url):
    """Django makes a cache client per request context; without a shared pool each
    one opened its own Redis connection (one per page view and per SSE connect)."""
    from django.conf import settings

    first = RedisCache(settings.CACHES["default"]["LOCATION"], settings.CACHES["default"])
    second = RedisCache(settings.CACHES["default"]["LOCATION"], settings.CACHES["default"])
    first.set("pool-check", 1)
    assert second.get("pool-check") == 1
    assert first._cache._get_connection_pool(True) is second._cache._get_connection_pool(True)


async def test_a_burst_of_commands_past_the_pool_waits_for_a_connection_instead_of_failing():
    # More commands at once than the worker's async pool has connections, as when a
    # share link's viewers all connect together: each waits its turn, none fails.
    from dashboard.redis import get_async_client

    client = get_async_client()
    size = client.connection_pool.max_connections
    answers = await asyncio.gather(*(client.eval("return 1", 0) for _ in range(size * 3)))
    assert answers == [1] * (size * 3)


def test_the_default_cache_is_redis(redis_url):
    assert isinstance(caches["default"], RedisCache)


@pytest.fixture
def under_sentinel(settings):
    """Sentinel settings naming a port nobody listens on: building clients connects nowhere."""
    from dashboard import redis as clients

    settings.REDIS_SENTINELS = [("127.0.0.1", 1)]
    settings.REDIS_SENTINEL_MASTER = "livedash"
    settings.REDIS_NODE_OPTIONS = {"password": "secret", "db": 3}
    clients.get_sync_client.cache_clear()
    clients._sync_sentinel.cache_clear()
    yield
    clients.get_sync_client.cache_clear()
    clients._sync_sentinel.cache_clear()


async def test_under_sentinel_every_client_asks_the_sentinels_for_the_primary(under_sentinel):
    from dashboard import redis as clients

    pools = [
        clients.get_sync_client().connection_pool,
        clients.SharedConnectionPool._new_pool("redis://:secret@ignored:6379/3", {"socket_timeout": 2.0}),
        clients.get_async_client().connection_pool,
        clients.new_subscriber_client().connection_pool,
    ]
    try:
        for pool in pools:
            assert isinstance(
                pool, redis.sentinel.SentinelConnectionPool | redis.asyncio.sentinel.SentinelConnectionPool
            )
            assert pool.service_name == "livedash"
            assert pool.is_master
            assert pool.connection_kwargs["password"] == "secret"
            assert pool.connection_kwargs["db"] == 3
        # The hub's subscriber surfaces every loss to its resync, never reconnecting silently.
        assert pools[-1].connection_kwargs["retry"].get_retries() == 0
        # The sentinels are asked with the servers' password too.
        for manager in (clients._sync_sentinel(), clients._async_sentinel()):
            assert manager.sentinels[0].connection_pool.connection_kwargs["password"] == "secret"
    finally:
        clients._async_clients.pop(asyncio.get_running_loop(), None)
        clients._async_sentinels.pop(asyncio.get_running_loop(), None)


def test_the_channel_layer_asks_the_sentinels_too():
    from dashboard.tests.test_settings import settings_value

    host = settings_value(
        "sorted((k, v) for k, v in settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0].items() "
        "if k != 'sentinel_kwargs')",
        DEBUG="1",
        REDIS_URL="redis://:secret@unused:6379/2",
        REDIS_SENTINELS="s1:26379, s2:26380",
        REDIS_SENTINEL_MASTER="livedash",
    )
    sentinel_password = settings_value(
        "settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['sentinel_kwargs']['password']",
        DEBUG="1",
        REDIS_URL="redis://:secret@unused:6379/2",
        REDIS_SENTINELS="s1:26379",
        REDIS_SENTINEL_MASTER="livedash",
    )
    assert sentinel_password == "secret"
    assert host == str(
        sorted(
            {
                "db": 2,
                "master_name": "livedash",
                "max_connections": 1000,
                "password": "secret",
                "sentinels": [("s1", 26379), ("s2", 26380)],
            }.items()
        )
    )

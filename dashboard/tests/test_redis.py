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


def test_the_default_cache_is_redis(redis_url):
    assert isinstance(caches["default"], RedisCache)

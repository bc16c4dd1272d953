"""The session engine's cache reads on the event loop, and its fallback when Redis is away."""

import pytest
import redis.asyncio
from django.contrib.auth import SESSION_KEY
from django.core.cache.backends.redis import RedisCacheClient

from dashboard import sessions
from deploy.supervisor import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def saved_session(redis_url):
    store = sessions.SessionStore()
    store[SESSION_KEY] = "42"
    store.save()  # to the database and to the cache
    return store.session_key


async def test_a_cached_session_is_read_on_the_loop_as_the_backend_stored_it(saved_session, monkeypatch):
    def no_thread(*args, **kwargs):
        raise AssertionError("read through the sync cache client")

    monkeypatch.setattr(RedisCacheClient, "get", no_thread)
    store = sessions.SessionStore(saved_session)
    assert await store.aget(SESSION_KEY) == "42"


async def test_with_redis_away_the_session_comes_from_the_database(saved_session, monkeypatch):
    away = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.5)
    monkeypatch.setattr(sessions, "get_async_client", lambda: away)
    store = sessions.SessionStore(saved_session)
    assert await store.aget(SESSION_KEY) == "42"
    await away.aclose()

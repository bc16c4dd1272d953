"""The session engine's cache reads on the event loop, and its fallback when Redis is away."""

import asyncio

import pytest
import redis.asyncio
from asgiref.sync import sync_to_async
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


class CountingClient:
    """The loop's Redis client, counting the reads that reach it."""

    def __init__(self, client):
        self.client, self.reads = client, []

    async def mget(self, keys):
        self.reads.append(list(keys))
        return await self.client().mget(keys)


def saved_sessions(count):
    keys = []
    for n in range(count):
        store = sessions.SessionStore()
        store[SESSION_KEY] = str(n)
        store.save()
        keys.append(store.session_key)
    return keys


@pytest.fixture
def counting(redis_url, monkeypatch):
    counting = CountingClient(sessions.get_async_client)
    monkeypatch.setattr(sessions, "get_async_client", lambda: counting)
    return counting


async def test_sessions_read_together_share_a_few_reads_each_getting_its_own(counting):
    keys = await sync_to_async(saved_sessions)(60)
    asked = keys + keys[:20]  # some sessions connect twice (two tabs)

    users = await asyncio.gather(*(sessions.SessionStore(key).aget(SESSION_KEY) for key in asked))

    assert users == [str(n) for n in range(60)] + [str(n) for n in range(20)]
    assert 1 <= len(counting.reads) <= sessions.ASYNC_READS_AT_ONCE
    assert sum(len(read) for read in counting.reads) == 60  # each session read once


async def test_a_reader_that_leaves_does_not_cancel_the_others_answer(counting):
    [key] = await sync_to_async(saved_sessions)(1)
    leaving = asyncio.ensure_future(sessions.SessionStore(key).aget(SESSION_KEY))
    staying = asyncio.ensure_future(sessions.SessionStore(key).aget(SESSION_KEY))
    await asyncio.sleep(0)  # both have asked
    leaving.cancel()
    assert await staying == "0"
    assert len(counting.reads) == 1

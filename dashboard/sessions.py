"""The session engine: sessions live in the database, with Redis as a read-through cache
that may be away.

Django's `cached_db` engine already falls back to the database when a cache read
fails, but it writes back to the cache unguarded, so with Redis down every
signed-in request (the login page included) answered 500. Here every cache call is
guarded: while Redis is away a session is read and written in the database only,
and it is cached again once Redis answers.

A logout during an outage cannot drop the cached copy; where Redis keeps its data
across the outage that copy would outlive the logout, so cached copies live at
most SESSION_CACHE_SECONDS (the database, which the logout did reach, answers
after that).
"""

import asyncio
import contextvars
import itertools
import logging

from django.contrib.sessions.backends import cached_db
from redis.exceptions import RedisError

from dashboard.loops import PerLoop
from dashboard.redis import get_async_client

logger = logging.getLogger(__name__)

SESSION_CACHE_SECONDS = 60
CACHE_ERRORS = (RedisError, OSError)
# A connect storm reads thousands of sessions at once: a few MGETs in flight per loop,
# each of what has been asked meanwhile, rather than one GET (and one pooled
# connection) per connect.
ASYNC_READS_AT_ONCE = 8
KEYS_PER_READ = 500


class SessionReads:
    """The session cache reads of one event loop, gathered: every key asked while a read
    is under way goes in the next MGET, and a key asked twice is read once."""

    def __init__(self):
        self.asked = {}  # cache key -> the future its readers await
        self.readers = 0

    async def get(self, key):
        future = self.asked.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self.asked[key] = loop.create_future()
            if self.readers < ASYNC_READS_AT_ONCE:
                self.readers += 1
                loop.create_task(self.read_asked(), context=contextvars.Context())
        # Shielded: a reader that leaves does not cancel the others' answer.
        return await asyncio.shield(future)

    async def read_asked(self):
        try:
            await asyncio.sleep(0)  # the connects of this turn of the loop join the read
            while self.asked:
                keys = list(itertools.islice(self.asked, KEYS_PER_READ))
                futures = [self.asked.pop(key) for key in keys]
                try:
                    values = await get_async_client().mget(keys)
                except asyncio.CancelledError:
                    for future in futures:
                        future.cancel()
                    raise
                except Exception as exc:
                    for future in futures:
                        future.set_exception(exc)
                    continue
                # Only this reader holds these futures (readers await them shielded).
                for future, value in zip(futures, values, strict=True):
                    future.set_result(value)
        finally:
            self.readers -= 1


session_reads = PerLoop(SessionReads)

_cache_down = False


def _failed(exc):
    global _cache_down
    if not _cache_down:
        logger.warning("session cache unavailable, using the database alone: %s", exc)
    _cache_down = True


def _worked():
    global _cache_down
    if _cache_down:
        logger.info("session cache available again")
    _cache_down = False


def _timeout(timeout):
    return SESSION_CACHE_SECONDS if timeout is None else min(timeout, SESSION_CACHE_SECONDS)


class TolerantCache:
    """The calls cached_db makes on its cache, each turning a Redis failure into a miss."""

    def __init__(self, cache):
        self._cache = cache

    def _call(self, default, method, *args):
        try:
            result = getattr(self._cache, method)(*args)
        except CACHE_ERRORS as exc:
            _failed(exc)
            return default
        _worked()
        return result

    async def _acall(self, default, method, *args):
        try:
            result = await getattr(self._cache, method)(*args)
        except CACHE_ERRORS as exc:
            _failed(exc)
            return default
        _worked()
        return result

    def get(self, key, default=None):
        return self._call(default, "get", key, default)

    async def aget(self, key, default=None):
        """Read on the event loop, with the backend's own key and serializer: Django's
        `aget` is its sync `get` in a thread (a hop, and a new client object, for every
        stream connect, which reads the session and nothing else)."""
        backend = self._cache
        try:
            raw = await session_reads().get(backend.make_and_validate_key(key))
        except CACHE_ERRORS as exc:
            _failed(exc)
            return default
        _worked()
        return default if raw is None else backend._cache._serializer.loads(raw)

    def set(self, key, value, timeout=None):
        self._call(None, "set", key, value, _timeout(timeout))

    async def aset(self, key, value, timeout=None):
        await self._acall(None, "aset", key, value, _timeout(timeout))

    def delete(self, key):
        return self._call(False, "delete", key)

    async def adelete(self, key):
        return await self._acall(False, "adelete", key)

    def __contains__(self, key):
        return self._call(False, "has_key", key)

    def __str__(self):
        return str(self._cache)


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key=None):
        super().__init__(session_key)
        self._cache = TolerantCache(self._cache)

"""asyncio primitives for code that runs on more than one event loop.

A worker has one loop, but tests, management commands and `async_to_sync` each
bring their own, and an asyncio primitive used from a loop other than its own
fails. These hand each running loop its own.
"""

import asyncio
import contextlib
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import close_old_connections


class PerLoop:
    """`per_loop()` is the running loop's own object, made by `make()` on first use there:
    a hub, a presence tracker, a semaphore (`PerLoop(lambda: asyncio.Semaphore(SIZE))`).

    Keyed weakly on the loop, so a finished loop that nothing else holds is let go."""

    def __init__(self, make):
        self.make = make
        self._by_loop = weakref.WeakKeyDictionary()

    def __call__(self):
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:
            found = self._by_loop[loop] = self.make()
        return found

    def made_here(self):
        """The running loop's object if it has one yet, else None (nothing is made)."""
        return self._by_loop.get(asyncio.get_running_loop())

    def made(self):
        """Every loop's object made so far, for work across all of them (draining)."""
        return list(self._by_loop.values())


class _SourceFailed:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


async def dispatch_in_arrival_order(sources, dispatch, backlog=64):
    """Await messages from every `source()` and `dispatch` them one at a time, in the order
    they arrive, until a source or a dispatch raises (which is raised here).

    What Channels' `await_many_dispatch` does, without a new task and an `asyncio.wait`
    for every message: each source has one feeder task for its whole life, filling a
    queue. The queue is bounded, so a source that floods waits, as it would under
    Channels, instead of being read ahead without limit."""
    queue = asyncio.Queue(backlog)

    async def feed(source):
        try:
            while True:
                await queue.put(await source())
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the dispatching loop, which raises it
            await queue.put(_SourceFailed(exc))

    feeders = [asyncio.ensure_future(feed(source)) for source in sources]
    try:
        while True:
            message = await queue.get()
            if isinstance(message, _SourceFailed):
                raise message.error
            await dispatch(message)
    finally:
        for feeder in feeders:
            feeder.cancel()
        for feeder in feeders:
            with contextlib.suppress(asyncio.CancelledError):
                await feeder


class SharedSyncThread:
    """One thread that a kind of request's Django sync steps share, in place of the thread
    Django starts per request: a storm of them never queues behind a page's database
    work, and nothing open keeps a thread of its own. Enter `context()` outermost."""

    SWEEP_SECONDS = 1.0

    def __init__(self, name):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.next_sweep = 0.0

    def context(self):
        return ThreadSensitiveContext(executor=self.executor)

    async def sweep(self):
        """What request_finished does through Django's handler, at most once a second, from
        inside `context()`, for requests served without it: nothing else would close a
        database connection opened on this thread (or drop it once the database
        restarts), and sweeping after every request would cost a thread hop each."""
        now = time.monotonic()
        if now >= self.next_sweep:
            self.next_sweep = now + self.SWEEP_SECONDS
            await sync_to_async(close_old_connections, thread_sensitive=True)()

"""asyncio primitives for code that runs on more than one event loop.

A worker has one loop, but tests, management commands and `async_to_sync` each
bring their own, and an asyncio primitive used from a loop other than its own
fails. These hand each running loop its own.
"""

import asyncio
import contextlib
import weakref


class SemaphorePerLoop:
    """`slots(size)` is the running loop's asyncio.Semaphore, created with `size` on first use."""

    def __init__(self):
        self._by_loop = weakref.WeakKeyDictionary()

    def __call__(self, size):
        loop = asyncio.get_running_loop()
        semaphore = self._by_loop.get(loop)
        if semaphore is None:
            semaphore = self._by_loop[loop] = asyncio.Semaphore(size)
        return semaphore


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

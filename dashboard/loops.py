"""asyncio primitives for code that runs on more than one event loop.

A worker has one loop, but tests, management commands and `async_to_sync` each
bring their own, and an asyncio primitive used from a loop other than its own
fails. These hand each running loop its own.
"""

import asyncio
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

"""A Redis subscriber's task ends when cancelled, whenever the cancel lands: a task
that outlives its cancel keeps its event loop (a test's, a worker's) from closing."""

import asyncio
import contextlib

from dashboard.redis import messages
from dashboard.revocation import RevocationListener
from dashboard.stream.hub import Hub

# Longer than one cancel check, far shorter than "never".
ENDS_WITHIN_SECONDS = 5.0


class SwallowsCancels:
    """A pubsub that, like redis-py while it connects, catches a cancel and reads on."""

    async def get_message(self, timeout):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(timeout)
        return None


async def test_messages_end_when_the_reader_swallowed_the_cancel():
    async def read_all():
        async for _ in messages(SwallowsCancels()):
            pass

    task = asyncio.ensure_future(read_all())
    await asyncio.sleep(0)
    task.cancel()

    done, _ = await asyncio.wait([task], timeout=ENDS_WITHIN_SECONDS)

    assert task in done and task.cancelled()


async def test_the_subscribers_end_on_a_cancel_at_any_moment_of_connecting():
    # The moments sweep the connect and subscribe, where redis-py swallowed the cancel.
    for make in (RevocationListener, Hub):
        for tenths_of_ms in range(0, 100, 5):
            subscriber = make()
            subscriber.start()
            await asyncio.sleep(tenths_of_ms / 10000)
            tasks = [t for t in (subscriber.task, getattr(subscriber, "keepalive_task", None)) if t]
            for task in tasks:
                task.cancel()

            _, pending = await asyncio.wait(tasks, timeout=ENDS_WITHIN_SECONDS)

            assert not pending, f"{make.__name__} outlived a cancel {tenths_of_ms / 10} ms after it started"

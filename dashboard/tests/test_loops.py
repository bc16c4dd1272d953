"""SemaphorePerLoop: one semaphore per running event loop, sized on first use."""

import asyncio
import threading

from dashboard.loops import SemaphorePerLoop


def test_it_gives_each_loop_its_own_semaphore_and_keeps_it():
    slots = SemaphorePerLoop()

    async def take():
        return slots(2), slots(5)

    first, again = asyncio.run(take())
    assert first is again  # the size only counts on first use
    other, _ = asyncio.run(take())
    assert other is not first


def test_it_bounds_the_work_running_at_once_on_a_loop():
    slots = SemaphorePerLoop()
    running, most = 0, 0

    async def work():
        nonlocal running, most
        async with slots(3):
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    async def many():
        await asyncio.gather(*(work() for _ in range(20)))

    asyncio.run(many())
    assert most == 3


def test_a_semaphore_is_usable_from_a_loop_in_another_thread():
    slots = SemaphorePerLoop()
    errors = []

    def in_thread():
        async def use():
            async with slots(1):
                pass

        try:
            asyncio.run(use())
        except Exception as exc:  # noqa: BLE001 (the assertion reports it)
            errors.append(exc)

    asyncio.run(asyncio.sleep(0))
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert errors == []

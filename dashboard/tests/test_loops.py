"""PerLoop: one object per running event loop, made on first use there."""

import asyncio
import functools
import threading

from dashboard.loops import PerLoop


def test_it_gives_each_loop_its_own_object_and_keeps_it():
    per_loop = PerLoop(object)

    async def take():
        return per_loop(), per_loop()

    first, again = asyncio.run(take())
    assert first is again
    other, _ = asyncio.run(take())
    assert other is not first


def test_it_lists_the_objects_it_made():
    per_loop = PerLoop(list)

    async def take():
        return per_loop(), per_loop.made()

    mine, made = asyncio.run(take())
    assert any(found is mine for found in made)


def test_semaphores_per_loop_bound_the_work_running_at_once_on_a_loop():
    slots = PerLoop(functools.partial(asyncio.Semaphore, 3))
    running, most = 0, 0

    async def work():
        nonlocal running, most
        async with slots():
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01)
            running -= 1

    async def many():
        await asyncio.gather(*(work() for _ in range(20)))

    asyncio.run(many())
    assert most == 3


def test_a_semaphore_per_loop_is_usable_from_a_loop_in_another_thread():
    slots = PerLoop(functools.partial(asyncio.Semaphore, 1))
    errors = []

    def in_thread():
        async def use():
            async with slots():
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

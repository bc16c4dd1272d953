"""Each worker hears revocations with its own listener, which both transports start
and register with, and a draining worker runs the steps the transports registered:
neither `dashboard.revocation` nor `dashboard.draining` knows a transport."""

import asyncio

import pytest

from dashboard import access, draining, revocation
from dashboard.redis import get_sync_client
from dashboard.storage import revocation_channel
from dashboard.tests.wsclient import connected

WAIT = 5.0


async def eventually(condition, timeout=WAIT):
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def heard():
    """User ids a handler registered for this test was called with."""
    ids = []

    def handler(user_id, session):
        ids.append(user_id if session is None else (user_id, session))

    revocation.on_revoked(handler)
    yield ids
    revocation._handlers.remove(handler)


@pytest.mark.usefixtures("redis_url")
async def test_a_revocation_drops_remembered_answers_and_reaches_the_registered_handlers(heard):
    remembered = access.AccessCache(seconds=60)
    remembered.put(("7", "hash"), (True, []))
    remembered.put(("8", "hash"), (True, []))
    revocation.listen()
    await asyncio.wait_for(revocation.listener().connected.wait(), WAIT)

    get_sync_client().publish(revocation_channel(), "not a user id")
    get_sync_client().publish(revocation_channel(), "7")

    await eventually(lambda: heard == [7])
    assert remembered.get(("7", "hash")) is None
    assert remembered.get(("8", "hash")) == (True, [])


@pytest.mark.usefixtures("redis_url")
async def test_one_session_ending_reaches_the_handlers_and_keeps_the_users_answers(heard):
    remembered = access.AccessCache(seconds=60)
    remembered.put(("7", "hash"), (True, []))
    revocation.listen()
    await asyncio.wait_for(revocation.listener().connected.wait(), WAIT)

    get_sync_client().publish(revocation_channel(), "7 " + revocation.session_tag("some-session-key"))

    await eventually(lambda: heard == [(7, revocation.session_tag("some-session-key"))])
    assert remembered.get(("7", "hash")) == (True, [])


def test_the_sse_hub_registers_ending_a_users_streams():
    from dashboard.stream import hub

    assert hub.end_streams_of in revocation._handlers


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_url")
async def test_a_socket_starts_its_workers_listener_without_the_sse_hub(alice):
    async with connected(alice):
        listening = revocation.listener().task
        assert listening is not None and not listening.done()
        await asyncio.wait_for(revocation.listener().connected.wait(), WAIT)


@pytest.fixture
def own_steps():
    """drain() with only this test's steps, and the worker not draining afterwards."""
    registered = list(draining._steps)
    draining._steps.clear()
    yield
    draining._steps[:] = registered
    draining._draining = False


@pytest.mark.usefixtures("own_steps")
async def test_draining_runs_each_registered_step_once_sync_or_async(caplog):
    ran = []

    def end_streams():
        ran.append("streams")
        return 2

    async def close_sockets():
        ran.append("sockets")
        return 3

    draining.on_drain("streams ended", end_streams)
    draining.on_drain("sockets closed", close_sockets)
    draining.on_drain("streams ended", end_streams)  # registering again changes nothing
    with caplog.at_level("INFO", logger="dashboard.draining"):
        assert await draining.drain(timeout=1.0)
    assert ran == ["streams", "sockets"]
    assert draining.is_draining()
    assert "draining: streams ended: 2, sockets closed: 3" in caplog.text


def test_both_transports_register_their_draining_step():
    from dashboard.control.sockets import close_all_sockets
    from dashboard.stream.hub import end_all_streams

    steps = [step for _, step in draining._steps]
    assert end_all_streams in steps
    assert close_all_sockets in steps

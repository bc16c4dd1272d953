"""Connecting: the handshake completes once the user is authenticated, the setup follows it."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import override_settings

from dashboard import access
from dashboard.access import AccessCache
from dashboard.control import protocol
from dashboard.tests.wsclient import WAIT, Client, communicator_for, connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_url")]


async def test_hello_comes_first_and_earlier_messages_are_answered_after_it(alice):
    communicator = communicator_for(alice)
    accepted, _ = await communicator.connect(timeout=WAIT)
    assert accepted
    client = Client(communicator)
    # Sent while the consumer may still be reading the hello state.
    await client.send({"type": "ping", "id": "early-1"})
    await client.send({"type": "nonsense", "id": "early-2"})
    try:
        first = await client.next()
        # Presence broadcasts may come between; the replies must follow hello, in order.
        second, third = await _reply(client), await _reply(client)
        assert first["type"] == "hello"
        assert (second["type"], second["id"]) == ("pong", "early-1")
        assert (third["type"], third["code"], third["id"]) == ("error", protocol.UNKNOWN_TYPE, "early-2")
    finally:
        await communicator.disconnect()


async def test_it_closes_with_4011_when_redis_is_away_after_accepting(alice, unused_tcp_port):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{unused_tcp_port}/0"):
        communicator = communicator_for(alice)
        accepted, _ = await communicator.connect(timeout=WAIT)
        assert accepted
        assert await Client(communicator).closed() == protocol.CLOSE_SETUP_FAILED == 4011


async def test_a_granted_permission_applies_at_once_though_answers_are_remembered(alice, monkeypatch):
    monkeypatch.setattr(access, "cache", AccessCache(seconds=60))
    async with connected(alice) as (_, hello):
        assert hello["can_control"] is False
    change = await database_sync_to_async(Permission.objects.get)(codename="change_metric")
    # The change is a revocation (dashboard.revocation): every worker forgets what it
    # remembered about alice, so the next socket is decided afresh.
    await database_sync_to_async(alice.user_permissions.add)(change)
    await asyncio.sleep(0.3)  # the revocation crosses Redis to this worker's hub

    # A new socket gets a freshly loaded user, as it would from a session.
    fresh = await database_sync_to_async(User.objects.get)(pk=alice.pk)
    async with connected(fresh) as (client, hello):
        assert hello["can_control"] is True
        ack = await client.answer({"type": "pause", "id": "p"})
        assert ack["type"] == "ack"
        await client.answer({"type": "resume", "id": "r"})


async def test_a_new_login_of_the_same_user_is_not_served_a_cached_answer(alice):
    async with connected(alice) as (_, hello):
        assert hello["can_control"] is False

    def grant_and_change_password():
        alice.user_permissions.add(Permission.objects.get(codename="change_metric"))
        alice.set_password("a different password 123")
        alice.save()
        return User.objects.get(pk=alice.pk)

    relogged = await database_sync_to_async(grant_and_change_password)()
    async with connected(relogged) as (_, hello):
        assert hello["can_control"] is True


async def _reply(client):
    """The next message that is not a presence broadcast."""
    while (message := await client.next())["type"] == "presence":
        pass
    return message

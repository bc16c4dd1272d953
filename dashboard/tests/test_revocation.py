"""Revoking access closes the user's open sockets on every worker: real daphne
workers in their own processes, the change made here, in another process."""

import asyncio
import time

import pytest
from asgiref.sync import sync_to_async

from dashboard.control import protocol
from tests.realclients import open_socket, session_cookie

pytestmark = pytest.mark.slow


def remove_view_metric(user):
    from django.contrib.auth.models import Permission

    user.user_permissions.remove(Permission.objects.get(codename="view_metric"))


def deactivate(user):
    user.is_active = False
    user.save()


def change_password(user):
    user.set_password("a-new-password-nobody-knows")
    user.save()


def group_loses_permission(user):
    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="viewers")
    permission = Permission.objects.get(codename="change_metric")
    group.permissions.add(permission)
    user.groups.add(group)
    return lambda: group.permissions.remove(permission)


def log_out(user, cookies):
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookies[settings.SESSION_COOKIE_NAME]
    assert client.post("/accounts/logout/").status_code == 302


CHANGES = {
    "permission removed": lambda user, cookies: remove_view_metric(user),
    "deactivated": lambda user, cookies: deactivate(user),
    "password changed": lambda user, cookies: change_password(user),
    "logged out": log_out,
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_revocation_closes_the_users_sockets_on_every_worker(daphne_workers, alice, bob, change):
    workers = daphne_workers(2)
    alice_cookies = await sync_to_async(session_cookie)(alice)
    bob_cookies = await sync_to_async(session_cookie)(bob)
    async with (
        open_socket(workers[0], alice_cookies) as first,
        open_socket(workers[1], alice_cookies) as second,
        open_socket(workers[1], bob_cookies) as bystander,
    ):
        for socket in (first, second, bystander):
            await socket.wait_for(lambda m: m.get("type") == "hello")
        started = time.monotonic()
        await sync_to_async(CHANGES[change])(alice, alice_cookies)
        codes = await asyncio.gather(first.closed(), second.closed())
        elapsed = time.monotonic() - started
        assert codes == [protocol.CLOSE_REVOKED] * 2
        # Someone else's socket carries on.
        assert (await bystander.command("ping"))["type"] == "pong"
    print(f"{change}: both sockets closed {elapsed:.2f}s after the change")


async def test_a_group_losing_a_permission_closes_its_members_sockets(daphne_workers, alice):
    (worker,) = daphne_workers(1)
    cookies = await sync_to_async(session_cookie)(alice)
    revoke = await sync_to_async(group_loses_permission)(alice)
    async with open_socket(worker, cookies) as socket:
        hello = await socket.wait_for(lambda m: m.get("type") == "hello")
        assert hello["can_control"] is True
        await sync_to_async(revoke)()
        assert await socket.closed() == protocol.CLOSE_REVOKED
    # The reconnect is answered from the database, not the worker's remembered answer.
    async with open_socket(worker, cookies) as socket:
        hello = await socket.wait_for(lambda m: m.get("type") == "hello")
        assert hello["can_control"] is False


async def test_a_login_does_not_close_anything(daphne_workers, alice):
    from django.contrib.auth.models import User
    from django.utils import timezone

    (worker,) = daphne_workers(1)
    cookies = await sync_to_async(session_cookie)(alice)
    async with open_socket(worker, cookies) as socket:
        await socket.wait_for(lambda m: m.get("type") == "hello")
        alice.last_login = timezone.now()
        await sync_to_async(alice.save)(update_fields=["last_login"])
        await sync_to_async(User.objects.get)(pk=alice.pk)
        await asyncio.sleep(0.5)
        assert (await socket.command("ping"))["type"] == "pong"


@pytest.mark.parametrize("change", ["permission removed", "logged out"])
async def test_a_revocation_ends_the_users_streams_on_every_worker(daphne_workers, alice, bob, change):
    from tests.realclients import EventStream

    workers = daphne_workers(2)
    alice_cookies = await sync_to_async(session_cookie)(alice)
    bob_cookies = await sync_to_async(session_cookie)(bob)
    channels = ["metrics", f"user-{alice.pk}"]
    async with (
        EventStream(workers[0], channels, alice_cookies) as first,
        EventStream(workers[1], [f"user-{alice.pk}"], alice_cookies) as second,
        EventStream(workers[1], ["metrics"], bob_cookies) as bystander,
    ):
        for stream in (first, second, bystander):
            assert stream.status == 200
            await stream.wait_for(lambda e: e["event"] == "stream-open")
        started = time.monotonic()
        await sync_to_async(CHANGES[change])(alice, alice_cookies)
        await asyncio.wait_for(asyncio.gather(first.ended.wait(), second.ended.wait()), 10)
        elapsed = time.monotonic() - started
        assert not bystander.ended.is_set()
    # Asked again, the worker answers from what alice may have now.
    async with EventStream(workers[0], ["metrics"], alice_cookies) as again:
        assert again.status == 403
    print(f"{change}: both streams ended {elapsed:.2f}s after the change")


async def test_a_user_holds_at_most_the_cap_of_streams_and_sockets(daphne_workers, alice, bob):

    from tests.realclients import EventStream

    (worker,) = daphne_workers(1, env={"MAX_CONNECTIONS_PER_USER": "2"})
    alice_cookies = await sync_to_async(session_cookie)(alice)
    bob_cookies = await sync_to_async(session_cookie)(bob)
    async with (
        EventStream(worker, ["metrics"], alice_cookies) as one,
        EventStream(worker, ["metrics"], alice_cookies) as two,
    ):
        assert (one.status, two.status) == (200, 200)
        async with EventStream(worker, ["metrics"], alice_cookies) as three:
            assert three.status == 429
        async with EventStream(worker, ["metrics"], bob_cookies) as others:
            assert others.status == 200  # the cap is per user
    # Closed streams give their places back.
    async with EventStream(worker, ["metrics"], alice_cookies) as again:
        assert again.status == 200

    async with open_socket(worker, alice_cookies) as first, open_socket(worker, alice_cookies) as second:
        for socket in (first, second):
            await socket.wait_for(lambda m: m.get("type") == "hello")
        async with open_socket(worker, alice_cookies) as third:
            error = await third.wait_for(lambda m: m.get("type") == "error")
            assert error["code"] == "rate_limited" and "at most 2" in error["message"]
            assert await third.closed() == protocol.CLOSE_POLICY_VIOLATION
            assert not third.of_type("hello")
    async with open_socket(worker, alice_cookies) as fourth:
        await fourth.wait_for(lambda m: m.get("type") == "hello")


def test_the_edge_is_told_twice_so_a_connection_pushpin_was_still_subscribing_is_closed(
    redis_url, settings, monkeypatch
):
    from dashboard import revocation

    settings.GRIP_URL = "http://127.0.0.1:5561?iss=pushpin&key=base64:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"
    closed = []
    monkeypatch.setattr(
        revocation, "_close_at_the_edge", lambda user_id: closed.append((user_id, time.monotonic()))
    )
    started = time.monotonic()
    revocation._broadcast([7])
    deadline = started + 10
    while len(closed) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [user_id for user_id, _ in closed] == [7, 7]
    assert closed[1][1] - closed[0][1] >= revocation.EDGE_CLOSE_AGAIN_SECONDS * 0.9

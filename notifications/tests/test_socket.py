"""End to end: notifications on the dashboard socket of real web workers.

Notifications are sent from separate OS processes (`manage.py notify`) or from
this test process; clients are real WebSockets with a session cookie and the
page's Origin, so everything crosses the Redis channel layer and the database.
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group

from notifications.models import NotificationRead
from notifications.services import notify
from tests.realclients import open_socket, session_cookie

pytestmark = pytest.mark.slow

# Long enough for a push that was going to arrive to have arrived.
SETTLE = 1.0


@pytest.fixture
def workers(web_workers):
    return web_workers(2)


@pytest.fixture
def cookies(alice, bob):
    return {"alice": session_cookie(alice), "bob": session_cookie(bob)}


async def hello(socket):
    return (await socket.wait_for(lambda m: m.get("type") == "hello"))["notifications"]


async def notification_titled(socket, title):
    return await socket.wait_for(
        lambda m: m.get("type") == "notification" and m["notification"]["title"] == title,
        message=f"the notification {title!r}",
    )


async def mark_read(socket, target):
    """The protocol uses `id` for the notification, so the answer echoes that id."""
    await socket.send({"type": "mark_read", "id": target})
    return await socket.wait_for(
        lambda m: m.get("type") in ("ack", "error") and m.get("id") == target,
        message=f"the answer to mark_read {target}",
    )


def titles(socket):
    return [m["notification"]["title"] for m in socket.of_type("notification")]


async def test_a_notification_from_another_process_reaches_every_tab_on_every_worker(
    workers, cookies, manage
):
    async with (
        open_socket(workers[0], cookies["alice"]) as tab_one,
        open_socket(workers[1], cookies["alice"]) as tab_two,
    ):
        await hello(tab_one)
        await hello(tab_two)
        command = ["notify", "--user", "alice", "--level", "warning", "--body", "93% used", "Disk full"]
        result = await asyncio.to_thread(manage, *command)
        assert result.returncode == 0, result.stderr

        for tab in (tab_one, tab_two):
            message = await notification_titled(tab, "Disk full")
            assert message["notification"]["level"] == "warning"
            assert message["notification"]["body"] == "93% used"
            assert message["unread"] == 1


async def test_a_user_offline_at_the_time_gets_it_in_hello(workers, cookies, manage):
    result = await asyncio.to_thread(manage, "notify", "--user", "bob", "While you were away")
    assert result.returncode == 0, result.stderr

    async with open_socket(workers[0], cookies["bob"]) as socket:
        state = await hello(socket)
    assert state["unread"] == 1
    assert [n["title"] for n in state["recent"]] == ["While you were away"]
    assert state["recent"][0]["read"] is False


async def test_a_reconnect_gets_exactly_the_missed_ones_and_nothing_twice(workers, cookies, alice, bob):
    seen = await database_sync_to_async(notify)(alice, "seen")
    async with open_socket(workers[0], cookies["alice"]) as socket:
        state = await hello(socket)
        assert [n["id"] for n in state["recent"]] == [seen.pk]

    missed = [
        await database_sync_to_async(notify)(alice, "missed 1"),
        await database_sync_to_async(notify)(None, "missed 2"),
    ]
    await database_sync_to_async(notify)(bob, "for bob")

    async with open_socket(workers[1], cookies["alice"], query=f"last_notification={seen.pk}") as socket:
        state = await hello(socket)
        assert [n["id"] for n in state["missed"]] == [m.pk for m in missed]
        live = await database_sync_to_async(notify)(alice, "live")
        await notification_titled(socket, "live")
        await asyncio.sleep(SETTLE)
        # Only the new one is pushed; the missed ones came once, in the hello.
        assert titles(socket) == ["live"]
        assert socket.of_type("notification")[0]["notification"]["id"] == live.pk


async def test_mark_read_updates_the_count_in_every_tab_of_that_user_only(workers, cookies, alice, bob):
    async with (
        open_socket(workers[0], cookies["alice"]) as tab_one,
        open_socket(workers[1], cookies["alice"]) as tab_two,
        open_socket(workers[1], cookies["bob"]) as bobs_tab,
    ):
        for socket in (tab_one, tab_two, bobs_tab):
            await hello(socket)
        broadcast = await database_sync_to_async(notify)(None, "For everyone")
        await notification_titled(tab_two, "For everyone")
        await notification_titled(bobs_tab, "For everyone")

        answer = await mark_read(tab_one, broadcast.pk)
        assert answer["type"] == "ack"
        assert answer["unread"] == 0

        update = await tab_two.wait_for(lambda m: m.get("type") == "unread")
        assert update["count"] == 0
        await asyncio.sleep(SETTLE)
        assert bobs_tab.of_type("unread") == []

    async with open_socket(workers[0], cookies["bob"]) as socket:
        assert (await hello(socket))["unread"] == 1  # Alice's read is hers alone.


async def test_bob_can_neither_mark_nor_receive_alices_notifications(workers, cookies, alice, bob):
    ops = await database_sync_to_async(Group.objects.create)(name="ops")
    await database_sync_to_async(alice.groups.add)(ops)
    async with (
        open_socket(workers[0], cookies["alice"]) as alices_tab,
        open_socket(workers[1], cookies["bob"]) as bobs_tab,
    ):
        await hello(alices_tab)
        await hello(bobs_tab)
        private = await database_sync_to_async(notify)(alice, "Private")
        for_ops = await database_sync_to_async(notify)(ops, "For ops")
        await database_sync_to_async(notify)(None, "Sync point")
        await notification_titled(alices_tab, "Private")
        await notification_titled(alices_tab, "For ops")
        await notification_titled(bobs_tab, "Sync point")
        await asyncio.sleep(SETTLE)
        assert titles(bobs_tab) == ["Sync point"]

        for notification in (private, for_ops):
            answer = await mark_read(bobs_tab, notification.pk)
            assert answer["type"] == "error"
            assert answer["code"] == "not_found"  # as for an id that does not exist
        missing = await mark_read(bobs_tab, private.pk + 1000)
        assert missing["code"] == "not_found"

        await asyncio.sleep(SETTLE)
        assert alices_tab.of_type("unread") == []
    assert not await database_sync_to_async(NotificationRead.objects.exists)()
    async with open_socket(workers[0], cookies["alice"]) as socket:
        assert (await hello(socket))["unread"] == 3

"""The dashboard socket, message by message, on the real Redis channel layer."""

import json
import time

import pytest
from channels.db import database_sync_to_async

from dashboard.collector import sampling
from dashboard.control import presence, protocol
from dashboard.tests.wsclient import communicator_for, connected

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_url")]


async def test_it_refuses_an_anonymous_user_with_4401():
    from django.contrib.auth.models import AnonymousUser

    communicator = communicator_for(AnonymousUser())
    accepted, code = await communicator.connect()
    assert (accepted, code) == (False, 4401)


async def test_it_says_hello_with_user_state_and_protocol(alice):
    await sampling.aset_interval(2)
    async with connected(alice) as (_, hello):
        assert hello["user"] == {"id": alice.pk, "username": "alice"}
        assert hello["protocol"] == 1
        assert abs(hello["server_time"] - time.time()) < 5
        assert (hello["interval"], hello["paused"]) == (2.0, False)
        assert hello["can_control"] is False
        assert {"id": alice.pk, "username": "alice"} in hello["online"]
        assert set(hello["notifications"]) == {"unread", "recent", "missed"}


async def test_it_offers_control_to_staff_with_the_permission_and_to_superusers(staff, admin_user):
    for user in (staff, admin_user):
        async with connected(user) as (_, hello):
            assert hello["can_control"] is True


async def test_it_answers_ping_with_the_server_time(alice):
    async with connected(alice) as (client, _):
        pong = await client.answer({"type": "ping", "id": "p1"})
        assert pong["type"] == "pong"
        assert abs(pong["server_time"] - time.time()) < 5


async def test_set_interval_reaches_every_dashboard_and_the_collector_state(staff, bob):
    async with connected(staff) as (operator, _), connected(bob) as (viewer, _):
        ack = await operator.answer({"type": "set_interval", "seconds": 5, "id": 1})
        assert ack == {"type": "ack", "id": 1, "interval": 5.0}
        changed = await viewer.wait_for_type("interval_changed")
        assert (changed["interval"], changed["by"]) == (5.0, "staff")
        assert (await sampling.aget_state()).interval == 5.0


async def test_it_forbids_sampling_commands_without_the_permission(alice):
    before = await sampling.aget_state()
    async with connected(alice) as (client, _):
        for command in ({"type": "set_interval", "seconds": 5}, {"type": "pause"}, {"type": "resume"}):
            error = await client.answer({**command, "id": command["type"]})
            assert error["code"] == "forbidden"
        await client.nothing_more("interval_changed")
    assert await sampling.aget_state() == before


async def test_pause_and_resume_reach_every_dashboard(admin_user, alice):
    async with connected(admin_user) as (operator, _), connected(alice) as (viewer, _):
        assert (await operator.answer({"type": "pause", "id": "a"}))["paused"] is True
        state = await viewer.wait_for_type("sampling_state")
        assert state["paused"] is True and state["interval"] == 1.0
        assert (await sampling.aget_state()).paused

        assert (await operator.answer({"type": "resume", "id": "b"}))["paused"] is False
        assert (await viewer.wait_for_type("sampling_state"))["paused"] is False
        assert not (await sampling.aget_state()).paused


async def test_snapshot_is_empty_before_the_first_frame(alice):
    async with connected(alice) as (client, _):
        snapshot = await client.answer({"type": "snapshot", "id": "s"})
        assert (snapshot["type"], snapshot["values"], snapshot["ts"]) == ("snapshot", {}, None)


async def test_snapshot_has_the_latest_frame_and_newer_custom_metrics(alice):
    from dashboard.live import publish_frame, send

    publish_frame(1, 100.0, {"cpu": 10.0, "memory": 50.0})
    publish_frame(2, 101.0, {"cpu": 12.5, "memory": 51.0})
    send("metrics", "metric", {"name": "orders", "value": 7, "ts": 101.5})
    async with connected(alice) as (client, _):
        snapshot = await client.answer({"type": "snapshot", "id": 9})
    assert snapshot["values"] == {"cpu": 12.5, "memory": 51.0, "orders": 7}
    assert snapshot["ts"] == 101.5


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", "bad_json"),
        ("", "bad_json"),
        ("[1, 2]", "invalid"),
        ("42", "invalid"),
        ('{"id": 1}', "invalid"),
        ('{"type": "launch", "id": 1}', "unknown_type"),
        ('{"type": "set_interval", "seconds": "fast", "id": 1}', "invalid"),
        ('{"type": "set_interval", "seconds": 1000, "id": 1}', "invalid"),
        ('{"type": "ping", "id": {"deep": 1}}', "invalid"),
        ('{"type": "mark_read", "id": -4}', "invalid"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_open(staff, frame, code):
    async with connected(staff) as (client, _):
        await client.send(frame)
        error = await client.wait_for_type("error")
        assert error["code"] == code
        assert error["message"]
        assert (await client.answer({"type": "ping", "id": "still-there"}))["type"] == "pong"


async def test_an_error_echoes_the_client_id(alice):
    async with connected(alice) as (client, _):
        error = await client.answer({"type": "bogus", "id": "x-1"})
        assert error == {"type": "error", "code": "unknown_type", "message": error["message"], "id": "x-1"}


async def test_a_binary_frame_is_bad_json(alice):
    async with connected(alice) as (client, _):
        await client.send(b'{"type": "ping"}')
        assert (await client.wait_for_type("error"))["code"] == "bad_json"


async def test_a_frame_over_64_kib_is_too_large_and_closes_with_4009(alice):
    async with connected(alice) as (client, _):
        await client.send(json.dumps({"type": "ping", "pad": "x" * 65_536}))
        assert (await client.wait_for_type("error"))["code"] == "too_large"
        assert await client.closed() == protocol.CLOSE_TOO_LARGE == 4009


async def test_a_burst_over_the_limit_is_rate_limited_but_not_closed(alice):
    async with connected(alice) as (client, _):
        for n in range(50):
            await client.send({"type": "ping", "id": n})
        replies = [await client.wait_for(lambda m: m["type"] in ("pong", "error")) for _ in range(50)]
        assert [m["type"] for m in replies].count("pong") == 40
        assert {m["code"] for m in replies if m["type"] == "error"} == {"rate_limited"}
        await client.nothing_more("error", within=0.3)


async def test_a_sustained_flood_is_closed_with_4008(alice):
    async with connected(alice) as (client, _):
        for n in range(100):
            await client.send({"type": "ping", "id": n})
        assert await client.closed() == protocol.CLOSE_POLICY_VIOLATION == 4008


async def test_group_events_skip_the_per_message_database_cleanup(alice, monkeypatch):
    import channels.consumer

    cleanups = []
    original = channels.consumer.aclose_old_connections

    async def counting():
        cleanups.append(1)
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    async with connected(alice) as (client, _):
        after_connect = len(cleanups)
        for n in range(5):
            await client.answer({"type": "ping", "id": n})
        await client.answer({"type": "snapshot", "id": "s"})
        assert len(cleanups) == after_connect


async def test_presence_tells_others_who_joined_and_who_left(alice, bob):
    async with connected(alice) as (watcher, _):
        async with connected(bob):
            joined = await watcher.wait_for(
                lambda m: m["type"] == "presence" and "bob" in {p["username"] for p in m["online"]}
            )
            assert joined["count"] == 2
        left = await watcher.wait_for(
            lambda m: m["type"] == "presence" and "bob" not in {p["username"] for p in m["online"]}
        )
        assert [p["username"] for p in left["online"]] == ["alice"]


async def test_a_user_without_permission_sees_no_one_elses_username(alice, bob, charlie):
    async with connected(alice), connected(bob), connected(charlie) as (client, hello):
        assert hello["online"] == [{"id": charlie.pk, "username": "charlie"}]
        async with connected(alice):  # a join anyone else would hear about
            # A broadcast coalesced before charlie was counted may come first; it names
            # no one charlie may see, so it is empty.
            update = await client.wait_for(lambda m: m["type"] == "presence" and (m["online"] or m["count"]))
        assert update["online"] == [{"id": charlie.pk, "username": "charlie"}]
        assert update["count"] == 1


async def test_a_user_with_two_tabs_stays_online_until_both_close(alice, bob):
    def bob_online(message):
        return "bob" in {p["username"] for p in message["online"]}

    async with connected(alice) as (watcher, _), connected(bob):
        async with connected(bob):
            await watcher.wait_for(lambda m: m["type"] == "presence" and bob_online(m))
        await watcher.nothing_more("presence", within=1.5, where=lambda m: not bob_online(m))
        assert "bob" in {p["username"] for p in await presence.online()}


# Notifications on the socket (the notifications app provides the services).


@database_sync_to_async
def notify(*args, **kwargs):
    from notifications.services import notify

    return notify(*args, **kwargs).pk


async def test_hello_carries_unread_and_missed_notifications(alice):
    first = await notify(alice, "One")
    second = await notify(alice, "Two")
    async with connected(alice, f"?last_notification={first}") as (_, hello):
        notifications = hello["notifications"]
        assert notifications["unread"] == 2
        assert [n["id"] for n in notifications["missed"]] == [second]


async def test_an_invalid_last_notification_is_ignored(alice):
    await notify(alice, "One")
    async with connected(alice, "?last_notification=abc") as (_, hello):
        assert hello["notifications"]["missed"] == []
        assert hello["notifications"]["unread"] == 1


async def test_a_new_notification_arrives_with_the_unread_count(alice):
    await notify(alice, "Old")
    async with connected(alice) as (client, _):
        pk = await notify(alice, "Disk almost full", level="warning")
        message = await client.wait_for_type("notification")
        assert message["notification"]["id"] == pk
        assert message["notification"]["title"] == "Disk almost full"
        assert message["unread"] == 2


async def test_mark_read_acks_and_updates_every_tab_of_that_user(alice):
    pk = await notify(alice, "Read me")
    async with connected(alice) as (tab1, _), connected(alice) as (tab2, _):
        ack = await tab1.answer({"type": "mark_read", "id": pk})
        assert ack == {"type": "ack", "id": pk, "unread": 0}
        assert (await tab2.wait_for_type("unread"))["count"] == 0


async def test_mark_all_read(alice):
    await notify(alice, "One")
    await notify(None, "Everyone")
    async with connected(alice) as (client, hello):
        assert hello["notifications"]["unread"] == 2
        assert (await client.answer({"type": "mark_read", "id": "all"}))["unread"] == 0


async def test_marking_someone_elses_notification_is_not_found_and_changes_nothing(alice, bob):
    pk = await notify(alice, "For alice only")
    async with connected(bob) as (client, _):
        error = await client.answer({"type": "mark_read", "id": pk})
        missing = await client.answer({"type": "mark_read", "id": pk + 1000})
        # Whether the id exists is none of bob's business: the same code and wording.
        assert (error["type"], error["code"]) == ("error", "not_found")
        assert error["message"] == missing["message"].replace(str(pk + 1000), str(pk))
    async with connected(alice) as (_, hello):
        assert hello["notifications"]["unread"] == 1


async def test_marking_a_missing_notification_is_not_found(alice):
    async with connected(alice) as (client, _):
        error = await client.answer({"type": "mark_read", "id": 999_999})
        assert (error["type"], error["code"]) == ("error", "not_found")


async def test_bob_never_receives_alices_notifications(alice, bob):
    async with connected(bob) as (client, _):
        await notify(alice, "Private")
        await client.nothing_more("notification", within=0.5)


async def test_a_storm_of_one_user_s_sockets_reads_the_hello_state_once(alice, monkeypatch):
    import asyncio
    import contextlib

    from dashboard.control import hello
    from notifications import services

    calls = []
    real = services.hello_state

    def counted(user, since_id=None, language=None):
        calls.append(user.pk)
        return real(user, since_id, language)

    monkeypatch.setattr(services, "hello_state", counted)
    hello.hello_cache.clear()
    async with contextlib.AsyncExitStack() as stack:
        hellos = await asyncio.gather(*(stack.enter_async_context(connected(alice)) for _ in range(12)))
    assert calls == [alice.pk]
    assert len({json.dumps(hello["notifications"], sort_keys=True) for _, hello in hellos}) == 1


async def test_a_cached_hello_never_hides_a_newer_notification_or_read_mark(alice):
    from dashboard.control import hello
    from notifications.services import notify

    hello.hello_cache.clear()
    async with connected(alice) as (_, hello):
        assert hello["notifications"]["unread"] == 0
    created = await database_sync_to_async(notify)(alice, "disk almost full")
    # Well within the cache's lifetime: the new version makes the next socket read again.
    async with connected(alice) as (client, hello):
        assert hello["notifications"]["unread"] == 1
        assert [n["id"] for n in hello["notifications"]["recent"]] == [created.pk]
        await client.answer({"type": "mark_read", "id": created.pk})
    async with connected(alice) as (_, hello):
        assert hello["notifications"]["unread"] == 0
        assert hello["notifications"]["recent"][0]["read"] is True


async def test_a_broadcast_is_decoded_and_encoded_once_for_every_socket_of_the_worker(
    staff, alice, bob, monkeypatch
):
    """The WebSocket broadcast's cost per socket is its send: the group event is one object
    for every local socket (dashboard.control.layer), encoded once (send_shared)."""
    from channels.layers import get_channel_layer

    from dashboard.control.consumers import DashboardConsumer
    from dashboard.control.events import sampling_changed

    encoded = []
    real_encode = DashboardConsumer.encode_json.__func__

    async def counting_encode(cls, content):
        if content.get("type") == "interval_changed":
            encoded.append(content)
        return await real_encode(cls, content)

    monkeypatch.setattr(DashboardConsumer, "encode_json", classmethod(counting_encode))
    async with connected(staff) as (one, _), connected(alice) as (two, _), connected(bob) as (three, _):
        state = sampling.SamplingState(interval=7.0, paused=False)
        await get_channel_layer().group_send("dashboard", sampling_changed("interval", state, "staff"))
        for client in (one, two, three):
            changed = await client.wait_for_type("interval_changed")
            assert (changed["interval"], changed["by"]) == (7.0, "staff")
    assert len(encoded) == 1

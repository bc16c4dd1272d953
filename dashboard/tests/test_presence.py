"""Presence: expiring entries in real Redis and coalesced broadcasts on the real channel layer."""

import asyncio
import time

import pytest
from channels.layers import get_channel_layer

from dashboard.control import presence
from dashboard.redis import get_async_client

pytestmark = pytest.mark.usefixtures("redis_url")


async def listen_to_dashboard_group():
    """A channel in the `dashboard` group, and a function draining what it received."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(presence.DASHBOARD_GROUP, channel)

    async def received(within, stamped=False):
        loop = asyncio.get_running_loop()
        messages = []
        deadline = loop.time() + within
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(layer.receive(channel), remaining)
            except TimeoutError:
                break
            messages.append((loop.time(), message) if stamped else message)
        return messages

    return received


async def test_a_joined_user_is_online_until_they_leave():
    tracker = presence.Tracker()
    await tracker.join(1, "alice")
    assert await presence.online() == [{"id": 1, "username": "alice"}]
    await tracker.leave(1)
    assert await presence.online() == []


async def test_a_user_leaves_only_when_their_last_socket_closes():
    tracker = presence.Tracker()
    await tracker.join(1, "alice")
    await tracker.join(1, "alice")
    await tracker.leave(1)
    assert await presence.online() == [{"id": 1, "username": "alice"}]
    await tracker.leave(1)
    assert await presence.online() == []


async def test_a_user_on_two_workers_is_listed_once(monkeypatch):
    await presence.Tracker().join(1, "alice")
    monkeypatch.setattr(presence, "WORKER_ID", "other-worker")
    await presence.Tracker().join(1, "alice")
    assert await presence.online() == [{"id": 1, "username": "alice"}]


async def test_the_online_list_is_sorted_by_username():
    tracker = presence.Tracker()
    for user_id, name in [(3, "carol"), (1, "alice"), (2, "bob")]:
        await tracker.join(user_id, name)
    assert [p["username"] for p in await presence.online()] == ["alice", "bob", "carol"]


async def test_a_dead_workers_entries_expire_and_the_next_refresh_tells_everyone():
    # A worker that died 31 s ago: its entry's expiry has passed and nobody refreshed it.
    await get_async_client().zadd(presence._presence_key(), {"dead-worker|9|ghost": time.time() - 1})
    assert await presence.online() == []

    received = await listen_to_dashboard_group()
    live = presence.Tracker()
    await live.join(1, "alice")
    await received(1.2)  # alice's own join broadcast
    await live.refresh()
    updates = await received(1.5)
    assert [m["online"] for m in updates] == [[{"id": 1, "username": "alice"}]]
    members = await get_async_client().zrange(presence._presence_key(), 0, -1)
    assert members == [presence._member(1, "alice").encode()]


async def test_refresh_pushes_this_workers_expiry_forward(monkeypatch):
    tracker = presence.Tracker()
    await tracker.join(1, "alice")
    monkeypatch.setattr(presence, "ENTRY_TTL", 300.0)
    await tracker.refresh()
    score = await get_async_client().zscore(presence._presence_key(), presence._member(1, "alice"))
    assert score > time.time() + 200


async def test_entries_vanish_when_their_worker_stops_refreshing(monkeypatch):
    monkeypatch.setattr(presence, "ENTRY_TTL", 0.3)
    await presence.Tracker().join(1, "alice")
    assert await presence.online() != []
    await asyncio.sleep(0.5)
    assert await presence.online() == []


async def test_a_crowd_joining_at_once_costs_at_most_one_broadcast_per_second():
    received = await listen_to_dashboard_group()
    tracker = presence.Tracker()
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(tracker.join(n, f"user{n:03}") for n in range(200)))
    joined_in = asyncio.get_running_loop().time() - started
    updates = await received(2.5)
    # One right away, then one for everything that joined during the next second.
    assert 1 <= len(updates) <= 2 + int(joined_in)
    assert len(updates[-1]["online"]) == 200


async def test_broadcasts_are_spaced_by_at_least_a_second(monkeypatch):
    # Stamped when sent, not when received: arrival times jitter on a loaded machine.
    sent_at = []
    real_broadcast = presence.broadcast

    async def stamped_broadcast():
        sent_at.append(asyncio.get_running_loop().time())
        await real_broadcast()

    monkeypatch.setattr(presence, "broadcast", stamped_broadcast)
    received = await listen_to_dashboard_group()
    tracker = presence.Tracker()
    for n in range(5):
        await tracker.join(n, f"user{n}")
        await asyncio.sleep(0.3)
    updates = await received(2.5)
    assert all(later - earlier >= 0.99 for earlier, later in zip(sent_at, sent_at[1:], strict=False))
    assert 2 <= len(sent_at) < 5  # never one per join
    assert len(updates) == len(sent_at)
    assert len(updates[-1]["online"]) == 5

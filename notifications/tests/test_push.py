"""Pushes go through the real Redis channel layer, and only after the commit."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import Group
from django.db import transaction

from notifications.services import notify

pytestmark = pytest.mark.django_db(transaction=True)


async def listen(group):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    return layer, channel


async def receive(layer, channel, timeout=5):
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def test_a_notification_is_pushed_to_its_users_group(redis_url, alice):
    layer, channel = await listen(f"notify.user.{alice.pk}")
    notification = await database_sync_to_async(notify)(alice, "Disk almost full", level="warning")

    message = await receive(layer, channel)
    assert message["type"] == "notification.message"
    assert message["notification"]["id"] == notification.pk
    assert message["notification"]["title"] == "Disk almost full"
    assert message["notification"]["level"] == "warning"


async def test_group_and_broadcast_notifications_go_to_their_groups(redis_url, alice):
    ops = await database_sync_to_async(Group.objects.create)(name="ops")
    layer, ops_channel = await listen(f"notify.group.{ops.pk}")
    _, all_channel = await listen("notify.all")

    await database_sync_to_async(notify)(ops, "for ops")
    await database_sync_to_async(notify)(None, "for everyone")

    assert (await receive(layer, ops_channel))["notification"]["title"] == "for ops"
    assert (await receive(layer, all_channel))["notification"]["title"] == "for everyone"


async def test_nothing_is_pushed_when_the_transaction_rolls_back(redis_url, alice):
    layer, channel = await listen(f"notify.user.{alice.pk}")

    def send_then_fail():
        with transaction.atomic():
            notify(alice, "never committed")
            raise RuntimeError("the view failed after notify()")

    with pytest.raises(RuntimeError):
        await database_sync_to_async(send_then_fail)()
    await database_sync_to_async(notify)(alice, "committed")

    # The first message on the channel is the committed one.
    assert (await receive(layer, channel))["notification"]["title"] == "committed"


async def test_the_push_waits_for_the_commit(redis_url, alice):
    import time

    layer, channel = await listen(f"notify.user.{alice.pk}")
    arrival = asyncio.ensure_future(receive(layer, channel, timeout=10))

    def heard_before_commit():
        with transaction.atomic():
            notify(alice, "in a transaction")
            time.sleep(0.5)  # Time enough for a push to arrive, if one had been sent.
            return arrival.done()

    assert await database_sync_to_async(heard_before_commit)() is False
    assert (await arrival)["notification"]["title"] == "in a transaction"


async def test_sending_from_the_admin_pushes_too(redis_url, admin_user, alice):
    from django.test import Client

    layer, channel = await listen(f"notify.user.{alice.pk}")

    def post():
        client = Client()
        client.force_login(admin_user)
        return client.post(
            "/admin/notifications/notification/add/",
            {"title": "From the admin", "level": "info", "recipient_user": alice.pk},
        )

    response = await database_sync_to_async(post)()
    assert response.status_code == 302
    message = await receive(layer, channel)
    assert message["notification"]["title"] == "From the admin"
    assert message["notification"]["created_by"] == "admin"


@pytest.mark.slow
async def test_a_notification_sent_by_another_process_reaches_the_group(manage, alice):
    layer, channel = await listen(f"notify.user.{alice.pk}")
    result = await asyncio.to_thread(manage, "notify", "--user", "alice", "From a command")
    assert result.returncode == 0, result.stderr
    assert (await receive(layer, channel, timeout=10))["notification"]["title"] == "From a command"


async def test_a_pushed_notification_is_marked_pushed(redis_url, alice):
    layer, channel = await listen(f"notify.user.{alice.pk}")
    notification = await database_sync_to_async(notify)(alice, "went out")
    await receive(layer, channel)
    await database_sync_to_async(notification.refresh_from_db)()
    assert notification.pushed_at is not None


async def test_a_push_that_failed_goes_out_when_retried(redis_url, alice, monkeypatch):
    """Redis away at commit time: the row stays unpushed and push_pending (the
    collector's retry) delivers it to open tabs once the layer answers again."""
    from datetime import timedelta

    from django.utils import timezone

    from dashboard import groups
    from notifications import services

    layer, channel = await listen(f"notify.user.{alice.pk}")

    def refuse(group, message):
        raise ConnectionError("Redis is away")

    with monkeypatch.context() as patched:
        patched.setattr(groups, "group_send", refuse)
        notification = await database_sync_to_async(notify)(alice, "sent during the outage")
    await database_sync_to_async(notification.refresh_from_db)()
    assert notification.pushed_at is None

    later = timezone.now() + timedelta(seconds=5)
    assert await database_sync_to_async(services.push_pending)(now=later) == 1
    message = await receive(layer, channel)
    assert message["notification"]["id"] == notification.pk
    assert await database_sync_to_async(services.push_pending)(now=later) == 0

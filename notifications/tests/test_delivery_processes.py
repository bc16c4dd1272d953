"""Deliveries across real OS processes: a sender killed mid-send, the collector
sending while its Redis is gone, two senders on one queue, and add_channel."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT
from notifications.models import Delivery, DeliveryChannel
from notifications.services import notify
from tests.receivers import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def processes(subprocess_env, tmp_path):
    """Start `manage.py ARGS` as background processes; each is killed (by PID) at the end."""
    started = []

    def start(*args, env=None):
        log = open(tmp_path / f"process-{len(started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**subprocess_env, "DELIVERY_TIMEOUT": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = log.name
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait(condition, timeout=60.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met in {timeout:.0f}s")
        time.sleep(0.1)


def test_a_sender_killed_mid_send_is_replaced_and_the_notification_arrives_once(alice, receiver, processes):
    DeliveryChannel.objects.create(
        kind="webhook", target=receiver.url, secret=receiver.secret, owner_user=alice
    )
    release = threading.Event()
    receiver.hold = release  # the first request is received but never answered
    notification = notify(alice, "while the sender dies")
    sender = processes("send_deliveries")
    assert receiver.held.wait(60), "the sender never posted"
    os.killpg(sender.pid, signal.SIGKILL)
    sender.wait(10)
    receiver.hold = None
    release.set()

    row = Delivery.objects.get()
    assert row.state == "pending" and row.lease_until is not None  # still leased by the dead sender
    processes("send_deliveries")
    receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout=60)
    wait(lambda: Delivery.objects.get().state == "delivered", message="delivered")

    assert [r.payload["id"] for r in receiver.requests] == [notification.pk, notification.pk]
    # Both tries carry the same delivery id, so a receiver could drop a repeat itself.
    assert len({r.delivery_id for r in receiver.requests}) == 1
    assert len(receiver.accepted()) == 1
    assert Delivery.objects.get().attempts == 2


def test_two_senders_on_one_queue_deliver_everything_once_in_order(alice, receiver, processes):
    DeliveryChannel.objects.create(
        kind="webhook", target=receiver.url, secret=receiver.secret, owner_user=alice
    )
    processes("send_deliveries")
    processes("send_deliveries")
    sent = [notify(alice, f"n{n}").pk for n in range(30)]

    receiver.wait_for(lambda r: len(r.accepted()) >= len(sent), timeout=90)
    wait(lambda: Delivery.objects.filter(state="delivered").count() == len(sent), message="all delivered")
    assert [r.payload["id"] for r in receiver.accepted()] == sent
    assert len(receiver.requests) == len(sent)


def test_the_collector_delivers_while_its_redis_is_gone(
    alice, receiver, processes, own_redis, subprocess_env
):
    DeliveryChannel.objects.create(
        kind="webhook", target=receiver.url, secret=receiver.secret, owner_user=alice
    )
    env = {"REDIS_URL": own_redis.url}
    collector = processes("collect_metrics", env=env)
    notify(alice, "before")
    receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout=60)

    own_redis.stop()
    # Sent from another process on the same (dead) Redis: stored, its live push fails.
    result = subprocess.run(
        [sys.executable, "manage.py", "notify", "--user", "alice", "while Redis is away"],
        cwd=ROOT,
        env={**subprocess_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    receiver.wait_for(lambda r: len(r.accepted()) == 2, timeout=60)
    assert [r.payload["title"] for r in receiver.accepted()] == ["before", "while Redis is away"]
    assert collector.poll() is None, "the collector died"


def test_add_channel_adds_channels_and_refuses_bad_input_in_one_line(alice, manage):
    from django.contrib.auth.models import Group

    Group.objects.create(name="ops")
    ok = manage("add_channel", "email", "alice@example.org", "--user", "alice")
    assert ok.returncode == 0, ok.stderr
    hook = manage("add_channel", "webhook", "http://127.0.0.1:9/h", "--group", "ops", "--min-level", "error")
    assert hook.returncode == 0, hook.stderr
    secret = hook.stdout.strip().splitlines()[-1]
    signed = manage("add_channel", "webhook", "http://10.1.2.3/h", "--all", "--secret", "given")
    assert signed.returncode == 0, signed.stderr

    channels = list(DeliveryChannel.objects.order_by("pk"))
    assert [(c.kind, c.audience_display, c.min_level) for c in channels] == [
        ("email", "alice", "info"),
        ("webhook", "group ops", "error"),
        ("webhook", "everyone", "info"),
    ]
    assert channels[1].secret == secret and len(secret) >= 32
    assert channels[2].secret == "given"

    for args, problem in [
        (("email", "not-an-address", "--all"), "not an e-mail address"),
        (("webhook", "ftp://example.org/", "--all"), "not an http(s) URL"),
        (("webhook", "http://example.org/", "--user", "nobody"), "unknown user 'nobody'"),
        (("webhook", "http://example.org/", "--group", "nobody"), "unknown group 'nobody'"),
        (("email", "a@example.org", "--all", "--secret", "x"), "for webhooks only"),
    ]:
        result = manage("add_channel", *args)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and problem in lines[0], result.stderr
    assert DeliveryChannel.objects.count() == 3

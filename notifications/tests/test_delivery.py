"""Delivery channels: e-mail through a real SMTP server, webhooks to a real HTTP
receiver that checks the signature; retries, order per channel, exactly once."""

import json
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from notifications import delivery
from notifications.delivery import DeliveryWorker, claim, send_due
from notifications.models import Delivery, DeliveryChannel
from notifications.services import notify
from tests.receivers import SMTPServer, WebhookReceiver


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(settings):
    server = SMTPServer().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.DEFAULT_FROM_EMAIL = "alerts@livedash.example"
    yield server
    server.stop()


@pytest.fixture
def fast_retries(monkeypatch):
    """Retries within a fraction of a second, so outages last seconds, not minutes."""
    monkeypatch.setattr(delivery, "FIRST_RETRY", 0.1)
    monkeypatch.setattr(delivery, "MAX_RETRY", 0.5)


@pytest.fixture
def worker():
    workers = []

    def start():
        workers.append(DeliveryWorker(poll_seconds=0.1).start())
        return workers[-1]

    yield start
    for running in workers:
        running.stop(timeout=30)


def webhook(receiver, **owner):
    return DeliveryChannel.objects.create(
        kind="webhook", target=receiver.url, secret=receiver.secret, **owner
    )


def test_it_queues_one_delivery_per_matching_channel(alice, bob):
    ops = Group.objects.create(name="ops")
    alice.groups.add(ops)
    mine = DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice)
    group = DeliveryChannel.objects.create(kind="email", target="ops@example.org", owner_group=ops)
    everyone = DeliveryChannel.objects.create(kind="email", target="all@example.org")
    DeliveryChannel.objects.create(kind="email", target="bob@example.org", owner_user=bob)
    DeliveryChannel.objects.create(kind="email", target="p@example.org", owner_user=alice, paused=True)
    urgent = DeliveryChannel.objects.create(
        kind="email", target="pager@example.org", owner_user=alice, min_level="warning"
    )

    def channels(notification):
        return set(Delivery.objects.filter(notification=notification).values_list("channel", flat=True))

    assert channels(notify(alice, "to alice")) == {mine.pk}
    assert channels(notify(ops, "to ops", level="error")) == {mine.pk, group.pk, urgent.pk}
    everything = {c.pk for c in DeliveryChannel.objects.filter(paused=False)}
    assert channels(notify(None, "to all", level="warning")) == everything
    assert everyone.pk in everything


def test_it_sends_an_email_from_the_configured_address(alice, smtp):
    DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice)
    notify(alice, "Disk almost full", body="93% used", level="warning", link="/admin/")

    assert send_due() == 1
    (envelope,) = smtp.wait_for(1)
    assert envelope.mail_from == "alerts@livedash.example"
    assert envelope.rcpt_tos == ["alice@example.org"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "Disk almost full"
    assert message["From"] == "alerts@livedash.example"
    text = message.get_payload(decode=True).decode()
    assert "93% used" in text and "/admin/" in text
    assert Delivery.objects.get().state == "delivered"


def test_it_posts_a_signed_webhook(alice, receiver):
    webhook(receiver, owner_user=alice)
    notification = notify(alice, "CPU high", body="97%", level="error", link="https://example.org/runbook")

    assert send_due() == 1
    (request,) = receiver.requests
    assert request.signature_ok
    assert request.headers["content-type"] == "application/json"
    assert "livedash" in request.headers["user-agent"]
    assert request.headers["x-livedash-signature"].startswith("sha256=")
    payload = request.payload
    assert payload["id"] == notification.pk
    assert payload["title"] == "CPU high"
    assert payload["body"] == "97%"
    assert payload["level"] == "error"
    assert payload["link"] == "https://example.org/runbook"
    assert payload["created_at"] == notification.created_at.isoformat()
    row = Delivery.objects.get()
    assert (row.state, row.attempts, row.last_error) == ("delivered", 1, "")
    assert row.delivered_at is not None


def test_a_signature_with_another_secret_does_not_verify(alice, receiver):
    DeliveryChannel.objects.create(kind="webhook", target=receiver.url, secret="other", owner_user=alice)
    notify(alice, "hi")
    send_due()
    assert not receiver.requests[0].signature_ok
    # The receiver refused it (401): that is a failure, retried later.
    assert Delivery.objects.get().state == "pending"


@pytest.mark.parametrize("status", [500, 404, 302, 204])
def test_anything_but_a_2xx_is_retried_within_ten_seconds(alice, receiver, status):
    webhook(receiver, owner_user=alice)
    notify(alice, "hi")
    receiver.answers.put(status)
    before = timezone.now()

    delivered = send_due()

    row = Delivery.objects.get()
    if status == 204:
        assert delivered == 1 and row.state == "delivered"
        return
    assert delivered == 0
    assert row.state == "pending" and row.attempts == 1
    assert str(status) in row.last_error
    assert row.next_attempt_at <= before + timedelta(seconds=10)
    assert send_due() == 0  # not due yet
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert send_due() == 1
    assert [r.status for r in receiver.requests] == [status, 200]
    assert Delivery.objects.get().state == "delivered"


def test_backoff_doubles_with_jitter_up_to_ten_minutes():
    for attempts in range(1, 40):
        wait = delivery.backoff(attempts)
        assert 0 < wait <= 600
    assert delivery.backoff(1) <= 10
    assert delivery.backoff(30) >= 300  # capped, jittered, but still minutes apart


def test_retries_go_on_for_a_day_then_the_delivery_fails(alice, receiver):
    webhook(receiver, owner_user=alice)
    first, second = notify(alice, "first"), notify(alice, "second")
    receiver.answers.put(500)
    row = Delivery.objects.get(notification=first)
    assert row.retry_until - row.created_at >= timedelta(days=1)
    Delivery.objects.filter(pk=row.pk).update(retry_until=timezone.now())

    send_due()

    row.refresh_from_db()
    assert row.state == "failed" and "500" in row.last_error
    # The channel moves on to its next notification.
    assert send_due() == 1
    assert receiver.accepted()[0].payload["id"] == second.pk


def test_a_channel_gets_its_notifications_in_order_one_at_a_time(alice, bob, receiver):
    webhook(receiver, owner_user=alice)
    other = WebhookReceiver().start()
    try:
        webhook(other, owner_user=bob)
        for n in range(3):
            notify(alice, f"a{n}")
            notify(bob, f"b{n}")
        claimed, _ = claim(10)
        # The head of each channel only: the next waits until that one is done.
        assert [d.notification.title for d in claimed] == ["a0", "b0"]
        assert claim(10)[0] == []  # leased: nobody else may take them
    finally:
        other.stop()


def test_a_row_held_by_a_live_lease_is_not_claimed_twice(alice, receiver):
    webhook(receiver, owner_user=alice)
    notify(alice, "once")
    first, _ = claim(5)
    assert len(first) == 1
    assert claim(5)[0] == []
    # The sender died: once its lease has run out, another may take the row.
    Delivery.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    again, _ = claim(5)
    assert [d.pk for d in again] == [first[0].pk]
    assert again[0].attempts == 2


def test_a_delivered_row_is_never_sent_again(alice, receiver):
    webhook(receiver, owner_user=alice)
    notify(alice, "once")
    assert send_due() == 1
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1), lease_until=None)
    assert send_due() == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_receiver_down_then_back_gets_everything_once_in_order(alice, fast_retries, worker):
    receiver = WebhookReceiver()  # not listening yet: connection refused
    webhook(receiver, owner_user=alice)
    sent = [notify(alice, f"n{n}").pk for n in range(8)]
    worker()
    row = Delivery.objects.get(notification_id=sent[0])
    _wait(lambda: Delivery.objects.get(pk=row.pk).attempts >= 3)
    assert Delivery.objects.filter(state="delivered").count() == 0
    receiver.start()
    try:
        receiver.wait_for(lambda r: len(r.accepted()) == len(sent))
        ids = [r.payload["id"] for r in receiver.accepted()]
        assert ids == sent
        assert all(r.signature_ok for r in receiver.requests)
        _wait(lambda: Delivery.objects.filter(state="delivered").count() == len(sent))
    finally:
        receiver.stop()


@pytest.mark.django_db(transaction=True)
def test_a_webhook_answering_500_then_200_gets_it_once(alice, receiver, fast_retries, worker):
    webhook(receiver, owner_user=alice)
    for _ in range(3):
        receiver.answers.put(500)
    notification = notify(alice, "flaky")
    worker()
    receiver.wait_for(lambda r: len(r.accepted()) == 1)
    assert [r.status for r in receiver.requests] == [500, 500, 500, 200]
    assert {r.payload["id"] for r in receiver.requests} == {notification.pk}
    _wait(lambda: Delivery.objects.get().state == "delivered")
    assert Delivery.objects.get().attempts == 4


@pytest.mark.django_db(transaction=True)
def test_an_smtp_server_down_then_back_gets_each_mail_once(alice, smtp, fast_retries, worker):
    DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice)
    smtp.stop()
    for n in range(3):
        notify(alice, f"mail {n}")
    worker()
    _wait(lambda: Delivery.objects.filter(attempts__gte=2).count() >= 1)
    smtp.start()
    messages = smtp.wait_for(3)
    _wait(lambda: Delivery.objects.filter(state="delivered").count() == 3)
    subjects = [message_from_bytes(m.content)["Subject"] for m in messages]
    assert subjects == ["mail 0", "mail 1", "mail 2"]


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_a_new_notification_at_once(alice, receiver, worker):
    worker()
    webhook(receiver, owner_user=alice)
    notify(alice, "now")
    receiver.wait_for(lambda r: len(r.accepted()) == 1, timeout=10)


def test_it_refuses_bad_channels(alice):
    from django.core.exceptions import ValidationError

    for kind, target in [
        ("email", "not-an-address"),
        ("webhook", "ftp://example.org/"),
        ("webhook", "http:///nohost"),
        ("webhook", "http://example.org:99999/"),
    ]:
        with pytest.raises(ValidationError):
            DeliveryChannel(kind=kind, target=target, secret="x", owner_user=alice).full_clean()
    with pytest.raises(ValidationError, match="secret"):
        DeliveryChannel(kind="webhook", target="http://10.0.0.1/h", owner_user=alice).full_clean()
    # Loopback and private addresses are fine.
    DeliveryChannel(kind="webhook", target="http://127.0.0.1:9/h", secret="x", owner_user=alice).full_clean()


def test_the_webhook_body_is_json_signed_as_sent(alice, receiver):
    webhook(receiver, owner_user=alice)
    notify(alice, "ünïcode ✓")
    send_due()
    (request,) = receiver.requests
    assert request.signature_ok
    assert json.loads(request.body)["title"] == "ünïcode ✓"


def _wait(condition, timeout=30.0):
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)

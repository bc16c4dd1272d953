"""Delivering notifications to their channels (e-mail, signed webhooks), retried until they arrive.

A notification's `Delivery` rows are written in the transaction that stores it
(`queue_deliveries`), so a stored notification always has them. Senders then
claim rows from the database, which is the only coordination between them:

- a row is claimable when it is pending, due, not leased by a live sender, and
  the oldest pending row of its channel (so each channel gets its notifications
  in order, one at a time);
- claiming is a compare-and-set on the lease (`UPDATE ... WHERE lease expired`),
  correct on any database; on PostgreSQL the candidates are also read with
  `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent senders do not queue on
  each other's rows;
- the lease outlasts the send timeout, so a live sender always finishes first;
  a sender killed mid-send leaves a lease that expires, and the row is sent again;
- a row is marked delivered only by the sender holding its lease, after a 2xx
  (or an SMTP server accepting the message). A delivered row is never claimed again.

Who sends: the collector (`manage.py collect_metrics`) runs a `DeliveryWorker`
thread, so the processes `make run`, `make stack` and compose start already do
it. `manage.py send_deliveries` runs the same loop on its own.
"""

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from dashboard import telemetry
from dashboard.background import BackgroundThread
from notifications.models import Delivery, DeliveryChannel, Notification

logger = logging.getLogger(__name__)

# The first retry comes within FIRST_RETRY seconds, then the wait doubles up to MAX_RETRY.
FIRST_RETRY = 5.0
MAX_RETRY = 600.0
RETRY_FOR = timedelta(days=1)
# How often a sender looks for due rows when nothing woke it (a notification from
# another process, a retry coming due). Also the worst-case extra latency.
POLL_SECONDS = 0.5
USER_AGENT = "livedash-webhook/1 (+notification delivery)"
SIGNATURE_HEADER = "X-Livedash-Signature"
ERROR_LIMIT = 2000


def lease_seconds():
    # Longer than an attempt can last (connect + send + answer each bounded by the timeout).
    return settings.DELIVERY_TIMEOUT * 3 + 5


def queue_deliveries(notification):
    """Write one pending row per active channel that should receive `notification`.
    Call it inside the transaction that stores the notification."""
    now = timezone.now()
    rows = [
        Delivery(
            notification=notification,
            channel=channel,
            created_at=now,
            next_attempt_at=now,
            retry_until=now + RETRY_FOR,
        )
        for channel in DeliveryChannel.objects.for_notification(notification)
    ]
    if rows:
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(wake_local_senders)
    return len(rows)


def queue_delivery_to(notification, channel):
    """One pending row for `notification` to `channel` alone (an escalation step)."""
    now = timezone.now()
    Delivery.objects.create(
        notification=notification,
        channel=channel,
        created_at=now,
        next_attempt_at=now,
        retry_until=now + RETRY_FOR,
    )
    transaction.on_commit(wake_local_senders)


# Senders in this process wait on this; notify() in the same process (the collector's
# alert rules) wakes them at once instead of at the next poll.
_wake = threading.Event()


def wake_local_senders():
    _wake.set()


def backoff(attempts):
    """Seconds before the next try after `attempts` failed ones: doubling, capped, jittered
    (so receivers coming back are not hit by every sender at the same instant)."""
    base = min(MAX_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)


def claim(limit, now=None):
    """Lease up to `limit` deliveries that may be sent now; returns them (with
    notification and channel loaded) and the lease token."""
    now = now or timezone.now()
    token = secrets.token_hex(16)
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    earlier_pending = Delivery.objects.filter(
        channel=OuterRef("channel"), state=Delivery.State.PENDING, pk__lt=OuterRef("pk")
    )
    candidates = (
        Delivery.objects.filter(free, state=Delivery.State.PENDING, next_attempt_at__lte=now)
        .exclude(Exists(earlier_pending))
        .order_by("pk")
    )
    claimed = []
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        for pk in list(candidates.values_list("pk", flat=True)[:limit]):
            won = Delivery.objects.filter(free, pk=pk, state=Delivery.State.PENDING).update(
                lease_until=now + timedelta(seconds=lease_seconds()),
                lease_token=token,
                attempts=F("attempts") + 1,
            )
            if won:
                claimed.append(pk)
    deliveries = list(
        Delivery.objects.filter(pk__in=claimed, lease_token=token)
        .select_related("notification__created_by", "channel")
        .order_by("pk")
    )
    return deliveries, token


class DeliveryError(Exception):
    pass


def send(delivery):
    """One attempt; raises DeliveryError (or any error) when it did not arrive."""
    channel = delivery.channel
    if channel.kind == DeliveryChannel.Kind.EMAIL:
        send_email(delivery)
    elif channel.kind == DeliveryChannel.Kind.WEBHOOK:
        send_webhook(delivery)
    elif channel.kind == DeliveryChannel.Kind.APPRISE:
        send_apprise(delivery)
    else:
        raise DeliveryError(f"unknown channel kind {channel.kind!r}")


def send_email(delivery):
    notification = delivery.notification
    lines = [notification.body] if notification.body else []
    if notification.link:
        lines.append(f"Link: {notification.link}")
    lines.append(f"Level: {notification.level}")
    lines.append(f"Sent: {notification.created_at.isoformat()}")
    message = EmailMessage(
        subject=notification.title,
        body="\n\n".join(lines) + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.channel.target],
        headers={"X-Livedash-Delivery": str(delivery.pk)},
    )
    if message.send() != 1:
        raise DeliveryError("the mail backend did not send the message")


def _apprise_type(level):
    import apprise

    return {
        "success": apprise.NotifyType.SUCCESS,
        "warning": apprise.NotifyType.WARNING,
        "error": apprise.NotifyType.FAILURE,
    }.get(level, apprise.NotifyType.INFO)


def send_apprise(delivery):
    """Through apprise to its service (Slack, Telegram, ntfy, ...). apprise answers only
    True or False, so what it logged while sending is the error a failure records;
    its own retries are off (the URL's `retry`): the delivery's retries and order hold."""
    import apprise

    notification = delivery.notification
    try:
        url = delivery.channel.apprise_url
    except ValueError as exc:
        raise DeliveryError(str(exc)) from None
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryError(f"apprise no longer accepts this URL: {delivery.channel.target[:80]}")
    body = notification.body or notification.title
    if notification.link:
        body += f"\n\n{notification.link}"
    with apprise.LogCapture(level=logging.WARNING) as log:
        sent = sender.notify(
            title=notification.title, body=body, notify_type=_apprise_type(notification.level)
        )
    if not sent:
        said = " ".join(log.getvalue().split())[-300:]
        raise DeliveryError(f"apprise could not send: {said or 'no reason given'}")


@dataclass
class _TestDelivery:
    notification: Notification
    channel: DeliveryChannel
    pk: str = "test"


def send_test(channel, sent_by=None):
    """Send a test message to `channel` now, through its sender, outside the queue (it
    is stored nowhere, so nobody's bell shows it); `DeliveryError` says why it failed."""
    notification = Notification(
        title="Test from livedash",
        body=f"A test of the delivery channel {channel}: if you read this, it works.",
        level="info",
        created_at=timezone.now(),
        created_by=sent_by if sent_by is not None and sent_by.pk else None,
    )
    try:
        send(_TestDelivery(notification, channel))
    except DeliveryError:
        raise
    except Exception as exc:
        raise DeliveryError(_describe(exc)) from None


def webhook_payload(notification):
    """The notification; an alert group's message (alerts/grouping.py) adds `group_key`
    (the same for every message of that group, so a receiver can thread them),
    `status` ("firing" or "resolved") and `alerts` (each series, its labels, status, value)."""
    payload = notification.as_dict()
    group = (notification.message_params or {}).get("group") if notification.message_id else None
    if isinstance(group, dict):
        payload["group_key"] = group.get("key")
        payload["group_labels"] = group.get("labels", {})
        payload["status"] = group.get("status")
        payload["alerts"] = group.get("alerts", [])
    return payload


def sign(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A 3xx is not a delivery: following it would POST to a place nobody configured.
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def send_webhook(delivery):
    body = json.dumps(webhook_payload(delivery.notification), separators=(",", ":")).encode()
    request = urllib.request.Request(  # noqa: S310 (http(s) only, checked by the channel)
        delivery.channel.target,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(delivery.channel.secret, body),
            # The same id on every attempt, so a receiver can drop a repeat (an answer
            # that was lost with the sender that asked).
            "X-Livedash-Delivery": str(delivery.pk),
        },
    )
    try:
        with _opener.open(request, timeout=settings.DELIVERY_TIMEOUT) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"cannot reach the webhook: {exc.reason}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")


def attempt(delivery, token):
    """Send one claimed delivery and record the outcome; returns True when delivered."""
    try:
        send(delivery)
    except Exception as exc:
        _record_failure(delivery, token, _describe(exc))
        return False
    telemetry.count_delivery("sent", channel=delivery.channel.kind)
    now = timezone.now()
    recorded = Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(
        state=Delivery.State.DELIVERED, delivered_at=now, lease_until=None, last_error=""
    )
    if not recorded:
        logger.warning("delivery %s went out after its lease expired", delivery.pk)
    return True


def _record_failure(delivery, token, error):
    now = timezone.now()
    changes = {"lease_until": None, "last_error": error[:ERROR_LIMIT]}
    next_at = now + timedelta(seconds=backoff(delivery.attempts))
    given_up = next_at > delivery.retry_until
    telemetry.count_delivery("given_up" if given_up else "retrying", channel=delivery.channel.kind)
    if given_up:
        changes["state"] = Delivery.State.FAILED
        logger.warning(
            "giving up on delivery %s after %d attempts: %s", delivery.pk, delivery.attempts, error
        )
    else:
        changes["next_attempt_at"] = next_at
        logger.info(
            "delivery %s attempt %d failed (%s); next try at %s",
            delivery.pk,
            delivery.attempts,
            error,
            next_at,
        )
    Delivery.objects.filter(pk=delivery.pk, lease_token=token).update(**changes)


def _describe(exc):
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {text}"


def retry_now(queryset):
    """The admin's retry: send these again as soon as possible, with a fresh retry window."""
    now = timezone.now()
    count = queryset.exclude(state=Delivery.State.DELIVERED).update(
        state=Delivery.State.PENDING,
        next_attempt_at=now,
        retry_until=now + RETRY_FOR,
        lease_until=None,
    )
    transaction.on_commit(wake_local_senders)
    return count


def send_due(limit=50):
    """Claim and send what is due, one after the other; returns how many were delivered.
    (The worker sends in parallel; this is for commands and tests.)"""
    deliveries, token = claim(limit)
    return sum(attempt(delivery, token) for delivery in deliveries)


class DeliveryWorker(BackgroundThread):
    """Sends due deliveries on a few threads until stopped. Run it in a thread
    (`start()`) beside other work, or in the foreground (`run()`)."""

    name = "delivery"

    def __init__(self, senders=4, poll_seconds=POLL_SECONDS):
        super().__init__()
        self.senders = senders
        self.poll_seconds = poll_seconds
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool = None

    def stop(self, timeout=10):
        self._stopping.set()
        _wake.set()  # out of its poll at once
        super().stop(timeout)

    def run(self):
        logger.info("delivery sender started")
        self._pool = ThreadPoolExecutor(max_workers=self.senders, thread_name_prefix="delivery-send")
        try:
            while not self._stopping.is_set():
                _wake.clear()
                self._claim_and_submit()
                _wake.wait(self.poll_seconds)
        finally:
            self._pool.shutdown(wait=True)
            connection.close()
            logger.info("delivery sender stopped")

    def _claim_and_submit(self):
        with self._lock:
            free = self.senders - self._in_flight
        if free <= 0:
            return
        try:
            deliveries, token = claim(free)
        except DatabaseError as exc:
            logger.warning("cannot claim deliveries (%s); trying again", exc)
            connection.close()
            return
        for delivery in deliveries:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._send, delivery, token)

    def _send(self, delivery, token):
        try:
            attempt(delivery, token)
        except DatabaseError as exc:
            # The outcome was not recorded: the lease expires and the row is sent again.
            logger.warning("cannot record delivery %s (%s)", delivery.pk, exc)
        except Exception:
            logger.exception("delivery %s failed unexpectedly", delivery.pk)
        finally:
            # Pool threads come and go with the pool: none may keep a connection open
            # (CONN_MAX_AGE is 0 everywhere, as for a request).
            connection.close()
            with self._lock:
                self._in_flight -= 1
            # The channel's next row may be due now.
            _wake.set()

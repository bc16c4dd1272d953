"""Sending notifications, reading and marking them: the notifications API.

Everything here is synchronous and safe to call from any process (shell,
management command, view, collector); consumers call it through
`database_sync_to_async`. A notification is persisted first and pushed only
once its row is committed, so a client that reconnects always finds in the
database everything it could have been sent.
"""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dashboard import groups, telemetry
from dashboard.control import events
from dashboard.groups import EVERYONE_GROUP, auth_group_name, user_group_name
from dashboard.redis import get_async_client, get_sync_client, key
from notifications.delivery import queue_deliveries, queue_delivery_to
from notifications.models import Notification, NotificationRead

logger = logging.getLogger(__name__)

RECENT_LIMIT = 20
MISSED_LIMIT = 200


class NotificationNotFound(Exception):
    """No such notification for this user: one that does not exist and one addressed
    to someone else look the same, so an id never tells whether it exists."""


# A counter that moves whenever what some `hello_state` answers may change (a new
# notification pushed, a read mark): a worker may reuse a hello state computed at
# the version it still reads (dashboard.control.hello).
VERSION_KEY = ("notifications", "version")


def bump_version():
    get_sync_client().incr(key(*VERSION_KEY))


async def aversion():
    return int(await get_async_client().get(key(*VERSION_KEY)) or 0)


def notify(to, title, body="", level="info", link=None, created_by=None, message=None):
    """Store a notification for `to` (a user, a username, a group, or None for
    everyone), with a delivery row for each of the recipients' channels, and push
    it to the recipients once committed. `message` is `(message_id, params)` for
    the texts the product writes itself (notifications/messages.py): pages show
    those in each viewer's language.

    Raises ValueError naming the problem; then nothing is stored or sent."""
    recipient_user, recipient_group = _resolve_audience(to)
    if not isinstance(title, str):
        raise ValueError("title must be a string")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise ValueError("body must be a string")
    if link is not None and not isinstance(link, str):
        raise ValueError("link must be a string")
    notification = Notification(
        title=title.strip(),
        body=body,
        level=level,
        link=(link or "").strip(),
        recipient_user=recipient_user,
        recipient_group=recipient_group,
        created_by=created_by,
    )
    if message is not None:
        notification.message_id, notification.message_params = message
    try:
        notification.full_clean()
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None
    with transaction.atomic():
        notification.save()
        send_on_commit(notification)
    return notification


def notify_channel(channel, title, body="", level="info", message=None):
    """A notification for one delivery channel alone (an alert's escalation step): stored
    for the channel's owner, as `notify` stores any, but delivered to that channel only,
    through the same delivery rows (retries, order per channel, never twice)."""
    notification = Notification(
        title=title.strip(),
        body=body,
        level=level,
        recipient_user=channel.owner_user,
        recipient_group=channel.owner_group,
    )
    if message is not None:
        notification.message_id, notification.message_params = message
    try:
        notification.full_clean()
    except ValidationError as exc:
        raise ValueError(describe_error(exc)) from None
    with transaction.atomic():
        notification.save()
        queue_delivery_to(notification, channel)
        push_on_commit(notification)
    return notification


def _resolve_audience(to):
    User = get_user_model()
    if to is None:
        return None, None
    if isinstance(to, User):
        if to.pk is None:
            raise ValueError("user is not saved")
        return to, None
    if isinstance(to, Group):
        if to.pk is None:
            raise ValueError("group is not saved")
        return None, to
    if isinstance(to, str):
        try:
            return User.objects.get(**{User.USERNAME_FIELD: to}), None
        except User.DoesNotExist:
            raise ValueError(f"unknown user {to!r}") from None
    raise ValueError(f"to must be a user, a username, a group or None, not {type(to).__name__}")


def describe_error(error):
    """'title: This field cannot be blank.' rather than a dict repr."""
    if hasattr(error, "message_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


def send_on_commit(notification):
    """For a notification just saved, in its transaction: its delivery rows (so they
    commit with it or not at all), then the live push once committed."""
    queue_deliveries(notification)
    push_on_commit(notification)


def push_on_commit(notification):
    """Send the notification to its recipients' socket group after the commit
    (immediately when no transaction is open)."""
    transaction.on_commit(lambda: _push(notification))


def _push(notification, quiet=False):
    """Push one committed notification; True when it went out (and is marked so)."""
    try:
        # Before the push: a socket that reads the version after this joined its groups
        # first, so it is sent the notification; one that read it before sees a new version.
        bump_version()
        groups.group_send(
            notification.channel_group,
            # Each socket renders a product-written message in its viewer's language.
            events.notification_message(notification.as_dict(), message=notification.message),
        )
    except Exception:
        if not quiet:
            logger.exception(
                "could not push notification #%s; it is pushed again when Redis is back", notification.pk
            )
        telemetry.count_delivery("failed")
        return False
    telemetry.count_delivery("sent")
    Notification.objects.filter(pk=notification.pk).update(pushed_at=timezone.now())
    return True


# Rows younger than this may still be on their way out through on_commit.
PUSH_SETTLE = timedelta(seconds=2)
# Past this a retried push would be more surprising than useful; hello still has it.
PUSH_RETRY_WINDOW = timedelta(hours=1)


def push_pending(now=None, limit=100):
    """Push again what a failed push left behind (the collector calls this). Returns
    how many went out; stops at the first failure, since Redis is still away."""
    now = now or timezone.now()
    pending = Notification.objects.filter(
        pushed_at__isnull=True,
        created_at__gte=now - PUSH_RETRY_WINDOW,
        created_at__lte=now - PUSH_SETTLE,
    ).order_by("pk")[:limit]
    pushed = 0
    for notification in pending:
        if not _push(notification, quiet=True):
            break
        pushed += 1
    if pushed:
        logger.info("pushed %d notification(s) that were stored while Redis was away", pushed)
    return pushed


def group_names_for(user):
    """The channel-layer groups a user's sockets join to receive their notifications."""
    if user is None or not user.is_authenticated:
        return []
    group_ids = user.groups.order_by("id").values_list("id", flat=True)
    return [user_group_name(user.pk), *map(auth_group_name, group_ids), EVERYONE_GROUP]


def unread_count(user):
    return Notification.objects.unread_for(user).count()


def hello_state(user, since_id=None, language=None):
    """What a (re)connecting socket needs: the unread count, the recent
    notifications, and the ones newer than `since_id` (the last the tab saw),
    in the viewer's `language`."""
    visible = Notification.objects.visible_to(user).select_related("created_by").with_read_state(user)
    recent = [n.as_dict(read=n.is_read, language=language) for n in visible.order_by("-id")[:RECENT_LIMIT]]
    missed = []
    since = _as_id(since_id)
    if since is not None:
        # The newest ones if there are too many, so the tab's last-seen id stays right.
        newest_first = list(visible.filter(id__gt=since).order_by("-id")[:MISSED_LIMIT])
        missed = [n.as_dict(read=n.is_read, language=language) for n in reversed(newest_first)]
    return {"unread": unread_count(user), "recent": recent, "missed": missed}


def _as_id(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def mark_read(user, target):
    """Mark one notification (by id) or "all" read for `user`; returns the new unread count.

    Raises NotificationNotFound (nothing changes) for an id that does not exist or
    is not addressed to this user alike."""
    if target == "all":
        _mark_all_read(user)
    elif isinstance(target, int) and not isinstance(target, bool):
        _mark_one_read(user, target)
    else:
        raise ValueError('target must be a notification id or "all"')
    try:
        bump_version()
    except Exception as exc:  # Redis away: cached hello states expire within seconds anyway
        logger.warning("could not bump the notifications version: %s", exc)
    return unread_count(user)


def _mark_one_read(user, notification_id):
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None or not notification.is_addressed_to(user):
        raise NotificationNotFound(f"you have no notification {notification_id}")
    try:
        with transaction.atomic():
            NotificationRead.objects.get_or_create(user=user, notification=notification)
    except IntegrityError:
        pass  # Another tab marked it at the same moment: it is read either way.


def _mark_all_read(user):
    unread_ids = Notification.objects.unread_for(user).values_list("id", flat=True)
    NotificationRead.objects.bulk_create(
        [NotificationRead(user=user, notification_id=pk) for pk in unread_ids], ignore_conflicts=True
    )

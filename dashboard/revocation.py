"""Revoking access closes what is open.

Logout, a password change, deactivation and any change of a user's permissions or
groups (from the admin, a command, or code in any process) reach this module
through Django's signals, and once the change is committed it tells every worker
through Redis to close what that user has open:

- sockets: over the channel layer, to the user's group (`user_group_name`, which
  every socket of theirs already joined for notifications); closed with 4403;
- everything else a worker holds for the user: on `revocation_channel()`, which
  each worker's `RevocationListener` hears; it drops the access answers the worker
  remembers and calls what the transports registered with `on_revoked` (the SSE
  hub ends the user's streams);
- SSE streams held by Pushpin (GRIP_URL): a close on the GRIP channel
  `user-<id>` that each of the user's connections there is subscribed to, and a
  note of the time, so an `es-meta` token issued before it is refused. Pushpin
  holds the close back from a connection it is recovering, so that refusal
  itself ends the stream (dashboard.stream.grip.end_of_stream).

Each tab reconnects and gets what the user may have now, or nothing.

Ending one session (`revoke_session`, from /account/sessions/) is narrower: the
message names the session's tag (`session_tag`, a digest, so no session key
travels through Redis) beside the user, and only that session's streams and
sockets close; the user's other sessions keep theirs. At the Pushpin edge each
connection is subscribed to its session's own channel `session-<tag>` as well
(dashboard.stream.grip), and the close goes there; the tag is remembered as ended,
so Pushpin's own requests for that connection are refused too.
"""

import asyncio
import contextvars
import hashlib
import logging
import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model, user_logged_out
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save

from dashboard import access
from dashboard.control import events
from dashboard.groups import group_send, user_group_name
from dashboard.loops import PerLoop
from dashboard.redis import get_async_client, get_sync_client, key, subscribe_forever
from dashboard.storage import revocation_channel

logger = logging.getLogger(__name__)

# How long a revocation is remembered: past the life of any es-meta token (an hour).
REMEMBER_SECONDS = 3600 + 60
# When the close at the Pushpin edge is sent again (see _broadcast).
EDGE_CLOSE_AGAIN_SECONDS = 1.0
# A save that only records a login changes no access (Django's login does this).
HARMLESS_FIELDS = frozenset({"last_login"})


def revoke(user_ids):
    """Close the open sockets of these users on every worker, once the change is committed."""
    user_ids = sorted(set(user_ids))
    if user_ids:
        transaction.on_commit(lambda: _broadcast(user_ids))


def session_tag(session_key):
    """What names a session in revocation messages (None for no session)."""
    if not session_key:
        return None
    return hashlib.sha256(f"livedash-session:{session_key}".encode()).hexdigest()[:32]


def revoke_session(user_id, session_key):
    """Close the open streams and sockets of this one session on every worker, once the
    change is committed; the user's other sessions keep theirs."""
    tag = session_tag(session_key)
    if tag is not None:
        transaction.on_commit(lambda: _broadcast_session(user_id, tag))


def session_edge_channel(tag):
    """The GRIP channel every connection Pushpin holds for one session is subscribed to
    (require-sub), so that ending the session closes those and no others."""
    return f"session-{tag}"


def ended_session_key(tag):
    return key("ended-session", tag)


def _broadcast_session(user_id, tag):
    try:
        redis = get_sync_client()
        redis.set(ended_session_key(tag), "1", ex=REMEMBER_SECONDS)
        redis.publish(revocation_channel(), f"{user_id} {tag}")
    except Exception as exc:
        logger.warning("could not tell the workers to end a session's streams: %s", exc)
    try:
        group_send(user_group_name(user_id), events.access_revoked(session=tag))
    except Exception as exc:
        logger.warning("could not tell the workers to close a session's sockets: %s", exc)
    if getattr(settings, "GRIP_URL", None):
        _close_session_at_the_edge(tag)
        # As for users: a connection Pushpin subscribes a moment late gets the second close.
        threading.Timer(EDGE_CLOSE_AGAIN_SECONDS, _close_session_at_the_edge, args=(tag,)).start()


def _close_session_at_the_edge(tag):
    from django_grip import publish
    from gripcontrol import HttpStreamFormat

    channel = session_edge_channel(tag)
    try:
        publish(channel, HttpStreamFormat(close=True), meta={"require_sub": channel}, blocking=True)
    except Exception as exc:
        logger.warning("could not tell Pushpin to close a session's streams: %s", exc)


async def asession_ended(tag):
    """True when the session this tag names was ended (within REMEMBER_SECONDS)."""
    return bool(await get_async_client().exists(ended_session_key(tag)))


def revoked_key(user_id):
    return key("revoked", user_id)


def _broadcast(user_ids):
    for user_id in user_ids:
        # Each step on its own: the change itself is done, and what one step could not
        # reach still re-checks access when it reconnects.
        try:
            redis = get_sync_client()
            redis.set(revoked_key(user_id), repr(time.time()), ex=REMEMBER_SECONDS)
            redis.publish(revocation_channel(), str(user_id))
        except Exception as exc:
            logger.warning("could not tell the workers to end user %s's streams: %s", user_id, exc)
        try:
            group_send(user_group_name(user_id), events.access_revoked())
        except Exception as exc:
            logger.warning("could not tell the workers to close user %s's sockets: %s", user_id, exc)
    if getattr(settings, "GRIP_URL", None):
        _close_all_at_the_edge(user_ids)
        # Pushpin subscribes a connection to its channels a moment after it answers the
        # connect, so a connection opened just before the change can miss the close; the
        # second close, a little later, reaches it. Not a daemon: a command that made the
        # change waits for it before it exits.
        threading.Timer(EDGE_CLOSE_AGAIN_SECONDS, _close_all_at_the_edge, args=(user_ids,)).start()


def _close_all_at_the_edge(user_ids):
    for user_id in user_ids:
        try:
            _close_at_the_edge(user_id)
        except Exception as exc:
            logger.warning("could not tell Pushpin to close user %s's streams: %s", user_id, exc)


def _close_at_the_edge(user_id):
    """Close the user's connections Pushpin holds, whichever of their channels they read.

    Every GRIP connection of theirs subscribes to `user-<id>` with the require-sub
    filter (django-eventstream's instructions). The close requires that very
    channel, which each of them holds, whichever event channels it reads (`metrics`,
    their own, a selection's: dashboard.edge_selections)."""
    from django_grip import publish
    from gripcontrol import HttpStreamFormat

    channel = f"user-{user_id}"
    publish(channel, HttpStreamFormat(close=True), meta={"require_sub": channel}, blocking=True)


async def arevoked_since(user_id, issued_at):
    """True when the user's access changed in a later second than `issued_at` (whole
    unix seconds, as tokens carry them). Within the same second the token is given the
    benefit of the doubt: a reconnect right after a change must not be refused, and
    the connection an older token belonged to was closed at the edge anyway."""
    raw = await get_async_client().get(revoked_key(user_id))
    return raw is not None and int(float(raw)) > issued_at


# --- share links ------------------------------------------------------------------

# A share link's revocation travels on the same channel as a user's, marked so.
SHARE_PREFIX = "share:"


def share_edge_channel(link_id):
    """The GRIP channel every connection Pushpin holds for a share link is subscribed to
    (require-sub), so that one close reaches all of them whatever they read."""
    return f"share-{link_id}"


def revoke_share(link_id):
    """End the open streams of share link `link_id` on every worker and at the edge,
    once the change (if any) is committed: it was revoked, expired or lost its dashboard."""
    transaction.on_commit(lambda: _broadcast_share(link_id))


def _broadcast_share(link_id):
    try:
        get_sync_client().publish(revocation_channel(), f"{SHARE_PREFIX}{link_id}")
    except Exception as exc:
        logger.warning("could not tell the workers to end share link %s's streams: %s", link_id, exc)
    if getattr(settings, "GRIP_URL", None):
        _close_share_at_the_edge(link_id)
        # As for users: a connection Pushpin subscribes a moment late gets the second close.
        threading.Timer(EDGE_CLOSE_AGAIN_SECONDS, _close_share_at_the_edge, args=(link_id,)).start()


def _close_share_at_the_edge(link_id):
    from django_grip import publish
    from gripcontrol import HttpStreamFormat

    channel = share_edge_channel(link_id)
    try:
        publish(channel, HttpStreamFormat(close=True), meta={"require_sub": channel}, blocking=True)
    except Exception as exc:
        logger.warning("could not tell Pushpin to close share link %s's streams: %s", link_id, exc)


# --- every worker hears them -----------------------------------------------------

_handlers = []
_share_handlers = []


def on_share_revoked(handler):
    """Call `handler(link_id)` on each worker's event loop whenever a share link ends (in
    any process): how the SSE hub ends its streams and the link's cache forgets it."""
    if handler not in _share_handlers:
        _share_handlers.append(handler)
    return handler


def on_revoked(handler):
    """Call `handler(user_id, session)` on each worker's event loop whenever a user's
    access changes, in any process (`session` None), or one session of theirs ended
    (`session`: its `session_tag`): how a transport ends what it holds for them."""
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


class RevocationListener:
    """One per event loop: subscribes to `revocation_channel()` and, for each user named
    there, forgets this worker's remembered access answers and calls the handlers."""

    def __init__(self):
        self.task = None
        self.connected = asyncio.Event()

    def start(self):
        # A fresh context: the listener outlives the request that happened to start it.
        if self.task is None or self.task.done():
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self.listen_forever(), context=contextvars.Context())

    def heard(self, raw):
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if text.startswith(SHARE_PREFIX):
            return self.heard_share(text[len(SHARE_PREFIX) :])
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            user_part, _, session = text.partition(" ")
            user_id = int(user_part)
        except (TypeError, ValueError, UnicodeDecodeError):
            logger.warning("ignoring a malformed revocation message")
            return
        session = session or None
        if session is None:
            # One session ending changes no access: the remembered answers stay good.
            access.forget_user_everywhere(user_id)
        for handler in tuple(_handlers):
            try:
                handler(user_id, session)
            except Exception:
                logger.exception("could not end what user %s had open here", user_id)

    def heard_share(self, raw):
        try:
            link_id = int(raw)
        except ValueError:
            logger.warning("ignoring a malformed share revocation message")
            return
        for handler in tuple(_share_handlers):
            try:
                handler(link_id)
            except Exception:
                logger.exception("could not end what share link %s had open here", link_id)

    async def listen_forever(self):
        await subscribe_forever(
            revocation_channel(), self.heard, name="revocation listener", connected=self.connected
        )


# The running event loop's listener (not started): redis.asyncio connections and tasks
# cannot cross loops.
listener = PerLoop(RevocationListener)


def listen():
    """Hear revocations on this event loop (if not yet): every path that remembers
    access answers or holds something open for a user (streams, GRIP connects,
    sockets) calls this before it serves anyone."""
    listener().start()


def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        revoke([user.pk])


def on_user_saved(sender, instance, created, update_fields=None, **kwargs):
    if created or (update_fields and set(update_fields) <= HARMLESS_FIELDS):
        return
    revoke([instance.pk])


def on_user_m2m(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:  # user.groups / user.user_permissions changed
        revoke([instance.pk])
    elif isinstance(instance, Group):  # group.user_set changed
        revoke(pk_set or [])


def on_group_permissions(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    User = get_user_model()
    # reverse: permission.group_set changed, so the users of those groups.
    groups = Group.objects.filter(pk__in=pk_set or []) if reverse else [instance]
    revoke(User.objects.filter(groups__in=groups).values_list("pk", flat=True))


def connect_signals():
    User = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid="livedash.revoke.logout")
    post_save.connect(on_user_saved, sender=User, dispatch_uid="livedash.revoke.user")
    m2m_changed.connect(on_user_m2m, sender=User.groups.through, dispatch_uid="livedash.revoke.groups")
    m2m_changed.connect(
        on_user_m2m, sender=User.user_permissions.through, dispatch_uid="livedash.revoke.perms"
    )
    m2m_changed.connect(
        on_group_permissions, sender=Group.permissions.through, dispatch_uid="livedash.revoke.group_perms"
    )

"""Who may read what and run what: the one answer for every way in.

Direct SSE streams (`dashboard.stream.request`), the connects Pushpin forwards
(`dashboard.stream.grip`), the WebSocket (`dashboard.control.consumers`), the
history endpoint, the page and django-eventstream's channel manager all ask here:

- `may_read(user, channel)` / `forbidden_channels(user, channels)`: the `metrics`
  channel needs VIEW_PERMISSION (or superuser), `user-<id>` is that user's alone;
- `permissions_of(user)` and `command_refusal(command, permissions)`: each WebSocket
  command names the permission it needs (`dashboard.control.protocol.COMMANDS`);
- `stream_refusal(...)`: the status and message a refused stream request gets, the
  same ladder for direct and proxied requests (403 anonymous before 400 malformed,
  so nothing about a request is revealed to someone who may not make it; then 403
  for the channels the user may not read);
- `second_factor_due(user)`: MFA_REQUIRED covers the user and they have enrolled no
  second factor yet; such a user reads no stream and opens no socket (the pages lead
  them to enrol, accounts.middleware).

Answers are remembered for ACCESS_CACHE_SECONDS per session (user and session
auth hash) in `cache`: a reconnect storm is thousands of the same few sessions
asking the same question.
"""

import asyncio
import time
import weakref

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user, get_user_model
from django.db import connections

from dashboard.stream.channels import METRICS_CHANNEL, USER_CHANNEL

VIEW_PERMISSION = "dashboard.view_metric"
CONTROL_PERMISSION = "dashboard.change_metric"
# Acknowledging and silencing change an alert rule's state: the rule's change permission.
ALERT_PERMISSION = "alerts.change_alertrule"
# Everything a command may need; `permissions_of` reads them in one go.
PERMISSIONS = (VIEW_PERMISSION, CONTROL_PERMISSION, ALERT_PERMISSION)

# How long a worker trusts its last answer for a session. A deactivated user, a
# revoked permission or a changed password closes the door on the next connect
# at most this many seconds later.
ACCESS_CACHE_SECONDS = 3.0
ACCESS_CACHE_MAX = 20000


# --- the rules --------------------------------------------------------------------


def has_permission(user, permission):
    return user.is_active and (user.is_superuser or user.has_perm(permission))


def can_view_metrics(user):
    """The `metrics` stream, its history and `snapshot` all ask this one question."""
    return has_permission(user, VIEW_PERMISSION)


def can_control_sampling(user):
    """`set_interval`, `pause` and `resume`, and the controls on the page."""
    return has_permission(user, CONTROL_PERMISSION)


def permissions_of(user):
    """The PERMISSIONS this user holds, as a frozenset (cached per socket)."""
    return frozenset(permission for permission in PERMISSIONS if has_permission(user, permission))


def may_read(user, channel):
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if channel == METRICS_CHANNEL:
        return can_view_metrics(user)
    match = USER_CHANNEL.fullmatch(channel)
    return bool(match) and int(match.group(1)) == user.pk


def forbidden_channels(user, channels):
    return [channel for channel in channels if not may_read(user, channel)]


# What `channel_access` lists as forbidden for a user whose second factor is due.
SECOND_FACTOR_DUE = "second-factor-due"


def second_factor_due(user):
    """True when MFA_REQUIRED (`staff` or `all`) covers this signed-in user and they have
    no authenticator app or passkey yet (recovery codes alone are no second factor)."""
    policy = settings.MFA_REQUIRED
    if policy == "off" or user is None or not user.is_authenticated:
        return False
    if policy == "staff" and not (user.is_staff or user.is_superuser):
        return False
    from allauth.mfa.models import Authenticator

    return (
        not Authenticator.objects.filter(user=user).exclude(type=Authenticator.Type.RECOVERY_CODES).exists()
    )


def command_refusal(command_type, permission, permissions):
    """None when a command needing `permission` may run for someone holding
    `permissions`; else the message its `forbidden` error carries."""
    if permission is None or permission in permissions:
        return None
    return f"{command_type} needs the {permission} permission"


def stream_refusal(authenticated, problem, forbidden):
    """(status, message) for a stream request that is refused, or None."""
    if not authenticated:
        return 403, "Log in to read event streams"
    if problem:
        return 400, problem
    if SECOND_FACTOR_DUE in forbidden:
        return 403, "Enrol a second factor (an authenticator app or a passkey) to read event streams"
    if forbidden:
        return 403, f"Permission denied to channels: {', '.join(forbidden)}"
    return None


# --- remembered answers -----------------------------------------------------------


class AccessCache:
    """Recent answers per ((session user id, session auth hash), question).

    Keyed on the session's auth hash, so a new login is a new entry; a revocation
    (dashboard.revocation) drops the user's answers on every worker."""

    def __init__(self, seconds=ACCESS_CACHE_SECONDS, max_entries=ACCESS_CACHE_MAX):
        self.seconds, self.max_entries = seconds, max_entries
        self.entries = {}
        _access_caches.add(self)

    def get(self, key):
        entry = self.entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key, answer):
        if len(self.entries) >= self.max_entries:
            self.entries = {k: e for k, e in self.entries.items() if e[0] > time.monotonic()}
            if len(self.entries) >= self.max_entries:
                self.entries = {}
        self.entries[key] = (time.monotonic() + self.seconds, answer)

    def clear(self):
        self.entries = {}

    def forget_user(self, user_id):
        """Drop every answer about this user: keys start with (user id, auth hash), or
        with the user id alone where no session is involved."""
        user_id = str(user_id)
        self.entries = {key: entry for key, entry in self.entries.items() if _user_of(key) != user_id}


def _user_of(key):
    who = key[0]
    return str(who[0] if isinstance(who, tuple) else who)


_access_caches = weakref.WeakSet()


def forget_user_everywhere(user_id):
    """This worker's remembered answers about the user, in every cache, are stale."""
    for remembered in tuple(_access_caches):
        remembered.forget_user(user_id)


cache = AccessCache()
# Lookups being computed now, so connects that miss together wait for one.
lookups_under_way = {}


async def asession_identity(session):
    """(user id, auth hash) the session claims, or None for an anonymous one; read
    through Django's async session API (no thread of our own)."""
    user_id = await session.aget(SESSION_KEY)
    if user_id is None:
        return None
    return str(user_id), await session.aget(HASH_SESSION_KEY, "")


def channel_access(user, channels):
    """(the user, or None when anonymous; the channels they may not read)."""
    if user is None or not user.is_authenticated:
        return None, []
    if second_factor_due(user):
        return user, [SECOND_FACTOR_DUE]
    return user, forbidden_channels(user, channels)


def user_channel_access(user_id, channels):
    """channel_access for a user named by id (Pushpin's signed next-links carry no session)."""
    try:
        return channel_access(get_user_model().objects.filter(pk=int(user_id)).first(), channels)
    finally:
        connections.close_all()


async def arequest_channel_access(request, channels):
    """(user or None when anonymous, forbidden channels) for a request's session user:
    the session is read on the loop, a recent answer for it is reused, and only a miss
    goes to a thread (its database connection closed there, so no stream keeps one);
    connects that miss together wait for the one lookup."""
    identity = await asession_identity(request.session)
    if identity is None:
        return None, []
    key = (identity, "channels", tuple(channels))
    answer = cache.get(key)
    if answer is not None:
        return answer
    lookup = lookups_under_way.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(
            sync_to_async(session_channel_access, thread_sensitive=False)(request, channels)
        )
        lookups_under_way[key] = lookup
        lookup.add_done_callback(lambda done: _remember(key, done))
    return await asyncio.shield(lookup)


def session_channel_access(request, channels):
    try:
        # The user itself, not request.user's lazy wrapper: the answer is remembered,
        # and the wrapper would keep the whole request alive with it.
        return channel_access(get_user(request), channels)
    finally:
        connections.close_all()


def _remember(key, lookup):
    lookups_under_way.pop(key, None)
    if not lookup.cancelled() and lookup.exception() is None:
        cache.put(key, lookup.result())

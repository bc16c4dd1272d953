"""What a socket reads as it opens: the user's permissions and groups, and the state its
`hello` carries (notifications, alerts, sampling).

A connect storm is thousands of sockets of a few users at once, so every part is
kept per worker and read once for all of them (database.shared_answer); each
cache is keyed on what moves when its answer changes, so a stale one is never
reused.
"""

import asyncio
from dataclasses import dataclass

from alerts import actions as alert_actions
from dashboard import access
from dashboard.collector import sampling
from dashboard.collector.sampling import SamplingState
from dashboard.control.database import shared_answer
from notifications import services as notification_services
from notifications.messages import localize_rule

# Per-worker hello notification states, keyed on (user, last_notification, the
# notifications version, language): every socket of a user in a connect storm shares
# one database trip, and one in flight is awaited rather than repeated. A new
# notification or read mark moves the version, so a stale state is never reused
# (see notifications.services.VERSION_KEY); the time bound covers deletions.
hello_cache = access.AccessCache()

# Per-worker hello alert states, keyed on the alerts version (moved by every fire,
# resolve, acknowledgement and silence): a connect storm reads them once.
alerts_cache = access.AccessCache()


def read_access(user):
    return access.permissions_of(user), notification_services.group_names_for(user)


async def socket_access(user):
    """(permissions held, notification groups), reused for ACCESS_CACHE_SECONDS per user
    and session auth hash (dashboard.access.cache): a storm of the same users then costs
    one database trip each; a changed password (which ends the session) applies at once."""
    identity = ((str(user.pk), user.get_session_auth_hash()), "ws")
    return await shared_answer(access.cache, identity, read_access, user)


async def second_factor_due(user):
    """access.second_factor_due, remembered like socket_access (a storm asks it once)."""
    identity = ((str(user.pk), user.get_session_auth_hash()), "second-factor-due")
    return await shared_answer(access.cache, identity, access.second_factor_due, user)


async def hello_alerts():
    version = await alert_actions.aversion()
    return await shared_answer(alerts_cache, ("alerts", version), alert_actions.active_states)


async def hello_notifications(user, since_id, language=None):
    version = await notification_services.aversion()
    return await shared_answer(
        hello_cache,
        (user.pk, since_id, version, language),
        notification_services.hello_state,
        user,
        since_id,
        language,
    )


@dataclass(frozen=True)
class HelloState:
    notifications: dict  # {"unread", "recent", "missed"} (notifications.services.hello_state)
    alerts: list  # the active alert states, in the socket's language
    sampling: SamplingState


async def hello_state(user, since_id, language):
    """What `hello` tells the socket of `user`, who has the notifications up to `since_id`."""
    notifications, alerts, state = await asyncio.gather(
        hello_notifications(user, since_id, language),
        hello_alerts(),
        sampling.aget_state(),
    )
    return HelloState(notifications, [localize_rule(alert, language) for alert in alerts], state)

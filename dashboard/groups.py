"""Every channel-layer group, by name, and the one way to send to one from synchronous code.

A socket joins `DASHBOARD_GROUP` (presence, sampling and alert changes) and the
groups its user receives notifications through: their own, one per auth group,
and `EVERYONE_GROUP`. Revoking a user's access closes their sockets through
their own group, which every socket of theirs has joined.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"
EVERYONE_GROUP = "notify.all"


def user_group_name(user_id):
    return f"notify.user.{user_id}"


def auth_group_name(group_id):
    return f"notify.group.{group_id}"


def group_send(group, message):
    """Send `message` to every socket in `group`, on every worker; raises when the
    channel layer (Redis) cannot take it."""
    send = async_to_sync(get_channel_layer().group_send)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        send(group, message)
        return
    # Called (synchronously) on a thread that runs an event loop, as in a notebook:
    # async_to_sync refuses to run there, so a short-lived thread sends it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(send, group, message).result()


def group_send_quietly(group, message):
    """A best-effort push: logged, not raised, when Redis is away."""
    try:
        group_send(group, message)
    except Exception as exc:
        logger.warning("could not push %s to %s: %s", message.get("type"), group, exc)

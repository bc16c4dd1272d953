"""Who is online: entries in Redis that expire unless refreshed, and coalesced broadcasts.

Each worker keeps, in memory, how many sockets each user has open on it. The
shared view is one Redis sorted set whose members are `<worker>|<user id>|<username>`
and whose scores are expiry times: a worker adds its member when a user's first
socket opens there, removes it when the last one closes, and pushes the expiry
forward every REFRESH_EVERY seconds while it has anyone. A worker that dies stops
refreshing, so its members fall out of the online list after ENTRY_TTL at most
(and the next refresh of any live worker prunes them and tells everyone).

Broadcasts carry the full online list, not a diff: a user may have sockets on
several workers, so only the shared set knows whether someone really left, and a
full list lets every page converge even if it missed a broadcast. Each worker
sends at most one `presence.update` per COALESCE_SECONDS, however many people
join or leave in that second, so a thousand simultaneous openings cost one
message per dashboard, not a million.
"""

import asyncio
import logging
import time

from channels.layers import get_channel_layer

from dashboard.connections import WORKER_ID
from dashboard.control import events
from dashboard.groups import DASHBOARD_GROUP
from dashboard.loops import PerLoop
from dashboard.redis import get_async_client, key

logger = logging.getLogger(__name__)

ENTRY_TTL = 30.0
REFRESH_EVERY = 10.0
COALESCE_SECONDS = 1.0
# The set itself goes away when no worker refreshes it any more.
SET_TTL = int(ENTRY_TTL * 2)


def _presence_key():
    return key("presence")


def _member(user_id, username):
    return f"{WORKER_ID}|{user_id}|{username}"


def _parse_member(raw):
    _worker, user_id, username = raw.decode().split("|", 2)
    return int(user_id), username


async def online():
    """Everyone with a live entry on any worker, by username: [{"id", "username"}]."""
    members = await get_async_client().zrangebyscore(_presence_key(), time.time(), "+inf")
    people = dict(_parse_member(raw) for raw in members)
    return [
        {"id": user_id, "username": username}
        for user_id, username in sorted(people.items(), key=lambda item: (item[1], item[0]))
    ]


class Tracker:
    """This worker's side of presence, bound to one event loop."""

    def __init__(self):
        self.sockets = {}  # user id -> [username, open sockets on this worker]
        self.changed = False
        self.last_broadcast = float("-inf")
        self.flusher = None
        self.refresher = None

    async def join(self, user_id, username):
        entry = self.sockets.setdefault(user_id, [username, 0])
        entry[1] += 1
        if entry[1] == 1:
            async with get_async_client().pipeline(transaction=False) as pipe:
                pipe.zadd(_presence_key(), {_member(user_id, username): _expiry()})
                pipe.expire(_presence_key(), SET_TTL)
                await pipe.execute()
            self._schedule_broadcast()
        self._ensure_refresher()

    async def leave(self, user_id):
        entry = self.sockets.get(user_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del self.sockets[user_id]
        await get_async_client().zrem(_presence_key(), _member(user_id, entry[0]))
        self._schedule_broadcast()

    def _schedule_broadcast(self):
        self.changed = True
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self):
        # Changes that arrive while we wait or send are picked up by the next
        # round of this loop, so none is lost and at most one send per second.
        loop = asyncio.get_running_loop()
        while self.changed:
            await asyncio.sleep(max(0.0, self.last_broadcast + COALESCE_SECONDS - loop.time()))
            self.changed = False
            self.last_broadcast = loop.time()
            try:
                await broadcast()
            except Exception as exc:  # Redis away: the next change or refresh tries again.
                logger.warning("cannot broadcast presence: %s", exc)

    def _ensure_refresher(self):
        if self.refresher is None or self.refresher.done():
            self.refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self):
        while self.sockets:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await self.refresh()
            except Exception as exc:
                logger.warning("cannot refresh presence: %s", exc)

    async def refresh(self):
        """Push our entries' expiry forward and drop everyone else's expired ones."""
        client = get_async_client()
        async with client.pipeline(transaction=False) as pipe:
            if self.sockets:
                expiry = _expiry()
                pipe.zadd(
                    _presence_key(),
                    {_member(user_id, username): expiry for user_id, (username, _) in self.sockets.items()},
                )
            pipe.zremrangebyscore(_presence_key(), "-inf", time.time())
            pipe.expire(_presence_key(), SET_TTL)
            results = await pipe.execute()
        if results[-2]:
            self._schedule_broadcast()


def _expiry():
    return time.time() + ENTRY_TTL


async def broadcast():
    layer = get_channel_layer()
    await layer.group_send(DASHBOARD_GROUP, events.presence_update(await online()))


# One tracker per event loop: redis.asyncio pools and tasks cannot cross loops.
tracker = PerLoop(Tracker)

"""`/events/` behind Pushpin (GRIP): the worker authorises, Pushpin holds the stream.

With `GRIP_URL` set, a request Pushpin forwarded (GripMiddleware checked its
signature) gets the same checks as a direct one, with the same status codes, and
then a short response carrying GRIP instructions instead of a stream: Pushpin
keeps the client connected, subscribes it to the channels, and sends it what
`dashboard.live.send` publishes. The instructions themselves are
django-eventstream's (`EventResponse.to_grip_response`: ids per channel, the
`user-<id>` channel that `channel_permission_changed` kicks through, the
signed `es-meta` next link Pushpin calls to recover a missed event), so the
library's client and Pushpin's recovery work unchanged.

What differs from the library's `events` view is the cost of a connection: no
per-request channel-manager instance or sync storage round trips; one short trip
to a thread for the session and permission lookups (its database connection
closed before returning, as for direct streams), and async Redis reads.
"""

import asyncio
import logging

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django_eventstream.eventresponse import EventResponse
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import add_default_headers, get_channelmanager
from redis.exceptions import RedisError

from dashboard.eventstorage import DashboardRedisStorage
from dashboard.sse import (
    EVENT_ID,
    AccessCache,
    BadStreamRequest,
    error_response,
    parse_stream_request,
    session_identity,
)

logger = logging.getLogger(__name__)

# Events replayed per response; Pushpin fetches the next page straight away.
REPLAY_BATCH = 100
GRIP_CHANNEL_PREFIX = "events-"
# Pushpin forwards new connections as fast as clients arrive. Measured: a burst
# of 1,200 connects opened Redis reads all at once, emptied the shared pool
# (MaxConnectionsError) and timed out connecting; bounded, they queue briefly.
REDIS_READS_AT_ONCE = 32
_read_limits = {}
# Browser connects reuse a recent answer for the same session, as direct streams do
# (dashboard.sse.ACCESS_CACHE_SECONDS): Pushpin forwards a connect storm to one worker
# (its targets are failover, not round-robin), and measured at 1,000 connects the
# session's user and permission queries were most of the view's own time.
access_cache = AccessCache()


def redis_read_limit():
    loop = asyncio.get_running_loop()
    limit = _read_limits.get(loop)
    if limit is None:
        limit = _read_limits[loop] = asyncio.Semaphore(REDIS_READS_AT_ONCE)
    return limit


def is_proxied(request):
    grip = getattr(request, "grip", None)
    return grip is not None and grip.proxied


def es_meta_user_id(request):
    """The user id Pushpin's next-link/recover request carries in `es-meta`, or None.

    Those requests come from Pushpin, not the browser, so they carry no session;
    the library signs the user into the link with SECRET_KEY and an expiry."""
    token = request.GET.get("es-meta")
    if not token:
        return None
    try:
        meta = jwt.decode(token, settings.SECRET_KEY.encode(), algorithms=["HS256"])
    except jwt.PyJWTError:
        raise BadStreamRequest("Invalid or expired es-meta") from None
    user_id = str(meta.get("user", ""))
    if user_id != "anonymous" and not EVENT_ID.match(user_id):
        raise BadStreamRequest("Invalid es-meta user")
    return user_id


def recover_last_ids(request, channels):
    """{channel: int} from the Grip-Last header Pushpin sends when it recovers."""
    last_ids = {}
    for grip_channel, last_id in request.grip.last.items():
        if not grip_channel.startswith(GRIP_CHANNEL_PREFIX):
            continue
        channel = grip_channel[len(GRIP_CHANNEL_PREFIX) :]
        if channel not in channels:
            continue
        if not EVENT_ID.match(str(last_id)):
            raise BadStreamRequest("Malformed Grip-Last id")
        last_ids[channel] = int(last_id)
    return last_ids


def resolve_user_access(request, user_id, channels):
    """(user or None, forbidden channels), off the request's thread, no connection kept."""
    try:
        if user_id is None:
            return session_user_access(request, channels)
        if user_id == "anonymous":
            return None, []
        return user_access(get_user_model().objects.filter(pk=int(user_id)).first(), channels)
    finally:
        connections.close_all()


def session_user_access(request, channels):
    identity = session_identity(request.session)
    if identity is None:
        return None, []
    return access_cache.get_or_compute(
        (identity, tuple(channels)), lambda: user_access(request.user, channels)
    )


def user_access(user, channels):
    if user is None or not user.is_authenticated:
        return None, []
    manager = get_channelmanager()
    return user, [c for c in channels if not manager.can_read_channel(user, c)]


async def replay(storage, response, channel, last_id):
    """Fill `response` for one channel: what came after last_id, or a reset."""
    if last_id is None:
        response.channel_items[channel] = []
        response.channel_last_ids[channel] = str(await storage.aget_current_id(channel))
        return
    try:
        events = await storage.aget_events(channel, last_id, limit=REPLAY_BATCH + 1)
    except EventDoesNotExist as exc:
        response.channel_items[channel] = []
        response.channel_last_ids[channel] = str(exc.current_id)
        response.channel_reset.add(channel)
        return
    if len(events) > REPLAY_BATCH:
        events = events[:REPLAY_BATCH]
        response.channel_more.add(channel)
    response.channel_items[channel] = events
    response.channel_last_ids[channel] = str(last_id)


async def grip_events(request):
    try:
        channels, last_ids = parse_stream_request(request)
        user_id = es_meta_user_id(request)
        if request.GET.get("recover") == "true":
            last_ids = recover_last_ids(request, channels)
        problem = None
    except BadStreamRequest as exc:
        channels, last_ids, user_id, problem = [], {}, None, str(exc)
    user, forbidden = await sync_to_async(resolve_user_access, thread_sensitive=False)(
        request, user_id, channels
    )
    if user is None:
        return error_response(request, 403, "Log in to read event streams")
    if problem:
        return error_response(request, 400, problem)
    if forbidden:
        return error_response(request, 403, f"Permission denied to channels: {', '.join(forbidden)}")
    storage = DashboardRedisStorage()
    response = EventResponse()
    response.is_next = request.GET.get("link") == "next"
    response.is_recover = request.GET.get("recover") == "true"
    response.user = user
    try:
        async with redis_read_limit():
            for channel in channels:
                await replay(storage, response, channel, last_ids.get(channel))
    except RedisError as exc:
        # The client (or Pushpin, when recovering) retries; nothing is lost meanwhile.
        logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
        return error_response(request, 503, "Event storage is unavailable; retry shortly")
    http_response = response.to_grip_response(request)
    add_default_headers(http_response, request=request)
    return http_response

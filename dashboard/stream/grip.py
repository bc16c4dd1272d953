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

What differs from the library's `events` view is the cost of a connection: the
connect skips Django's middleware chain (`ProxiedStreamConnects`), the session
is read on the loop, a recent answer for the same session is reused, and only
a miss goes to a thread for the user and permission lookups (its database
connection closed before returning, as for direct streams); storage reads are
async. Connects are worked on a few at a time, in arrival order.
"""

import asyncio
import io
import logging
import time
from importlib import import_module

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections, connections
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.functional import SimpleLazyObject
from django_eventstream.eventresponse import EventResponse
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import add_default_headers, get_channelmanager
from django_grip import GripMiddleware
from redis.exceptions import RedisError

from dashboard.loops import SemaphorePerLoop
from dashboard.origins import request_origin_allowed
from dashboard.revocation import arevoked_since
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.views import (
    EVENT_ID,
    EVENTS_PATH,
    ORIGIN_REFUSED,
    AccessCache,
    BadStreamRequest,
    asession_identity,
    beyond_replay_window,
    error_response,
    get_hub,
    parse_stream_request,
)

logger = logging.getLogger(__name__)

# Events replayed per response; Pushpin fetches the next page straight away.
REPLAY_BATCH = 100
GRIP_CHANNEL_PREFIX = "events-"
# Pushpin forwards new connections as fast as clients arrive, and a worker that
# works on all of them at once finishes none in time. Measured with 3,000 at once,
# 8 connected in the first 46 s: clients gave up after 15 s while their requests
# were still being worked on (and a burst of 1,200 once emptied the shared Redis
# pool). A few at a time, in arrival order, the first viewers get in at once and
# the rest follow steadily. Nothing is refused for being late: measured, refusing
# connects past 1,000 waiting (503, retried by the client) connected 242 of 3,000
# in the storm's 35 s instead of all 3,000 in 19 s, since each retry costs Pushpin
# as much CPU as a connect.
CONNECTS_AT_ONCE = 16
CONNECTION_SWEEP_SECONDS = 1.0
# asyncio.Semaphore wakes its waiters in arrival order.
connect_slots = SemaphorePerLoop()
# Browser connects reuse a recent answer for the same session, as direct streams do
# (dashboard.stream.views.ACCESS_CACHE_SECONDS): Pushpin forwards a connect storm to one worker
# (its targets are failover, not round-robin), and measured at 1,000 connects the
# session's user and permission queries were most of the view's own time.
access_cache = AccessCache()
lookups_under_way = {}


# django-eventstream's es-meta tokens live this long; their expiry says when they were issued.
ES_META_SECONDS = 3600


def es_meta_identity(request):
    """(user id, issued at) that Pushpin's next-link/recover request carries in `es-meta`,
    or (None, None) for a browser's connect.

    Those requests come from Pushpin, not the browser, so they carry no session;
    the library signs the user into the link with SECRET_KEY and an expiry. The
    token dies with the user's access: one issued before a revocation (logout,
    password change, deactivation, permission change; dashboard.revocation) is
    refused, so it is never a credential that outlives the session it came from."""
    token = request.GET.get("es-meta")
    if not token:
        return None, None
    try:
        meta = jwt.decode(
            token, settings.SECRET_KEY.encode(), algorithms=["HS256"], options={"require": ["exp"]}
        )
    except jwt.PyJWTError:
        raise BadStreamRequest("Invalid or expired es-meta") from None
    user_id = str(meta.get("user", ""))
    if user_id != "anonymous" and not EVENT_ID.match(user_id):
        raise BadStreamRequest("Invalid es-meta user")
    return user_id, int(meta["exp"]) - ES_META_SECONDS


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


async def resolve_user_access(request, user_id, channels):
    """(user or None, forbidden channels).

    A browser's connect reads its session on the loop and reuses a recent answer
    for it; only a miss (or Pushpin's next-link, which names the user) goes to a
    thread, which closes its database connection before returning. Connects that
    miss together wait for the one lookup already under way."""
    if user_id == "anonymous":
        return None, []
    if user_id is not None:
        return await sync_to_async(user_access_by_id, thread_sensitive=False)(user_id, channels)
    identity = await asession_identity(request.session)
    if identity is None:
        return None, []
    key = (identity, tuple(channels))
    answer = access_cache.get(key)
    if answer is not None:
        return answer
    lookup = lookups_under_way.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(
            sync_to_async(session_user_access, thread_sensitive=False)(request, channels)
        )
        lookups_under_way[key] = lookup
        lookup.add_done_callback(lambda done: remember_access(key, done))
    return await asyncio.shield(lookup)


def remember_access(key, lookup):
    lookups_under_way.pop(key, None)
    if not lookup.cancelled() and lookup.exception() is None:
        access_cache.put(key, lookup.result())


def user_access_by_id(user_id, channels):
    try:
        return user_access(get_user_model().objects.filter(pk=int(user_id)).first(), channels)
    finally:
        connections.close_all()


def session_user_access(request, channels):
    try:
        return user_access(request.user, channels)
    finally:
        connections.close_all()


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
    current_id = await storage.aget_current_id(channel)
    if beyond_replay_window(last_id, current_id):
        response.channel_items[channel] = []
        response.channel_last_ids[channel] = str(current_id)
        response.channel_reset.add(channel)
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


async def grip_events(request, abandoned):
    """The answer to a connect or recover Pushpin forwarded; None when `abandoned()` says
    the request went away while it waited its turn, since nobody is left to answer."""
    try:
        channels, last_ids = parse_stream_request(request)
        user_id, issued_at = es_meta_identity(request)
        if request.GET.get("recover") == "true":
            last_ids = recover_last_ids(request, channels)
        problem = None
    except BadStreamRequest as exc:
        channels, last_ids, user_id, issued_at, problem = [], {}, None, None, str(exc)
    get_hub().start()  # hears revocations, which drop the access answers remembered here
    async with connect_slots(CONNECTS_AT_ONCE):
        if abandoned():
            return None
        return await authorise_and_replay(request, channels, last_ids, (user_id, issued_at), problem)


async def authorise_and_replay(request, channels, last_ids, es_meta, problem):
    if not request_origin_allowed(request):
        return error_response(request, 403, ORIGIN_REFUSED)
    user_id, issued_at = es_meta
    try:
        if user_id not in (None, "anonymous") and await arevoked_since(int(user_id), issued_at):
            return error_response(request, 403, "Access changed since this link was issued; reconnect")
    except RedisError as exc:
        logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
        return error_response(request, 503, "Event storage is unavailable; retry shortly")
    user, forbidden = await resolve_user_access(request, user_id, channels)
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
        for channel in channels:
            await replay(storage, response, channel, last_ids.get(channel))
    except RedisError as exc:
        # The client (or Pushpin, when recovering) retries; nothing is lost meanwhile.
        logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
        return error_response(request, 503, "Event storage is unavailable; retry shortly")
    http_response = response.to_grip_response(request)
    add_default_headers(http_response, request=request)
    return http_response


# --- connects Pushpin forwards, answered without Django's middleware chain ------


class ProxiedStreamConnects:
    """ASGI wrapper: a `/events/` GET that Pushpin signed goes straight to `grip_events`.

    Why: Pushpin forwards every new viewer, so a connect storm is thousands of
    these short requests, and under ASGI each sync middleware costs two trips
    to a thread. Profiled at 2,000 connects through Pushpin, one worker managed
    about 100 a second, most of it spent in those hops and the session read.
    Here the request skips the chain: GripMiddleware's own request and response
    steps still run (signature check, Grip-Last, the instruct headers), the
    session is read through Django's async session API, and the security headers
    and Content-Length come from SecurityMiddleware's and CommonMiddleware's
    response steps as on every other page. Nothing else in the chain applies to
    this one GET: no CSRF for a GET, no messages, no template, no cookie set.
    Anything else, including a request whose signature does not check out, goes
    through Django as before.
    """

    def __init__(self, app):
        self.app = app
        self.grip = GripMiddleware(self.app)
        self.security = SecurityMiddleware(self.app)
        self.common = CommonMiddleware(self.app)
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore
        self.next_sweep = 0.0

    async def __call__(self, scope, receive, send):
        if not self.is_stream_connect(scope):
            return await self.app(scope, receive, send)
        request = ASGIRequest(scope, io.BytesIO())
        self.grip.process_request(request)
        if not request.grip.proxied:
            return await self.app(scope, receive, send)
        request.session = self.session_store(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
        request.user = SimpleLazyObject(lambda: get_user(request))
        if (await receive())["type"] == "http.disconnect":
            return
        # A connect that waited too long is given up by its client, and Pushpin then drops
        # the request: daphne reports that as http.disconnect, and the worker skips it.
        # Measured, a 10,000-client storm otherwise spent the worker on requests nobody
        # waited for any more (22 connected in the storm's 40 s).
        disconnected = asyncio.ensure_future(receive())
        try:
            response = await grip_events(request, abandoned=disconnected.done)
            if response is None:
                return
            response = self.grip.process_response(request, response)
        except Exception:
            # The client (or Pushpin, recovering) retries; the worker carries on.
            logger.exception("GRIP /events/ connect failed")
            response = error_response(request, 500, "Server error; retry shortly")
        finally:
            disconnected.cancel()
        # Content-Length too, as through the chain: the answer reaches Pushpin whole.
        response = self.common.process_response(request, self.security.process_response(request, response))
        await self.sweep_connections()
        await self.app.send_response(response, send)

    async def sweep_connections(self):
        """What request_finished does through the chain, at most once a second.

        A session the cache no longer had was read from the database on the streams'
        shared thread, and nothing else would close that connection (or drop it once
        the database restarts). Sweeping after every connect cost 0.3-0.5 ms each."""
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + CONNECTION_SWEEP_SECONDS
        await sync_to_async(close_old_connections, thread_sensitive=True)()

    @staticmethod
    def is_stream_connect(scope):
        return (
            settings.GRIP_URL is not None
            and scope["type"] == "http"
            and scope["path"] == EVENTS_PATH
            and scope["method"] == "GET"
            and any(name == b"grip-sig" for name, _ in scope["headers"])
        )

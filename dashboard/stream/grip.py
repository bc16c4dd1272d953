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
import logging
import math
import time
from importlib import import_module
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django_eventstream.eventresponse import EventResponse
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import add_default_headers, sse_encode_event
from django_grip import GripMiddleware
from gripcontrol import Channel
from redis.exceptions import RedisError

from dashboard import access, edge_selections, frames, revocation
from dashboard import connections as open_connections
from dashboard.loops import PerLoop
from dashboard.origins import request_origin_allowed
from dashboard.storage import DashboardRedisStorage, Event
from dashboard.stream.app import stream_sync
from dashboard.stream.channels import METRICS_CHANNEL
from dashboard.stream.request import (
    EVENT_ID,
    EVENTS_PATH,
    ORIGIN_REFUSED,
    BadStreamRequest,
    ShareRefused,
    error_response,
    parse_stream_request,
    share_access,
    share_token,
    stream_request,
)
from dashboard.stream.stream import beyond_replay_window

logger = logging.getLogger(__name__)

# Events replayed per response; Pushpin fetches the next page straight away.
REPLAY_BATCH = 100
GRIP_CHANNEL_PREFIX = "events-"
# Pushpin forwards new connections as fast as clients arrive, and a worker that
# works on all of them at once finishes none in time (clients give up while their
# requests are still being worked on). A few at a time, in arrival order, the first
# viewers get in at once and the rest follow steadily. Nothing is refused for being
# late: a refused connect is retried, and each retry costs Pushpin as much as a
# connect. The measurements: docs/performance.md, "Design choices and their measurements".
CONNECTS_AT_ONCE = 16
# asyncio.Semaphore wakes its waiters in arrival order.
connect_slots = PerLoop(lambda: asyncio.Semaphore(CONNECTS_AT_ONCE))


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


def recover_last_ids(request, channels, selection=None):
    """{channel: int} from the Grip-Last header Pushpin sends when it recovers (a
    filtered stream is held on its selection's channel in place of `metrics`)."""
    held = None if selection is None else edge_selections.channel(edge_selections.digest(selection))
    last_ids = {}
    for grip_channel, last_id in request.grip.last.items():
        if not grip_channel.startswith(GRIP_CHANNEL_PREFIX):
            continue
        channel = grip_channel[len(GRIP_CHANNEL_PREFIX) :]
        if held is not None:
            channel = {held: METRICS_CHANNEL, METRICS_CHANNEL: None}.get(channel, channel)
        if channel not in channels:
            continue
        if not EVENT_ID.match(str(last_id)):
            raise BadStreamRequest("Malformed Grip-Last id")
        last_ids[channel] = int(last_id)
    return last_ids


async def resolve_user_access(request, user_id, channels):
    """(user or None, forbidden channels): Pushpin's next-link names the user, a
    browser's connect has its session (see dashboard.access for the cache)."""
    if user_id == "anonymous":
        return None, []
    if user_id is not None:
        return await sync_to_async(access.user_channel_access, thread_sensitive=False)(user_id, channels)
    return await access.arequest_channel_access(request, channels)


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


def select_replay(response, selection):
    """Keep of the `metrics` replay what `selection` wants; returns the id of the last
    event kept (None: none). When the last event read is not wanted, a `keep-alive` with
    its id ends the replay: the client's Last-Event-ID and the next link move past what
    was read, so nothing is read twice."""
    read = response.channel_items.get(METRICS_CHANNEL) or []
    kept = []
    for event in read:
        text = frames.select_json(event.type, event.data, selection)
        if text is not None:
            kept.append(Event(METRICS_CHANNEL, event.type, text, id=event.id))
    last_kept = kept[-1].id if kept else None
    if read and last_kept != read[-1].id:
        kept.append(Event(METRICS_CHANNEL, "keep-alive", "", id=read[-1].id))
    response.channel_items[METRICS_CHANNEL] = kept
    return last_kept


def hold_on_selection(request, selection, last_kept, chained):
    """Hold the stream on its selection's channel in place of `metrics`, where Pushpin
    expects the next publish to that selection to follow on (its `prev-id`,
    dashboard.edge_selections): the last event the replay kept, else the last one
    published to the selection, unless that is newer than what was read (the next
    publish then breaks the chain, and Pushpin recovers from what was read)."""
    instruct = request.grip.instruct
    whole = GRIP_CHANNEL_PREFIX + METRICS_CHANNEL
    held = GRIP_CHANNEL_PREFIX + edge_selections.channel(edge_selections.digest(selection))
    for grip_channel in instruct.channels:
        if grip_channel.name != whole:
            continue
        grip_channel.name = held
        read_to = int(grip_channel.prev_id)
        if last_kept is not None:
            grip_channel.prev_id = str(last_kept)
        elif chained is not None and chained <= read_to:
            grip_channel.prev_id = str(chained)
    instruct.meta["id_format"] = instruct.meta["id_format"].replace(f"%({whole})s", f"%({held})s")
    # Pushpin asks for the next link again now and then, which registers the selection
    # again (and checks the user's access again).
    instruct.set_next_link(instruct.next_link, timeout=edge_selections.REFRESH_SECONDS)


def is_pushpins_own(request):
    """True for the requests Pushpin makes by itself for a connection it holds (the next
    link, a recover): only they carry the `es-meta` token of that link."""
    return "es-meta" in request.GET


def end_of_stream(request, status, message):
    """The refusal of Pushpin's own request: a 200 with a `stream-error` and no GRIP
    instructions, which Pushpin passes on and then ends the client's stream.

    Why not the status itself: Pushpin takes any other answer to those requests as a
    passing failure. It keeps the client connected, asks again up to five times over
    about half a minute, and holds back whatever is published to the connection
    meanwhile, the close of a revocation included. It recovers, for one, a second after
    a channel's first subscriber joins, so a revocation in that second stayed open at the
    edge for that half minute. A refusal here is final; the client reconnects and its
    connect gets what the user may have now. No event id: the reconnect resumes where
    the stream was."""
    condition = "bad-request" if status == 400 else "forbidden"
    body = sse_encode_event("stream-error", {"condition": condition, "text": message}, json_encode=True)
    response = HttpResponse(body, content_type="text/event-stream")
    add_default_headers(response, request=request)
    return response


def refuse(request, status, message):
    """How a refusal is answered: with its status to a browser's connect; to Pushpin's own
    request, a refusal (4xx) ends the stream, while a failure that passes (5xx) keeps the
    status so that Pushpin asks again."""
    if is_pushpins_own(request) and status < 500:
        return end_of_stream(request, status, message)
    return error_response(request, status, message)


async def grip_share_events(request, abandoned):
    """`grip_events` for a share link's anonymous viewer: the link is resolved on every
    connect and every request Pushpin makes for the connection (next link, recover), so a
    revoked or expired link is refused there and the stream ends. The connection is held
    on its selection's channel (the link's scope, narrowed by `match`) and subscribed to
    the link's own channel, where a revocation publishes its close; the next link comes
    due at the link's expiry, which ends it at the edge with no request from anyone."""
    try:
        es_meta_identity(request)  # Pushpin's own requests carry a valid token, or none
        link, last_ids, selection = await share_access(request)
        if request.GET.get("recover") == "true":
            last_ids = recover_last_ids(request, [METRICS_CHANNEL], selection)
    except BadStreamRequest as exc:
        return refuse(request, 400, str(exc))
    except ShareRefused as refused:
        return refuse(request, refused.status, refused.message)
    if not request_origin_allowed(request):
        return refuse(request, 403, ORIGIN_REFUSED)
    async with connect_slots():
        if abandoned():
            return None
        # A browser's connect takes a place among the link's viewers at the edge (inside
        # the slots, as every Redis step of a connect); Pushpin's own requests for a
        # connection it holds already have one.
        if not is_pushpins_own(request):
            try:
                placed = await open_connections.aclaim_edge_share(link.id, settings.SHARE_MAX_VIEWERS)
            except RedisError as exc:
                logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
                return refuse(request, 503, "Share viewers cannot be counted now; retry shortly")
            if not placed:
                message = f"This share link has its {settings.SHARE_MAX_VIEWERS} viewers; try again later"
                return refuse(request, 429, message)
        storage = DashboardRedisStorage()
        response = EventResponse()
        response.is_next = request.GET.get("link") == "next"
        response.is_recover = request.GET.get("recover") == "true"
        try:
            chained = await edge_selections.aregister(selection)
            await replay(storage, response, METRICS_CHANNEL, last_ids.get(METRICS_CHANNEL))
        except RedisError as exc:
            logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
            return refuse(request, 503, "Event storage is unavailable; retry shortly")
    last_kept = select_replay(response, selection)
    http_response = response.to_grip_response(request)
    hold_on_selection(request, selection, last_kept, chained)
    instruct = request.grip.instruct
    edge = Channel(revocation.share_edge_channel(link.id))
    edge.filters.append("require-sub")
    instruct.add_channel(edge)
    if link.expires is not None:
        due = max(1, math.ceil(link.expires - time.time()))
        instruct.set_next_link(instruct.next_link, timeout=min(due, edge_selections.REFRESH_SECONDS))
    add_default_headers(http_response, request=request)
    return http_response


async def grip_events(request, abandoned):
    """The answer to a connect or recover Pushpin forwarded; None when `abandoned()` says
    the request went away while it waited its turn, since nobody is left to answer."""
    # A revocation drops the access answers (and share links) remembered here.
    revocation.listen()
    if share_token(request) is not None:
        return await grip_share_events(request, abandoned)
    try:
        channels, last_ids, selection = parse_stream_request(request)
        user_id, issued_at = es_meta_identity(request)
        if request.GET.get("recover") == "true":
            last_ids = recover_last_ids(request, channels, selection)
        problem = None
    except BadStreamRequest as exc:
        channels, last_ids, selection, user_id, issued_at, problem = [], {}, None, None, None, str(exc)
    async with connect_slots():
        if abandoned():
            return None
        es_meta = (user_id, issued_at)
        return await authorise_and_replay(request, channels, last_ids, es_meta, problem, selection)


# The next link's signed note of the session a held connection belongs to.
ES_SESSION = "es-session"
session_signer = signing.Signer(salt="livedash.stream.edge-session")


def edge_session(request, user_id):
    """The tag (revocation.session_tag) of the session a held connection belongs to, or
    None: a browser's connect has its session; Pushpin's own requests carry no cookie,
    only the `es-session` the previous answer signed into their next link, which must
    name the es-meta's user."""
    if user_id is None:
        return revocation.session_tag(request.session.session_key)
    signed = request.GET.get(ES_SESSION)
    if not signed or user_id == "anonymous":
        return None
    try:
        owner, _, tag = session_signer.unsign(signed).partition(":")
    except signing.BadSignature:
        raise BadStreamRequest("Invalid es-session") from None
    if owner != user_id or not tag:
        raise BadStreamRequest("Invalid es-session")
    return tag


def hold_for_session(request, user_id, tag):
    """Subscribe the held connection to its session's channel (require-sub), where ending
    that session publishes its close, and sign the session into the next link so that
    every later answer subscribes it again."""
    instruct = request.grip.instruct
    edge = Channel(revocation.session_edge_channel(tag))
    edge.filters.append("require-sub")
    instruct.add_channel(edge)
    link = urlsplit(instruct.next_link)
    query = parse_qsl(link.query, keep_blank_values=True)
    params = [(name, value) for name, value in query if name != ES_SESSION]
    params.append((ES_SESSION, session_signer.sign(f"{user_id}:{tag}")))
    instruct.next_link = urlunsplit(link._replace(query=urlencode(params)))


async def authorise_and_replay(request, channels, last_ids, es_meta, problem, selection=None):
    if not request_origin_allowed(request):
        return refuse(request, 403, ORIGIN_REFUSED)
    user_id, issued_at = es_meta
    try:
        session = edge_session(request, user_id)
    except BadStreamRequest as exc:
        return refuse(request, 400, str(exc))
    try:
        if user_id not in (None, "anonymous") and await revocation.arevoked_since(int(user_id), issued_at):
            return refuse(request, 403, "Access changed since this link was issued; reconnect")
        if user_id is not None and session is not None and await revocation.asession_ended(session):
            return refuse(request, 403, "This session has ended; sign in again")
    except RedisError as exc:
        logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
        return refuse(request, 503, "Event storage is unavailable; retry shortly")
    user, forbidden = await resolve_user_access(request, user_id, channels)
    refusal = access.stream_refusal(user is not None, problem, forbidden)
    if refusal:
        return refuse(request, *refusal)
    storage = DashboardRedisStorage()
    response = EventResponse()
    response.is_next = request.GET.get("link") == "next"
    response.is_recover = request.GET.get("recover") == "true"
    response.user = user
    try:
        if selection is not None:
            # Before storage is read: whatever is stored after this is published to it.
            chained = await edge_selections.aregister(selection)
        for channel in channels:
            await replay(storage, response, channel, last_ids.get(channel))
    except RedisError as exc:
        # The client (or Pushpin, when recovering) retries; nothing is lost meanwhile.
        logger.warning("GRIP /events/: Redis unavailable (%s)", exc)
        return refuse(request, 503, "Event storage is unavailable; retry shortly")
    if selection is not None:
        last_kept = select_replay(response, selection)
    http_response = response.to_grip_response(request)
    if selection is not None:
        hold_on_selection(request, selection, last_kept, chained)
    if session is not None:
        hold_for_session(request, user.pk, session)
    add_default_headers(http_response, request=request)
    return http_response


# --- connects Pushpin forwards, answered without Django's middleware chain ------


class ProxiedStreamConnects:
    """ASGI wrapper: a `/events/` GET that Pushpin signed goes straight to `grip_events`.

    Why: Pushpin forwards every new viewer, so a connect storm is thousands of
    these short requests, and under ASGI each sync middleware costs two trips
    to a thread; profiled, those hops and the session read were most of a
    connect's cost (docs/performance.md, "Design choices and their measurements").
    Here the request skips the chain: GripMiddleware's own request and response
    steps still run (signature check, Grip-Last, the instruct headers), the
    session is read through Django's async session API, and the security headers
    and Content-Length come from the response steps of SecurityMiddleware,
    XFrameOptionsMiddleware and CommonMiddleware as on every other page. Nothing
    else in the chain applies to this one GET (dashboard.bypasses says why, one
    by one, and a test keeps it in step with settings.MIDDLEWARE).
    Anything else, including a request whose signature does not check out, goes
    through Django as before.
    """

    def __init__(self, app):
        self.app = app
        self.grip = GripMiddleware(self.app)
        self.security = SecurityMiddleware(self.app)
        self.common = CommonMiddleware(self.app)
        self.frame_options = XFrameOptionsMiddleware(self.app)
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore

    async def __call__(self, scope, receive, send):
        if not self.is_stream_connect(scope):
            return await self.app(scope, receive, send)
        request = stream_request(scope, self.session_store)
        self.grip.process_request(request)
        if not request.grip.proxied:
            return await self.app(scope, receive, send)
        if (await receive())["type"] == "http.disconnect":
            return
        # A connect that waited too long is given up by its client, and Pushpin then drops
        # the request: daphne reports that as http.disconnect, and the worker skips it.
        # Otherwise a storm spends the worker on requests nobody waits for any more
        # (docs/performance.md, "Design choices and their measurements").
        disconnected = asyncio.ensure_future(receive())
        try:
            async with stream_sync.context():
                response = await grip_events(request, abandoned=disconnected.done)
                await stream_sync.sweep()
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
        for middleware in (self.frame_options, self.security, self.common):  # innermost first, as the chain
            response = middleware.process_response(request, response)
        await self.app.send_response(response, send)

    @staticmethod
    def is_stream_connect(scope):
        return (
            settings.GRIP_URL is not None
            and scope["type"] == "http"
            and scope["path"] == EVENTS_PATH
            and scope["method"] == "GET"
            and any(name == b"grip-sig" for name, _ in scope["headers"])
        )

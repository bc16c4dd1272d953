"""The `/events/` endpoint: SSE streams fed by one Redis subscriber per worker.

Why our own view rather than django-eventstream's `events`: measured, the stock
view pins a database connection per stream (PostgreSQL's 100-connection limit
means the 100th viewer takes the site down), holds an OS thread per stream for
its `sync_to_async(get_events)`, answers errors with HTTP 200 + `stream-error`
(browsers retry forever), silently drops events past 10 pending per client and,
after that overflow, re-reads storage and sends duplicate ids.

This view reuses the library's pieces (id format, SSE encoding, channel manager,
storage class, the `stream-open`/`stream-reset`/`keep-alive` conventions its
ReconnectingEventSource expects) and changes the mechanics:

- every check happens before the stream starts, with real status codes (400, 403);
- the session and permission lookups run in one `sync_to_async` call off the
  request's own thread, which closes its database connection before returning;
- one `Hub` per event loop subscribes to `key("sse")` once and fans each event
  out to the streams of its channel, encoding the SSE bytes once per event;
- each stream has a bounded buffer and remembers the last id it delivered per
  channel: anything at or below it is dropped (no duplicates), and a gap or an
  overflow is filled from storage, or ends in `stream-reset` if storage no longer
  has it (no holes).
"""

import asyncio
import collections
import contextlib
import contextvars
import io
import logging
import random
import re
from importlib import import_module
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth import get_user
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import JsonResponse, StreamingHttpResponse
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_GET
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import add_default_headers, make_id, sse_encode_event
from redis.exceptions import RedisError

from dashboard import access, draining, revocation, telemetry
from dashboard import connections as open_connections
from dashboard.loops import SharedSyncThread
from dashboard.origins import request_origin_allowed
from dashboard.redis import new_subscriber_client
from dashboard.storage import DashboardRedisStorage, parse_published, pubsub_channel
from dashboard.stream.channels import channel_exists

logger = logging.getLogger(__name__)

MAX_CHANNELS = 10
MAX_QUERY_STRING = 2048
# Events a stream may hold before it falls back to reading storage.
STREAM_BUFFER = 256
KEEPALIVE_SECONDS = 15
CATCH_UP_BATCH = 500
# How far back `Last-Event-ID` may resume, in events: a short disconnect is replayed,
# anything older gets `stream-reset` and the page reloads its history over HTTP. Without
# a bound, `lastEventId=metrics:0` replayed the whole retention (22 MB at 24 h) per connect.
REPLAY_WINDOW = 3000
# The first stream on a worker waits this long for the hub to subscribe.
HUB_CONNECT_WAIT = 3.0
# ASCII digits, the whole string (\d takes Unicode digits, $ a trailing newline).
EVENT_ID = re.compile(r"\A[0-9]{1,18}\Z")
# Connects that may wait on Redis at once: redis.asyncio's pool raises rather
# than queues past its size, which would end streams during a reconnect storm.
CONNECT_REDIS_SLOTS = 100

# The library's first chunk: padding for old proxies/browsers, then stream-open.
OPENING = (":" + " " * 2048 + "\n\n" + "event: stream-open\ndata:\n\n").encode()
KEEPALIVE = b"event: keep-alive\ndata:\n\n"
# A stopping worker ends its streams with this reconnection delay (ms, jittered up to
# twice as long): the EventSource comes straight back, through nginx to another worker.
RESTART_RETRY_MS = 250


ORIGIN_REFUSED = "Streams are for pages of this site only (Origin not allowed)"


class BadStreamRequest(ValueError):
    pass


# --- request parsing (no I/O) --------------------------------------------------


def parse_channels(request):
    channels = sorted(set(request.GET.getlist("channel")))
    if not channels:
        raise BadStreamRequest("No channels specified; use ?channel=NAME")
    if len(channels) > MAX_CHANNELS:
        raise BadStreamRequest(f"Too many channels: at most {MAX_CHANNELS} per stream")
    unknown = [c for c in channels if not channel_exists(c)]
    if unknown:
        raise BadStreamRequest(f"Unknown channel: {', '.join(unknown)}")
    return channels


def last_event_id_of(request):
    """The header wins; else the last non-empty `lastEventId` (as the library reads it)."""
    # META, not request.headers: that builds a dict of every header, per stream connect.
    header = request.META.get("HTTP_LAST_EVENT_ID")
    if header:
        return header
    for value in reversed(request.GET.getlist("lastEventId")):
        if value:
            return value
    return None


def parse_last_ids(raw, channels):
    """{channel: int} from "chan:id[,chan:id...]"; channels not requested are ignored."""
    if raw is None:
        return {}
    if raw == "error":
        raise BadStreamRequest("Can't resume a stream after stream-error")
    last_ids = {}
    for part in raw.split(","):
        channel, sep, event_id = part.partition(":")
        if not sep or not EVENT_ID.match(event_id):
            raise BadStreamRequest("Malformed Last-Event-ID or lastEventId: expected channel:number")
        channel = unquote(channel)
        if channel in channels:
            last_ids[channel] = int(event_id)
    return last_ids


def parse_stream_request(request):
    """(channels, last_ids) or BadStreamRequest."""
    if len(request.META.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
        raise BadStreamRequest(f"Query string too long (at most {MAX_QUERY_STRING} characters)")
    channels = parse_channels(request)
    return channels, parse_last_ids(last_event_id_of(request), channels)


def error_response(request, status, message):
    response = JsonResponse({"error": message, "status": status}, status=status)
    add_default_headers(response, request=request)
    return response


async def open_stream(request):
    """(refusal response, None), or (None, Stream) for a stream the request may have."""
    try:
        channels, last_ids = parse_stream_request(request)
        problem = None
    except BadStreamRequest as exc:
        channels, last_ids, problem = [], {}, str(exc)
    if draining.is_draining():
        # A request that reached a stopping worker over a kept-alive connection: nginx
        # passes a 503 on to the next worker (proxy_next_upstream).
        return error_response(request, 503, "This worker is restarting; reconnect"), None
    if not request_origin_allowed(request):
        return error_response(request, 403, ORIGIN_REFUSED), None
    # The session is read on the loop; a recent answer for it is reused, and connects
    # that miss together share one lookup in a thread, which closes its database
    # connection: a stream keeps neither a thread nor a connection.
    user, forbidden = await access.arequest_channel_access(request, channels)
    user_id = user.pk if user is not None else None
    refusal = access.stream_refusal(user_id is not None, problem, forbidden)
    if refusal:
        return error_response(request, *refusal), None
    if not open_connections.claim("sse", user_id):
        message = f"Too many open streams: at most {settings.MAX_CONNECTIONS_PER_USER} per user; close a tab"
        return error_response(request, 429, message), None
    return None, Stream(channels, last_ids, user_id)


def stream_response(request, stream):
    response = EventStreamResponse(stream.run(), content_type="text/event-stream")
    # Django closes every response once it is done, streamed or not, even when the
    # client left before the stream began: the place is given back there, once.
    response._resource_closers.append(lambda: open_connections.release("sse", stream.user_id))
    add_default_headers(response, request=request)
    return response


@require_GET
async def events(request):
    """`/events/` through Django's handler: test clients, and anything but a GET (405).
    Served workers take GETs through `DirectStreams`, with the same checks."""
    refusal, stream = await open_stream(request)
    return refusal or stream_response(request, stream)


def beyond_replay_window(last_id, current_id):
    """True when resuming from last_id would replay more than REPLAY_WINDOW events."""
    return current_id - last_id > REPLAY_WINDOW


class EventStreamResponse(StreamingHttpResponse):
    """A stream whose chunks are bytes already: the server iterates our generator itself.

    StreamingHttpResponse wraps an async iterator in two more async generators (one to
    coerce each chunk to bytes, one for `__aiter__`); at thousands of streams that is
    two extra generator resumptions per stream per event on the hot path."""

    def __aiter__(self):
        return self._iterator


# --- streams served without Django's request cycle ---------------------------------

EVENTS_PATH = "/events/"


def stream_request(scope, session_store):
    """The Django request of a stream GET, with its session and lazy user, built without
    the middleware chain (a GET to /events/ has no body)."""
    request = ASGIRequest(scope, io.BytesIO())
    request.session = session_store(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    request.user = SimpleLazyObject(lambda: get_user(request))
    return request


# Stream connects' sync steps (a session the cache lacks is read from the database there).
stream_sync = SharedSyncThread("sse-sync")


class DirectStreams:
    """ASGI wrapper: a GET to `/events/` is decided by `open_stream`, then streamed
    straight to the server; anything else goes on to `app` (Django).

    Why not Django's handler: through it, every sync middleware step of a connect is
    a trip to a thread (most of a connect storm's CPU, profiled), and an open stream
    keeps Django's request, its handler tasks and the chain's frames for as long as
    it lasts (most of the memory per stream). Here the security step runs (HTTPS
    redirect, its headers), the Host is checked as Django checks it, the session is
    read with Django's async API, and nothing of the request is kept once the
    stream starts. Which middlewares a stream may skip, and why, is one list for
    this path and Pushpin's (dashboard.stream.grip.REVIEWED_MIDDLEWARE, kept in step
    with settings.MIDDLEWARE by a test).
    """

    def __init__(self, app):
        self.app = app
        self.handler = app if isinstance(app, ASGIHandler) else ASGIHandler()
        self.security = SecurityMiddleware(self.app)
        self.common = CommonMiddleware(self.app)
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore
        # For ProxiedStreamConnects, which answers from outside this wrapper.
        self.send_response = self.handler.send_response

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["path"] == EVENTS_PATH and scope["method"] == "GET"):
            return await self.app(scope, receive, send)
        if (await receive())["type"] == "http.disconnect":
            return
        async with stream_sync.context():
            response = await self.decide(scope)
            await stream_sync.sweep()
        if not response.streaming:
            await self.handler.send_response(response, send)
            return response.close()
        # The client leaving ends the stream: Django's handler listens the same way.
        streaming = asyncio.current_task()
        left = asyncio.ensure_future(receive())
        stop = lambda _: streaming.cancel()  # noqa: E731
        left.add_done_callback(stop)
        try:
            await self.handler.send_response(response, send)
        except asyncio.CancelledError:
            if not left.done() or left.cancelled():
                raise  # not the client leaving: the server is stopping us
            streaming.uncancel()
        finally:
            left.remove_done_callback(stop)
            left.cancel()
            response.close()

    async def decide(self, scope):
        """The stream's response (its request dropped), or a refusal to send whole."""
        request = stream_request(scope, self.session_store)
        try:
            request.get_host()
            response = self.security.process_request(request)
            if response is None:
                refusal, stream = await open_stream(request)
                response = refusal or stream_response(request, stream)
        except DisallowedHost:
            response = error_response(request, 400, "Invalid Host header")
        except Exception:
            logger.exception("/events/ connect failed")
            response = error_response(request, 500, "Server error; retry shortly")
        response = self.security.process_response(request, response)
        if not response.streaming:
            response = self.common.process_response(request, response)
        return response


# --- the hub: one subscriber per worker ----------------------------------------


class HubEvent:
    """A run of published events with consecutive ids on one channel (one event, or a
    batch from `publish_metrics`), with their SSE encodings cached: every stream of the
    hub shares them, so a batch costs each stream one chunk, not one per event."""

    __slots__ = ("channel", "first", "last", "type", "datas", "_whole", "_each")

    def __init__(self, events):
        head = events[0]
        self.channel, self.type = head.channel, head.type
        self.first, self.last = head.id, events[-1].id
        self.datas = [event.data for event in events]
        self._whole = None  # every event, each with its single-channel id
        self._each = {}  # (id, event id string) -> one event's encoding

    @classmethod
    def of(cls, event):
        return cls([event])

    def encode(self, event_id, sse_id):
        """One event of the run, `sse_id` its SSE id (the stream's view of every channel)."""
        chunk = self._each.get((event_id, sse_id))
        if chunk is None:
            data = self.datas[event_id - self.first]
            chunk = self._each[(event_id, sse_id)] = sse_encode_event(
                self.type, data, event_id=sse_id
            ).encode()
        return chunk

    def encoded_after(self, since):
        """The events after id `since` for a single-channel stream (ids `channel:N`)."""
        if since < self.first and self._whole is not None:
            return self._whole
        start = max(since + 1, self.first)
        chunk = b"".join(self.encode(i, make_id({self.channel: i})) for i in range(start, self.last + 1))
        if start == self.first:
            self._whole = chunk
            self._each.clear()  # the whole run is what every other stream wants
        return chunk


class Hub:
    """Subscribes once to the SSE pub/sub channel and hands events to local streams."""

    RECONNECT_MAX = 5.0

    def __init__(self):
        self.streams_by_channel = collections.defaultdict(set)
        self.streams_by_user = collections.defaultdict(set)
        self.streams = set()
        # The newest id this hub has dispatched per channel while subscribed without a
        # break: where a new stream starts, with no Redis round trip per connect.
        self.current_ids = {}
        self.task = None
        self.keepalive_task = None
        self.connected = asyncio.Event()
        self.redis_slots = asyncio.Semaphore(CONNECT_REDIS_SLOTS)

    def add(self, stream):
        self.streams.add(stream)
        for channel in stream.channels:
            self.streams_by_channel[channel].add(stream)
        if stream.user_id is not None:
            self.streams_by_user[stream.user_id].add(stream)
        self.start()

    def start(self):
        """Listen (if not yet), and hear revocations, which end a user's streams here."""
        telemetry.ensure_reporting()
        revocation.listen()
        loop = asyncio.get_running_loop()
        # Fresh contexts: the hub outlives the request that happened to start it.
        if self.task is None or self.task.done():
            self.task = loop.create_task(self.listen_forever(), context=contextvars.Context())
        if self.keepalive_task is None or self.keepalive_task.done():
            self.keepalive_task = loop.create_task(self.keepalive_forever(), context=contextvars.Context())

    async def keepalive_forever(self):
        """One timer for every stream, instead of a timeout armed and cancelled per event
        per stream: a stream that sent nothing for a whole period gets a keep-alive."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            for stream in tuple(self.streams):
                stream.tick_keepalive()

    def remove(self, stream):
        self.streams.discard(stream)
        streams = self.streams_by_user.get(stream.user_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self.streams_by_user[stream.user_id]
        for channel in stream.channels:
            streams = self.streams_by_channel.get(channel)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self.streams_by_channel[channel]

    async def wait_connected(self, timeout):
        if self.connected.is_set():
            return
        try:
            async with asyncio.timeout(timeout):
                await self.connected.wait()
        except TimeoutError:
            pass  # Redis is down: the storage read that follows reports it.

    def dispatch(self, raw):
        try:
            event = HubEvent(parse_published(raw))
        except (ValueError, KeyError, TypeError, IndexError):
            logger.warning("ignoring a malformed SSE pub/sub message")
            return
        if event.last > self.current_ids.get(event.channel, 0):
            self.current_ids[event.channel] = event.last
        for stream in tuple(self.streams_by_channel.get(event.channel, ())):
            stream.offer(event)

    def revoke(self, user_id):
        """A user's access changed (dashboard.revocation): end their streams here."""
        for stream in tuple(self.streams_by_user.get(user_id, ())):
            stream.revoke()

    def resync_all(self):
        # Messages may have been published while we were not subscribed.
        for streams in self.streams_by_channel.values():
            for stream in streams:
                stream.request_catch_up()

    async def listen_forever(self):
        delay = 0.1
        down = False
        while True:
            client = new_subscriber_client()
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(pubsub_channel())
                    self.connected.set()
                    if down:
                        logger.info("SSE hub reconnected to Redis")
                        self.resync_all()
                    down, delay = False, 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                self.current_ids.clear()  # what it missed meanwhile only storage knows
                if not down:
                    logger.warning("SSE hub lost Redis (%s); retrying with backoff", exc)
                down = True
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.RECONNECT_MAX)


_hubs = {}


def end_all_streams():
    """End every stream of this worker (it is stopping); returns how many."""
    ended = 0
    for hub in _hubs.values():
        for stream in tuple(hub.streams):
            if not stream.ending:
                stream.end()
                ended += 1
    return ended


def get_hub():
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


@revocation.on_revoked
def end_streams_of(user_id):
    """Revocations are heard on the loop whose hub holds the streams."""
    hub = _hubs.get(asyncio.get_running_loop())
    if hub is not None:
        hub.revoke(user_id)


draining.on_drain("SSE streams ended", end_all_streams)


# --- one stream ------------------------------------------------------------------

DELIVERED = telemetry.hot_counter("events_delivered")


class Stream:
    """One client's stream: a bounded buffer fed by the hub, ids tracked per channel.

    Slotted, and sharing one storage object: thousands are open per worker at once."""

    __slots__ = (
        "channels",
        "user_id",
        "requested_last_ids",
        "last_ids",
        "buffer",
        "waiter",
        "catch_up_needed",
        "ending",
        "keepalive_due",
        "active",
        "__weakref__",
    )
    storage = DashboardRedisStorage()

    def __init__(self, channels, last_ids, user_id=None):
        self.channels = channels
        self.user_id = user_id
        self.requested_last_ids = last_ids
        self.last_ids = {}
        self.buffer = collections.deque()
        # The future the stream's task sleeps on while it has nothing to send: a bare
        # future costs less per wake than an asyncio.Event (and no timer per wait).
        self.waiter = None
        self.catch_up_needed = False
        self.ending = False
        self.keepalive_due = False
        self.active = False  # sent something since the hub's last keep-alive tick

    def wake(self):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # Called by the hub, on the event loop.
    def offer(self, event):
        if len(self.buffer) >= STREAM_BUFFER:
            # Too far behind: drop the buffer and read storage from the last id.
            telemetry.count("stream_drops")
            self.request_catch_up()
            return
        self.buffer.append(event)
        self.wake()

    def request_catch_up(self):
        self.buffer.clear()
        self.catch_up_needed = True
        self.wake()

    def tick_keepalive(self):
        if self.active:
            self.active = False
        else:
            self.keepalive_due = True
            self.wake()

    def end(self):
        """Finish after what is buffered, telling the client to come back at once."""
        self.ending = True
        self.wake()

    def revoke(self):
        """End now, sending nothing more: the user's access changed, and the client's
        reconnect is asked afresh (dashboard.revocation)."""
        self.buffer.clear()
        self.catch_up_needed = False
        self.end()

    def current_id(self):
        return make_id({c: self.last_ids[c] for c in self.channels})

    async def run(self):
        hub = get_hub()
        open_connections.opened("sse")
        # Subscribe before reading storage: whatever is published meanwhile is
        # buffered, and ids at or below what storage gave us are dropped later.
        hub.add(self)
        try:
            # Fix where the stream starts before saying it is open: a client that
            # publishes on `stream-open` must see what it publishes.
            await hub.wait_connected(HUB_CONNECT_WAIT)
            known = {*self.requested_last_ids, *hub.current_ids}
            asks_redis = any(channel not in known for channel in self.channels)
            async with hub.redis_slots if asks_redis else contextlib.nullcontext():
                await self.fix_start_ids(hub)
            yield OPENING
            async for chunk in self.replay():
                yield chunk
            loop = asyncio.get_running_loop()
            while not self.ending:
                if not (self.buffer or self.catch_up_needed):
                    if self.keepalive_due:
                        self.keepalive_due = False
                        yield KEEPALIVE
                        continue
                    self.waiter = loop.create_future()
                    await self.waiter
                    continue
                self.keepalive_due = False
                self.active = True
                # The hot path: what the hub buffered follows on from what was sent.
                chunk, hole = self.take_buffered()
                if chunk:
                    yield chunk
                if hole:
                    async for chunk in self.drain():
                        yield chunk
            chunk, _ = self.take_buffered()  # what arrived before the end, if it follows on
            if chunk:
                yield chunk
            retry = RESTART_RETRY_MS + random.randrange(RESTART_RETRY_MS)
            yield f"retry: {retry}\n\n".encode()
        except RedisError as exc:
            # The client reconnects with its Last-Event-ID and resumes once Redis is back.
            logger.warning("ending an SSE stream: Redis unavailable (%s)", exc)
        finally:
            hub.remove(self)
            open_connections.closed("sse")

    async def fix_start_ids(self, hub=None):
        """Resume where the client says, else at the current ids (the hub's when it has one:
        anything newer is already on its way to this stream through the hub)."""
        known = hub.current_ids if hub is not None else {}
        for channel in self.channels:
            if channel in self.requested_last_ids:
                self.last_ids[channel] = self.requested_last_ids[channel]
            elif channel in known:
                self.last_ids[channel] = known[channel]
            else:
                self.last_ids[channel] = await self.storage.aget_current_id(channel)
                if hub is not None and hub.connected.is_set():
                    # Until the hub dispatches an event of this channel, the streams that
                    # open after this one start here too: one read per channel, not per
                    # connect. An event dispatched meanwhile is newer, and stays.
                    known.setdefault(channel, self.last_ids[channel])

    async def replay(self):
        """What the client missed, from storage (or a reset if it is gone, or too far back)."""
        hub = get_hub()
        for channel in self.channels:
            if channel not in self.requested_last_ids:
                continue
            if hub.current_ids.get(channel) == self.last_ids[channel]:
                # The client has the newest event this hub dispatched, and anything newer
                # reaches it through the hub: a reconnect storm of clients that were up to
                # date reads nothing from Redis.
                continue
            async with hub.redis_slots:
                current_id = await self.storage.aget_current_id(channel)
            if beyond_replay_window(self.last_ids[channel], current_id):
                yield self.reset(channel, current_id)
                continue
            async for chunk in self.read_storage(channel):
                yield chunk

    def reset(self, channel, current_id):
        """Jump `channel` to `current_id` and tell the client to reload history."""
        self.last_ids[channel] = current_id
        telemetry.count("stream_resets")
        return sse_encode_event(
            "stream-reset", {"channels": [channel]}, event_id=self.current_id(), json_encode=True
        ).encode()

    async def read_storage(self, channel):
        """Yield, batch by batch, everything after last_ids[channel]; or a reset if it is gone."""
        while True:
            telemetry.count("catchup_reads")
            try:
                async with get_hub().redis_slots:
                    events = await self.storage.aget_events(channel, self.last_ids[channel], CATCH_UP_BATCH)
            except EventDoesNotExist as exc:
                yield self.reset(channel, int(exc.current_id))
                return
            if events:
                yield b"".join(self.deliver(HubEvent.of(event)) for event in events)
            if len(events) < CATCH_UP_BATCH:
                return

    def deliver(self, event):
        """The chunk for what `event` (a run) holds after this stream's last id on its channel."""
        channel = event.channel
        since = self.last_ids[channel]
        DELIVERED.value += event.last - max(since, event.first - 1)
        if len(self.channels) == 1:
            # The common case: every stream of this channel shares the ids and the encoding.
            self.last_ids[channel] = event.last
            return event.encoded_after(since)
        chunks = []
        for event_id in range(max(since + 1, event.first), event.last + 1):
            self.last_ids[channel] = event_id
            chunks.append(event.encode(event_id, self.current_id()))
        return b"".join(chunks)

    def take_buffered(self):
        """(chunk of the buffered events that follow on from the last ids, whether a hole
        or a catch-up needs storage): no awaiting, no storage, for the common case."""
        if self.catch_up_needed:
            return b"", True
        chunks = []
        buffer, last_ids = self.buffer, self.last_ids
        while buffer:
            event = buffer[0]
            last = last_ids[event.channel]
            if event.first > last + 1:
                break  # a hole: drain() reads storage
            buffer.popleft()
            if event.last > last:
                chunks.append(self.deliver(event))
        chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return chunk, bool(buffer)

    async def drain(self):
        """Yield what the buffer holds (one chunk), filling any hole from storage."""
        chunks = []
        while self.buffer or self.catch_up_needed:
            if self.catch_up_needed:
                self.catch_up_needed = False
                for channel in self.channels:
                    async for chunk in self.read_storage(channel):
                        chunks.append(chunk)
                continue
            event = self.buffer.popleft()
            last = self.last_ids[event.channel]
            if event.last <= last:
                continue  # already delivered (from storage, or before a catch-up)
            if event.first > last + 1:
                # A hole: something was published while this stream couldn't hear it.
                async for chunk in self.read_storage(event.channel):
                    chunks.append(chunk)
                if self.last_ids[event.channel] < event.first - 1:
                    chunks.append(self.reset(event.channel, event.first - 1))
                if event.last <= self.last_ids[event.channel]:
                    continue  # storage already gave it
            chunks.append(self.deliver(event))
        if chunks:
            yield b"".join(chunks)

"""One open stream: a bounded buffer fed by the hub, ids tracked per channel.

Each stream remembers the last id it delivered per channel: anything at or below
it is dropped (no duplicates), and a gap or an overflow is filled from storage, or
ends in `stream-reset` if storage no longer has it (no holes). It reuses
django-eventstream's id format, SSE encoding, storage class and the
`stream-open`/`stream-reset`/`keep-alive` conventions its ReconnectingEventSource
expects.
"""

import asyncio
import collections
import contextlib
import logging
import random

from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import make_id, sse_encode_event
from redis.exceptions import RedisError

from dashboard import connections as open_connections
from dashboard import telemetry
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.channels import METRICS_CHANNEL
from dashboard.stream.hub import HubEvent, get_hub

logger = logging.getLogger(__name__)

# Events a stream may hold before it falls back to reading storage.
STREAM_BUFFER = 256
CATCH_UP_BATCH = 500
# How far back `Last-Event-ID` may resume, in events: a short disconnect is replayed,
# anything older gets `stream-reset` and the page reloads its history over HTTP. Without
# a bound, `lastEventId=metrics:0` replayed the whole retention (22 MB at 24 h) per connect.
REPLAY_WINDOW = 3000
# The first stream on a worker waits this long for the hub to subscribe.
HUB_CONNECT_WAIT = 3.0

# The library's first chunk: padding for old proxies/browsers, then stream-open.
OPENING = (":" + " " * 2048 + "\n\n" + "event: stream-open\ndata:\n\n").encode()
KEEPALIVE = b"event: keep-alive\ndata:\n\n"
# A stopping worker ends its streams with this reconnection delay (ms, jittered up to
# twice as long): the EventSource comes straight back, through nginx to another worker.
RESTART_RETRY_MS = 250


def send_now(send, message):
    """Run an ASGI `send` as far as it goes without waiting, as an eager task would: None
    once it is done (the usual case: the socket took the bytes), else (the coroutine,
    what it waits on) for `Stream.finish_send`. The hub calls this for thousands of
    streams per event; a task per send would cost what writing from the hub saves."""
    coro = send(message)
    try:
        return coro, coro.send(None)
    except StopIteration:
        return None


def beyond_replay_window(last_id, current_id):
    """True when resuming from last_id would replay more than REPLAY_WINDOW events."""
    return current_id - last_id > REPLAY_WINDOW


DELIVERED = telemetry.hot_counter("events_delivered")


class Stream:
    """One client's stream: a bounded buffer fed by the hub, ids tracked per channel.

    Slotted, and sharing one storage object: thousands are open per worker at once."""

    __slots__ = (
        "channels",
        "user_id",
        "session",
        "selection",
        "requested_last_ids",
        "last_ids",
        "buffer",
        "waiter",
        "catch_up_needed",
        "ending",
        "keepalive_due",
        "active",
        "share_id",
        "expires",
        "send",
        "unfinished_send",
        "__weakref__",
    )
    storage = DashboardRedisStorage()

    def __init__(
        self, channels, last_ids, user_id=None, selection=None, share_id=None, expires=None, session=None
    ):
        self.channels = channels
        self.user_id = user_id
        # A share link's viewer (boards.sharing): no user; the link's revocation, or its
        # expiry (unix seconds), ends the stream.
        self.share_id = share_id
        self.expires = expires
        # The session's tag (dashboard.revocation.session_tag): ending that session ends this stream.
        self.session = session
        # `match=`: the series this stream carries of `metrics` (None: every series).
        self.selection = selection
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
        # The ASGI `send` of the stream's response, when the server hands it over
        # (DirectStreams): the hub then writes to a stream idle in its task itself.
        self.send = None
        # A write of the hub's that the socket did not take at once: the task finishes it.
        self.unfinished_send = None

    def wake(self):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # Called by the hub, on the event loop.
    def offer(self, event):
        if self.waiter is not None and self.send is not None and self.write_now(event):
            return
        if len(self.buffer) >= STREAM_BUFFER:
            # Too far behind: drop the buffer and read storage from the last id.
            telemetry.count("stream_drops")
            self.request_catch_up()
            return
        self.buffer.append(event)
        self.wake()

    def write_now(self, event):
        """Write what `event` brings straight to the socket, from the hub's dispatch: for a
        stream idle in its task (waiting, nothing buffered), what follows on from its last
        id needs no task of its own, so the hub pays one write per stream per event, as
        the floor does, rather than waking a task to yield a chunk through the response.
        False for what the task must do (a hole to read from storage)."""
        last = self.last_ids[event.channel]
        if event.first > last + 1:
            return False
        if event.last <= last:
            return True  # delivered already
        chunk = self.deliver(event)
        if not chunk:
            return True  # nothing this stream's selection wants
        self.active = True
        try:
            self.unfinished_send = send_now(
                self.send, {"type": "http.response.body", "body": chunk, "more_body": True}
            )
        except Exception:
            logger.exception("ending an SSE stream: writing to it failed")
            self.revoke()
            return True
        if self.unfinished_send is not None:
            self.wake()  # the client is slow to read: the task waits for the write, not the hub
        return True

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

    def keepalive(self):
        """A stream that skips series says where it is: its client resumes from there."""
        if self.selection is None:
            return KEEPALIVE
        return sse_encode_event("keep-alive", "", event_id=self.current_id()).encode()

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
                if self.unfinished_send is not None:
                    await self.finish_send()
                    continue
                if not (self.buffer or self.catch_up_needed):
                    if self.keepalive_due:
                        self.keepalive_due = False
                        yield self.keepalive()
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
            if self.unfinished_send is not None:
                await self.finish_send()  # the hub's last write goes before the end
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
            if self.unfinished_send is not None:
                self.unfinished_send[0].close()

    async def finish_send(self):
        """Wait for the hub's write the socket did not take at once (its ASGI `send` paused
        for the client's buffer to drain), then run the send to its end: the events the hub
        offers meanwhile are buffered, and follow it in order."""
        coro, waiting_on = self.unfinished_send
        try:
            while True:
                if waiting_on is None:
                    await asyncio.sleep(0)
                else:
                    await asyncio.wait([waiting_on])
                waiting_on = coro.send(None)
        except StopIteration:
            self.unfinished_send = None
        except Exception:
            self.unfinished_send = None
            raise  # as a failed send of the response's own loop would

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
        if self.selection is not None and channel == METRICS_CHANNEL:
            event = event.selected(self.selection)
        DELIVERED.value += event.count_after(since)
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

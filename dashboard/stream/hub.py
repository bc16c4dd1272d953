"""The hub: one Redis subscriber per worker (per event loop), handing each published run
of events to the streams of its channel, encoded once for all of them.

It subscribes to `key("sse")` once, whatever the number of streams; a revocation
(dashboard.revocation, which this module registers with) ends a user's streams here,
and a stopping worker (dashboard.draining) ends them all. One timer
sends every idle stream its keep-alive. A stream is anything with `channels`,
`user_id`, `ending` and the calls the hub makes (`offer`, `request_catch_up`,
`tick_keepalive`, `end`, `revoke`): see dashboard.stream.stream.
"""

import asyncio
import collections
import contextvars
import logging
import time

from django_eventstream.utils import make_id, sse_encode_event

from dashboard import draining, frames, revocation, telemetry
from dashboard.loops import PerLoop
from dashboard.redis import subscribe_forever
from dashboard.storage import parse_published, pubsub_channel

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15
# Streams with an expiry end at most this long after it.
EXPIRY_SWEEP_SECONDS = 0.25
# Connects that may wait on Redis at once: redis.asyncio's pool raises rather
# than queues past its size, which would end streams during a reconnect storm.
CONNECT_REDIS_SLOTS = 100


class HubEvent:
    """A run of published events with consecutive ids on one channel (one event, or a
    batch from `publish_metrics`), with their SSE encodings cached: every stream of the
    hub shares them, so a batch costs each stream one chunk, not one per event."""

    __slots__ = (
        "channel",
        "first",
        "last",
        "type",
        "datas",
        "_whole",
        "_each",
        "_selected",
        "_parsed",
        "_series",
    )

    def __init__(self, events):
        head = events[0]
        self.channel, self.type = head.channel, head.type
        self.first, self.last = head.id, events[-1].id
        self.datas = [event.data for event in events]
        self._whole = None  # every event, each with its single-channel id
        self._each = {}  # (id, event id string) -> one event's encoding
        self._selected = None  # Selection -> SelectedRun, made once per worker
        self._parsed = None  # the datas decoded, once, for every selection
        self._series = None  # each `metric` event's series, once, for every selection

    @classmethod
    def of(cls, event):
        return cls([event])

    def selected(self, selection):
        """This run as the streams filtering by `selection` see it (`/events/?match=`):
        made on the first such stream's delivery and shared by the others, so a
        worker decides once per event and selection, not once per stream."""
        if self._selected is None:
            self._selected = {}
        run = self._selected.get(selection)
        if run is None:
            run = self._selected[selection] = SelectedRun(self, selection)
        return run

    def parsed(self):
        """The datas decoded (None for one that is no JSON)."""
        if self._parsed is None:
            self._parsed = [frames.decode(text) for text in self.datas]
        return self._parsed

    def metric_series(self):
        """Each event's series `(id, name, labels)` (a `metric` run's; none for one that is
        malformed): read once per run, however many selections ask."""
        if self._series is None:
            self._series = [
                [point[:3] for point in frames.points_of(self.type, data)] for data in self.parsed()
            ]
        return self._series

    def count_after(self, since):
        """How many events of the run a stream at id `since` is given."""
        return self.last - max(since, self.first - 1)

    def encode(self, event_id, sse_id):
        """One event of the run, `sse_id` its SSE id (the stream's view of every channel);
        empty for an event the stream's selection does not want."""
        chunk = self._each.get((event_id, sse_id))
        if chunk is None:
            data = self.datas[event_id - self.first]
            if data is None:
                return b""
            chunk = self._each[(event_id, sse_id)] = sse_encode_event(
                self.type, data, event_id=sse_id
            ).encode()
        return chunk

    def encoded_after(self, since):
        """The events after id `since` for a single-channel stream (ids `channel:N`)."""
        if since < self.first and self._whole is not None:
            return self._whole
        start = max(since + 1, self.first)
        # An event a selection took out (data None) encodes to nothing: its SSE id is
        # not made at all (a filtered stream skips most events, and ids cost a quote each).
        datas, first = self.datas, self.first
        chunk = b"".join(
            self.encode(i, make_id({self.channel: i}))
            for i in range(start, self.last + 1)
            if datas[i - first] is not None
        )
        if start == self.first:
            self._whole = chunk
            self._each.clear()  # the whole run is what every other stream wants
        return chunk


class SelectedRun(HubEvent):
    """A run with what a selection does not want taken out: its ids stay (a stream
    moves past them), its datas are None for them and frames are trimmed to the
    wanted values (dashboard.frames.select)."""

    __slots__ = ("_position",)

    def __init__(self, run, selection):
        self.channel, self.type, self.first, self.last = run.channel, run.type, run.first, run.last
        if run.type == frames.METRIC:
            # A `metric` event is wanted whole or not at all (frames.select): decided from
            # its series, read once per run rather than once per selection.
            wants = selection.wants
            self.datas = [
                text if any(wants(*found) for found in event_series) else None
                for text, event_series in zip(run.datas, run.metric_series(), strict=True)
            ]
        else:
            pairs = zip(run.datas, run.parsed(), strict=True)
            self.datas = [frames.select_json(run.type, text, selection, data) for text, data in pairs]
        self._whole = None
        self._each = {}
        self._selected = self._parsed = self._series = None
        self._position = None

    def encoded_after(self, since):
        chunk = super().encoded_after(since)
        if chunk and self.datas[-1] is None:
            # The run ends with events the stream skips: a keep-alive with the run's last
            # id moves the client's Last-Event-ID past them, so its reconnect reads from
            # here, not from its last wanted event.
            if self._position is None:
                self._position = position(self.channel, self.last)
            chunk += self._position
        return chunk

    def count_after(self, since):
        start = max(since + 1, self.first) - self.first
        return sum(data is not None for data in self.datas[start:])


def position(channel, event_id):
    """A `keep-alive` carrying an id: no data, but the client's Last-Event-ID moves on."""
    return sse_encode_event("keep-alive", "", event_id=make_id({channel: event_id})).encode()


class Hub:
    """Subscribes once to the SSE pub/sub channel and hands events to local streams."""

    def __init__(self):
        self.streams_by_channel = collections.defaultdict(set)
        self.streams_by_user = collections.defaultdict(set)
        self.streams_by_share = collections.defaultdict(set)
        # Streams with an expiry (a share link's), checked once a second by one timer.
        self.expiring = set()
        self.expiry_task = None
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
        if stream.share_id is not None:
            self.streams_by_share[stream.share_id].add(stream)
        if stream.expires is not None:
            self.expiring.add(stream)
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
        if self.expiring and (self.expiry_task is None or self.expiry_task.done()):
            self.expiry_task = loop.create_task(self.expire_forever(), context=contextvars.Context())

    async def expire_forever(self):
        """End each stream whose expiry passed (a share link's): no request is needed for
        an expired link's viewers to go. Ends when no stream has an expiry."""
        while self.expiring:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            now = time.time()
            for stream in tuple(self.expiring):
                if stream.expires <= now:
                    self.expiring.discard(stream)
                    stream.revoke()

    async def keepalive_forever(self):
        """One timer for every stream, instead of a timeout armed and cancelled per event
        per stream: a stream that sent nothing for a whole period gets a keep-alive."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            for stream in tuple(self.streams):
                stream.tick_keepalive()

    def remove(self, stream):
        self.streams.discard(stream)
        self.expiring.discard(stream)
        shared = self.streams_by_share.get(stream.share_id)
        if shared is not None:
            shared.discard(stream)
            if not shared:
                del self.streams_by_share[stream.share_id]
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

    def revoke(self, user_id, session=None):
        """A user's access changed (dashboard.revocation): end their streams here; with
        `session` (a session tag) only that session's."""
        for stream in tuple(self.streams_by_user.get(user_id, ())):
            if session is None or stream.session == session:
                stream.revoke()

    def revoke_share(self, link_id):
        """A share link ended, or its dashboard changed: end its streams here."""
        for stream in tuple(self.streams_by_share.get(link_id, ())):
            stream.revoke()

    def resync_all(self):
        # Messages may have been published while we were not subscribed.
        for streams in self.streams_by_channel.values():
            for stream in streams:
                stream.request_catch_up()

    async def listen_forever(self):
        await subscribe_forever(
            pubsub_channel(),
            self.dispatch,
            name="SSE hub",
            connected=self.connected,
            on_reconnect=self.resync_all,
            # What it missed meanwhile only storage knows.
            on_lost=self.current_ids.clear,
        )


# One hub per event loop: redis.asyncio connections and tasks cannot cross loops.
get_hub = PerLoop(Hub)


def end_all_streams():
    """End every stream of this worker (it is stopping); returns how many."""
    ended = 0
    for hub in get_hub.made():
        for stream in tuple(hub.streams):
            if not stream.ending:
                stream.end()
                ended += 1
    return ended


@revocation.on_revoked
def end_streams_of(user_id, session=None):
    """Revocations are heard on the loop whose hub holds the streams."""
    hub = get_hub.made_here()
    if hub is not None:
        hub.revoke(user_id, session)


@revocation.on_share_revoked
def end_streams_of_share(link_id):
    hub = get_hub.made_here()
    if hub is not None:
        hub.revoke_share(link_id)


draining.on_drain("SSE streams ended", end_all_streams)

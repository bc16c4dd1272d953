"""A stream's buffer, dedupe and catch-up, driven directly on the event loop with real Redis.

The hub hands each event to `Stream.offer`; here the test plays the hub, so it
can overflow the buffer or drop a message deterministically.
"""

import asyncio
import json

import pytest

from conftest import drop_stored_events
from dashboard.live import publish_frame
from dashboard.stream import hub as sse_hub
from dashboard.stream import stream as sse_stream
from dashboard.stream.hub import HubEvent
from dashboard.stream.stream import Stream
from tests.realclients import wait_until


@pytest.fixture(autouse=True)
def _redis(redis_url):
    return redis_url


def hub_event(event):
    return HubEvent.of(event)


async def started_stream(last_ids=None):
    stream = Stream(["metrics"], last_ids or {})
    await stream.fix_start_ids()
    chunks = [chunk async for chunk in stream.replay()]
    return stream, b"".join(chunks)


async def drained(stream):
    return b"".join([chunk async for chunk in stream.drain()])


def delivered_ids(body):
    return [int(line.split(b":")[-1]) for line in body.splitlines() if line.startswith(b"id: ")]


def event_types(body):
    return [line[7:].decode() for line in body.splitlines() if line.startswith(b"event: ")]


async def test_an_overflowing_stream_catches_up_from_storage_exactly_once():
    stream, _ = await started_stream()
    start = stream.last_ids["metrics"]
    published = [publish_frame(seq, 0.0, {}) for seq in range(sse_stream.STREAM_BUFFER * 3)]
    for event in published:
        stream.offer(hub_event(event))
    assert stream.catch_up_needed
    assert len(stream.buffer) < sse_stream.STREAM_BUFFER

    body = await drained(stream)

    assert delivered_ids(body) == [event.id for event in published]
    assert all(event.id > start for event in published)


async def test_events_already_delivered_are_dropped():
    stream, _ = await started_stream()
    first, second = publish_frame(1, 0.0, {}), publish_frame(2, 0.0, {})
    for event in (first, first, second, first, second):
        stream.offer(hub_event(event))

    assert delivered_ids(await drained(stream)) == [first.id, second.id]


async def test_a_missed_message_is_filled_from_storage():
    stream, _ = await started_stream()
    first, missed, third = (publish_frame(seq, 0.0, {}) for seq in range(3))
    stream.offer(hub_event(first))
    stream.offer(hub_event(third))  # the hub never heard `missed`

    assert delivered_ids(await drained(stream)) == [first.id, missed.id, third.id]


async def test_an_overflow_past_retention_ends_in_a_reset_not_a_hole():
    stream, _ = await started_stream()
    published = [publish_frame(seq, 0.0, {}) for seq in range(sse_stream.STREAM_BUFFER + 10)]
    for event in published:
        stream.offer(hub_event(event))
    drop_stored_events("metrics", published[0].id)

    body = await drained(stream)

    assert event_types(body) == ["stream-reset"]
    assert stream.last_ids["metrics"] == published[-1].id
    later = publish_frame(999, 0.0, {})
    stream.offer(hub_event(later))
    assert delivered_ids(await drained(stream)) == [later.id]


async def test_it_replays_from_the_requested_id_then_continues_live_without_duplicates():
    events = [publish_frame(seq, 0.0, {}) for seq in range(5)]
    stream, replay = await started_stream({"metrics": events[1].id})
    assert delivered_ids(replay) == [e.id for e in events[2:]]
    # Published before the stream's storage read but heard by the hub after it.
    stream.offer(hub_event(events[4]))
    live = publish_frame(5, 0.0, {})
    stream.offer(hub_event(live))
    assert delivered_ids(await drained(stream)) == [live.id]


async def test_a_client_resuming_at_the_hubs_newest_id_reads_nothing_from_redis(monkeypatch):
    event = publish_frame(0, 0.0, {})
    monkeypatch.setitem(sse_hub.get_hub().current_ids, "metrics", event.id)

    async def no_redis(*args):
        raise AssertionError("read Redis to resume a client that was up to date")

    monkeypatch.setattr(Stream.storage, "aget_current_id", no_redis)
    monkeypatch.setattr(Stream.storage, "aget_events", no_redis)
    stream, replay = await started_stream({"metrics": event.id})
    assert replay == b""
    live = publish_frame(1, 0.0, {})
    stream.offer(hub_event(live))
    assert delivered_ids(await drained(stream)) == [live.id]


async def test_multi_channel_ids_carry_every_channel():
    from dashboard.live import send

    stream = Stream(["metrics", "user-7"], {})
    await stream.fix_start_ids()
    event = send("user-7", "note", {"x": 1})
    stream.offer(hub_event(event))
    body = await drained(stream)
    assert f"id: metrics:{stream.last_ids['metrics']},user-7:{event.id}".encode() in body


async def test_the_hot_path_takes_what_follows_on_and_leaves_a_hole_to_storage():
    publish_frame(0, 0.0, {})  # the channel's first id comes from the clock: start after it
    stream, _ = await started_stream()
    first, second, lost, after_lost = [publish_frame(seq, 0.0, {}) for seq in range(4)]
    for event in (first, first, second):
        stream.offer(hub_event(event))

    chunk, hole = stream.take_buffered()
    assert delivered_ids(chunk) == [first.id, second.id] and not hole

    stream.offer(hub_event(after_lost))  # `lost` never reached this worker's hub
    chunk, hole = stream.take_buffered()
    assert (chunk, hole) == (b"", True)
    assert delivered_ids(await drained(stream)) == [lost.id, after_lost.id]


async def test_an_ended_stream_sends_what_it_holds_then_a_short_retry():
    publish_frame(0, 0.0, {})  # the channel's first id comes from the clock: start after it
    stream = Stream(["metrics"], {})
    chunks = []

    async def read():
        async for chunk in stream.run():
            chunks.append(chunk)

    task = asyncio.create_task(read())
    await wait_until(lambda: chunks, message="the opening chunk")
    event = publish_frame(1, 0.0, {})
    stream.offer(hub_event(event))
    stream.end()
    await asyncio.wait_for(task, 5)

    body = b"".join(chunks)
    assert delivered_ids(body) == [event.id]
    retry = int(chunks[-1].removeprefix(b"retry: ").strip())
    assert sse_stream.RESTART_RETRY_MS <= retry < 2 * sse_stream.RESTART_RETRY_MS
    assert stream not in sse_hub.get_hub().streams


async def test_a_quiet_stream_gets_a_keepalive_after_a_whole_quiet_period():
    stream, _ = await started_stream()
    stream.active = True
    stream.tick_keepalive()  # it sent something during this period: nothing due
    assert not stream.keepalive_due
    stream.tick_keepalive()
    assert stream.keepalive_due


async def test_a_new_stream_starts_at_the_hub_s_newest_id_without_asking_redis(monkeypatch):
    import json

    hub = sse_hub.Hub()
    newer, older = publish_frame(1, 0.0, {}), None
    older = type(newer)(newer.channel, newer.type, newer.data, id=newer.id - 1)
    for event in (newer, older):  # out of order, as two publishers can be
        hub.dispatch(
            json.dumps({"channel": event.channel, "type": event.type, "data": event.data, "id": event.id})
        )
    assert hub.current_ids == {"metrics": newer.id}

    async def no_redis(channel):
        raise AssertionError("asked Redis for the current id")

    stream = Stream(["metrics"], {})
    monkeypatch.setattr(stream.storage, "aget_current_id", no_redis)
    await stream.fix_start_ids(hub)
    assert stream.last_ids == {"metrics": newer.id}


async def test_streams_of_a_channel_the_hub_has_not_heard_yet_ask_redis_once(monkeypatch):
    publish_frame(0, 0.0, {})
    hub = sse_hub.Hub()
    hub.connected.set()  # subscribed, but nothing dispatched yet (a worker just started)
    first = Stream(["metrics"], {})
    await first.fix_start_ids(hub)

    async def no_redis(channel):
        raise AssertionError("asked Redis for the current id again")

    second = Stream(["metrics"], {})
    monkeypatch.setattr(second.storage, "aget_current_id", no_redis)
    await second.fix_start_ids(hub)
    assert second.last_ids == first.last_ids == hub.current_ids


# Batches: `publish_metrics` publishes a run of consecutive ids as one message.


def published_runs(count, chunk):
    """Publish `count` metric points as `publish_metrics` does (`chunk` points to a
    message); the runs a hub makes of the pub/sub messages it hears."""
    from dashboard.redis import get_sync_client
    from dashboard.storage import DashboardRedisStorage, parse_published, pubsub_channel

    pubsub = get_sync_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(pubsub_channel())
    pubsub.get_message(timeout=1)
    points = [json.dumps({"name": "batch", "value": n, "ts": 0.0}) for n in range(count)]
    DashboardRedisStorage().append_events("metrics", "metric", points, chunk=chunk)
    runs = []
    while message := pubsub.get_message(timeout=1):
        runs.append(HubEvent(parse_published(message["data"])))
    pubsub.close()
    return runs


async def test_a_batch_reaches_a_stream_as_one_chunk_with_every_event_and_id():
    stream, _ = await started_stream()
    other, _ = await started_stream()
    start = stream.last_ids["metrics"]
    runs = published_runs(7, chunk=7)
    assert len(runs) == 1
    stream.offer(runs[0])

    chunk, hole = stream.take_buffered()

    assert not hole
    assert delivered_ids(chunk) == list(range(start + 1, start + 8))
    assert event_types(chunk) == ["metric"] * 7
    values = [json.loads(line[6:])["value"] for line in chunk.splitlines() if line.startswith(b"data: ")]
    assert values == list(range(7))
    # Every stream of the hub gets the same bytes, encoded once.
    other.offer(runs[0])
    assert other.take_buffered()[0] is chunk


async def test_a_run_partly_delivered_already_sends_only_the_rest():
    stream, _ = await started_stream()
    start = stream.last_ids["metrics"]
    first, second = published_runs(6, chunk=3)
    stream.last_ids["metrics"] = start + 2  # as if storage had given it the first two
    for run in (first, second, first):
        stream.offer(run)
    assert delivered_ids(await drained(stream)) == list(range(start + 3, start + 7))


async def test_a_run_after_a_missed_one_is_filled_from_storage():
    stream, _ = await started_stream()
    start = stream.last_ids["metrics"]
    _missed, second = published_runs(6, chunk=3)
    stream.offer(second)
    assert stream.take_buffered() == (b"", True)
    assert delivered_ids(await drained(stream)) == list(range(start + 1, start + 7))


async def test_a_run_on_a_multi_channel_stream_carries_every_channel_in_each_id():
    stream = Stream(["metrics", "user-7"], {})
    await stream.fix_start_ids()
    user_id = stream.last_ids["user-7"]
    start = stream.last_ids["metrics"]
    [run] = published_runs(3, chunk=3)
    stream.offer(run)
    body = await drained(stream)
    assert [line for line in body.splitlines() if line.startswith(b"id: ")] == [
        f"id: metrics:{start + n},user-7:{user_id}".encode() for n in (1, 2, 3)
    ]


# The hub writes to a stream idle in its task (Stream.write_now); the task takes over
# for what needs awaiting. `serve` plays DirectStreams: the task's own chunks go to the
# same ASGI `send`, so `written` is the order the client reads.


class Socket:
    """An ASGI `send` that records each body; while `readable` is clear it waits, as a
    server's send does for a client that does not read."""

    def __init__(self):
        self.written = []
        self.readable = asyncio.Event()
        self.readable.set()
        self.sends_closed = 0

    async def send(self, message):
        try:
            await self.readable.wait()
            self.written.append(message["body"])
        finally:
            if not self.readable.is_set():
                self.sends_closed += 1

    def ids(self):
        return delivered_ids(b"".join(self.written))


async def served_stream():
    """(a stream idle in its task, its Socket, the task), as DirectStreams serves one."""
    publish_frame(0, 0.0, {})  # the channel's first id comes from the clock: start after it
    stream, socket = Stream(["metrics"], {}), Socket()

    async def serve():
        stream.send = socket.send
        async for chunk in stream.run():
            await socket.send({"type": "http.response.body", "body": chunk, "more_body": True})

    task = asyncio.create_task(serve())
    await wait_until(lambda: stream.waiter is not None, message="the stream idle in its task")
    return stream, socket, task


async def test_an_idle_stream_is_written_by_the_hub_itself_without_waking_its_task():
    stream, socket, task = await served_stream()
    waiter = stream.waiter
    events = [publish_frame(seq, 0.0, {}) for seq in range(1, 4)]

    for event in events:
        stream.offer(hub_event(event))
        # Written during the offer: no task step came between.
        assert socket.ids()[-1] == event.id

    assert socket.ids() == [event.id for event in events]
    assert stream.waiter is waiter and not waiter.done()
    assert not stream.buffer
    stream.end()
    await task


async def test_a_write_the_socket_does_not_take_at_once_is_finished_before_what_follows():
    stream, socket, task = await served_stream()
    events = [publish_frame(seq, 0.0, {}) for seq in range(1, 5)]
    socket.readable.clear()  # the client stops reading

    for event in events:
        stream.offer(hub_event(event))
    assert stream.unfinished_send is not None
    assert len(stream.buffer) == 3  # the hub goes on without waiting for this client

    socket.readable.set()
    await wait_until(lambda: len(socket.ids()) == len(events), message="every event written")
    assert socket.ids() == [event.id for event in events]
    await wait_until(lambda: stream.waiter is not None, message="idle again")
    later = publish_frame(5, 0.0, {})
    stream.offer(hub_event(later))
    assert socket.ids()[-1] == later.id  # the hub writes it again
    stream.end()
    await task


async def test_a_hole_is_left_to_the_task_which_fills_it_from_storage():
    stream, socket, task = await served_stream()
    first, lost, third = (publish_frame(seq, 0.0, {}) for seq in range(1, 4))
    stream.offer(hub_event(first))
    stream.offer(hub_event(third))  # `lost` never reached this worker's hub

    await wait_until(lambda: len(socket.ids()) == 3, message="the hole filled")
    assert socket.ids() == [first.id, lost.id, third.id]
    stream.end()
    await task


async def test_a_client_that_leaves_during_a_waiting_write_leaves_nothing_behind():
    stream, socket, task = await served_stream()
    socket.readable.clear()
    stream.offer(hub_event(publish_frame(1, 0.0, {})))
    await wait_until(lambda: stream.waiter is None and stream.unfinished_send is not None)

    task.cancel()  # DirectStreams cancels the stream's task when the client leaves
    with pytest.raises(asyncio.CancelledError):
        await task
    assert socket.sends_closed == 1  # the hub's unfinished write was closed, not left pending
    assert stream not in sse_hub.get_hub().streams


async def test_a_stream_ended_during_a_waiting_write_sends_it_before_its_retry():
    stream, socket, task = await served_stream()
    socket.readable.clear()
    event = publish_frame(1, 0.0, {})
    stream.offer(hub_event(event))
    stream.end()  # the worker is stopping

    socket.readable.set()
    await task
    assert socket.ids() == [event.id]
    assert socket.written[-1].startswith(b"retry: ")

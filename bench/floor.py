"""The floor: the least a Python process can do to relay the product's events as SSE.

One aiohttp server, one Redis pub/sub subscription to the channel the product
publishes every SSE event on (`dashboard.storage.pubsub_channel()`), each
event encoded once and written to every open stream. No auth, no storage, no
Django: whatever the product spends beyond this is the price of its features.

    python -m bench.floor --port 8123 --redis-url redis://127.0.0.1:6380/0 --pubsub-channel bench:sse

With `--select-by LABEL`, a stream opened with `?LABEL=value` gets only the events whose
labels carry that value (the floor of `/events/?match=`, bench.selected): each event
is looked at once, and each run of events encoded once per value.
"""

import argparse
import asyncio
import contextlib
import json

import redis.asyncio
from aiohttp import web

# A client whose socket buffer holds this much unsent data is too slow to keep.
MAX_BUFFERED = 1 << 20


def sse_frame(raw):
    """The SSE frames for one pub/sub message (`{"channel", "id", "type", "data"}`, data as
    JSON text; or a batch, `batch` holding each event's data from `id` on), as one chunk."""
    message = json.loads(raw)
    channel, event_type, first = message["channel"], message["type"], int(message["id"])
    datas = message["batch"] if "batch" in message else [message["data"]]
    return "".join(
        f"event: {event_type}\nid: {channel}:{first + i}\ndata: {data}\n\n" for i, data in enumerate(datas)
    ).encode()


def selected_frames(raw, label):
    """{label value: the SSE frames of the message's events carrying it, as one chunk}."""
    message = json.loads(raw)
    channel, event_type, first = message["channel"], message["type"], int(message["id"])
    datas = message["batch"] if "batch" in message else [message["data"]]
    parts = {}
    for i, data in enumerate(datas):
        value = (json.loads(data).get("labels") or {}).get(label)
        if value is not None:
            parts.setdefault(value, []).append(
                f"event: {event_type}\nid: {channel}:{first + i}\ndata: {data}\n\n"
            )
    return {value: "".join(frames).encode() for value, frames in parts.items()}


class Relay:
    def __init__(self, redis_url, pubsub_channel, stream_channel, select_by=None):
        self.redis_url = redis_url
        self.pubsub_channel = pubsub_channel
        self.stream_channel = stream_channel
        self.select_by = select_by
        self.streams = {}  # response -> its transport
        self.selected = {}  # label value -> {response: its transport}

    async def events(self, request):
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(b":\n\n")
        streams = self.streams
        if self.select_by:
            streams = self.selected.setdefault(request.query.get(self.select_by), {})
        streams[response] = request.transport
        try:
            await asyncio.Event().wait()  # held open until the client leaves (cancels us)
        finally:
            streams.pop(response, None)
        return response

    async def broadcast(self, frame, streams=None):
        streams = self.streams if streams is None else streams
        for response, transport in list(streams.items()):
            if (
                transport is None
                or transport.is_closing()
                or transport.get_write_buffer_size() > MAX_BUFFERED
            ):
                streams.pop(response, None)
                continue
            try:
                await response.write(frame)
            except (ConnectionResetError, RuntimeError):
                streams.pop(response, None)

    async def relay(self, app):
        client = redis.asyncio.Redis.from_url(self.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.pubsub_channel)
        try:
            async for message in pubsub.listen():
                if json.loads(message["data"])["channel"] != self.stream_channel:
                    continue
                if not self.select_by:
                    await self.broadcast(sse_frame(message["data"]))
                    continue
                for value, frame in selected_frames(message["data"], self.select_by).items():
                    if value in self.selected:
                        await self.broadcast(frame, self.selected[value])
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def start_relay(self, app):
        app["relay"] = asyncio.create_task(self.relay(app))
        yield
        app["relay"].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app["relay"]


def make_app(redis_url, pubsub_channel, stream_channel="metrics", select_by=None):
    relay = Relay(redis_url, pubsub_channel, stream_channel, select_by)
    app = web.Application()
    app.router.add_get("/events/", relay.events)
    app.cleanup_ctx.append(relay.start_relay)
    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--pubsub-channel", required=True)
    parser.add_argument("--stream-channel", default="metrics")
    parser.add_argument("--select-by", metavar="LABEL", help="streams get the events of ?LABEL=value only")
    args = parser.parse_args()
    from bench.limits import raise_open_files_limit

    raise_open_files_limit()
    app = make_app(args.redis_url, args.pubsub_channel, args.stream_channel, args.select_by)
    # handler_cancellation: a client that leaves ends its handler, so the stream is dropped at once.
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        print=None,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=1.0,
    )


if __name__ == "__main__":
    main()

"""Clients that talk to real web workers over real sockets, the way a browser does.

The integration tests share them: EventStream, an SSE connection that behaves
like the page's EventSource (channels, Last-Event-ID carried over); SSEReader, a
raw GET of one /events/ URL for protocol tests (status, headers, error bodies);
and WebSocket helpers that log in with a real session cookie and the page's Origin.
"""

import asyncio
import contextlib
import json
import time
from urllib.parse import urlsplit

import httpx
import websockets
from httpx_sse import EventSource, aconnect_sse

WAIT = 15.0


def session_cookie(user):
    """A real session for `user` in the shared test database, as the login form would create."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value}


def cookie_header(cookies):
    return "; ".join(f"{name}={value}" for name, value in (cookies or {}).items())


def origin_of(base_url):
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def ws_url(base_url, path="/ws/dashboard/", query=""):
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")


def events_url(base_url, *channels, last_event_id=None):
    query = "&".join(f"channel={c}" for c in channels)
    if last_event_id:
        query += f"&lastEventId={last_event_id}"
    return f"{base_url}/events/?{query}"


def event_of(sse):
    """An httpx_sse event as tests read it: {"event", "id", "data"}, data JSON-decoded when it is JSON."""
    try:
        data = json.loads(sse.data) if sse.data else None
    except ValueError:
        data = sse.data
    return {"event": sse.event, "id": sse.id or None, "data": data}


async def wait_until(predicate, timeout=WAIT, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


class EventStream:
    """One SSE connection read in a background task; `events` fills as they arrive.

    Each event is a dict: {"event", "id", "data"} with data JSON-decoded when it is JSON.
    """

    def __init__(self, base_url, channels, cookies=None, last_event_id=None, match=()):
        self.base_url = base_url
        self.channels = list(channels)
        self.match = list(match)
        self.cookies = cookies
        self.last_event_id = last_event_id
        self.events = []
        self.status = None
        self.opened = asyncio.Event()
        self.ended = asyncio.Event()
        self.error = None
        self._task = None

    async def __aenter__(self):
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.opened.wait(), WAIT)
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self):
        headers = {"Cookie": cookie_header(self.cookies)} if self.cookies else {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        params = [("channel", channel) for channel in self.channels]
        params += [("match", selector) for selector in self.match]
        timeout = httpx.Timeout(10.0, read=None)
        try:
            async with (
                httpx.AsyncClient(base_url=self.base_url, timeout=timeout) as client,
                aconnect_sse(client, "GET", "/events/", params=params, headers=headers) as source,
            ):
                self.status = source.response.status_code
                self.opened.set()
                if self.status != 200:
                    return
                async for sse in source.aiter_sse():
                    self._keep(sse)
        except (httpx.HTTPError, OSError) as exc:
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def _keep(self, sse):
        if sse.event == "keep-alive":
            return
        self.events.append(event_of(sse))
        if sse.id and sse.id != "error":
            self.last_event_id = sse.id

    def of_type(self, event_type):
        return [e for e in self.events if e["event"] == event_type]

    async def wait_for(self, predicate, timeout=WAIT, message="an SSE event"):
        return await wait_until(
            lambda: next((e for e in self.events if predicate(e)), None), timeout, message=message
        )


class SSEReader:
    """`async with SSEReader(url, cookies) as stream:` then `stream.status`, `stream.events`.

    One GET of exactly `url` (any query, any headers), read in a background task when
    it answers 200; otherwise its body is kept for `stream.json()`. Every event is kept,
    keep-alives too, and `wait_for` predicates see the whole list."""

    def __init__(self, url, cookies=None, headers=None):
        self.url, self.cookies, self.headers = url, cookies or {}, headers or {}
        self.events = []
        self.status = None
        self.body = b""
        self.response_headers = {}
        self._task = None

    async def __aenter__(self):
        self._client = httpx.AsyncClient(cookies=self.cookies, timeout=httpx.Timeout(WAIT, read=None))
        request = self._client.build_request("GET", self.url, headers=self.headers)
        self._response = await self._client.send(request, stream=True)
        self.status = self._response.status_code
        self.response_headers = self._response.headers
        if self.status == 200:
            self._task = asyncio.create_task(self._read())
        else:
            self.body = await self._response.aread()
        return self

    async def __aexit__(self, *exc):
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._response.aclose()
        await self._client.aclose()

    def json(self):
        return json.loads(self.body)

    async def _read(self):
        async for sse in EventSource(self._response).aiter_sse():
            self.events.append(event_of(sse))

    def of_type(self, event_type):
        return [e for e in self.events if e["event"] == event_type]

    async def wait_for(self, predicate, timeout=WAIT, message="events"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events):
                return self.events
            if self._task and self._task.done():
                self._task.result()
                raise AssertionError(f"stream ended while waiting for {message}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}; got {self.events[-5:]}")


class Socket:
    """A WebSocket to /ws/dashboard/ that keeps every message it receives."""

    def __init__(self, connection):
        self.connection = connection
        self.messages = []
        self.close_code = None
        self._task = asyncio.create_task(self._read())
        self._next_id = 0

    async def _read(self):
        try:
            async for raw in self.connection:
                try:
                    self.messages.append(json.loads(raw))
                except ValueError:
                    self.messages.append({"type": "<not json>", "raw": raw})
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.connection.close_code

    async def send(self, message):
        await self.connection.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def command(self, type_, timeout=WAIT, **fields):
        """Send a command with a fresh id and return the server's answer to it (ack or error)."""
        self._next_id += 1
        # mark_read's `id` is its target as well as the id its answer echoes.
        request_id = fields.pop("id", f"t{self._next_id}")
        await self.send({"type": type_, "id": request_id, **fields})
        return await self.wait_for(
            lambda m: m.get("id") == request_id and m.get("type") in ("ack", "error", "pong", "snapshot"),
            timeout,
            message=f"the answer to {type_}",
        )

    async def wait_for(self, predicate, timeout=WAIT, message="a WebSocket message"):
        return await wait_until(
            lambda: next((m for m in self.messages if predicate(m)), None), timeout, message=message
        )

    def of_type(self, type_):
        return [m for m in self.messages if m.get("type") == type_]

    async def closed(self, timeout=WAIT):
        await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.close_code

    async def close(self):
        await self.connection.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)


@contextlib.asynccontextmanager
async def open_socket(base_url, cookies=None, origin=None, query="", max_size=2**20):
    """Connect like the page does; raises websockets.InvalidStatus if the handshake is refused."""
    headers = {"Origin": origin or origin_of(base_url)}
    if cookies:
        headers["Cookie"] = cookie_header(cookies)
    connection = await websockets.connect(
        ws_url(base_url, query=query), additional_headers=headers, max_size=max_size, open_timeout=WAIT
    )
    socket = Socket(connection)
    try:
        yield socket
    finally:
        await socket.close()


async def try_socket(base_url, cookies=None, origin=None):
    """Connect and report the outcome: ("hello", message), ("closed", code) or ("refused", status)."""
    try:
        async with open_socket(base_url, cookies=cookies, origin=origin) as socket:
            done = asyncio.create_task(socket.closed(timeout=WAIT))
            hello = asyncio.create_task(socket.wait_for(lambda m: m.get("type") == "hello"))
            finished, pending = await asyncio.wait({done, hello}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if hello in finished and not hello.exception():
                return "hello", hello.result()
            return "closed", socket.close_code
    except websockets.InvalidStatus as exc:
        return "refused", exc.response.status_code
    except websockets.ConnectionClosed as exc:
        return "closed", exc.rcvd.code if exc.rcvd else None

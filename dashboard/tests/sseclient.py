"""A small SSE client for tests: reads a real stream in the background while the test acts."""

import asyncio
import contextlib
import json
import time

import httpx

WAIT = 15.0


def events_url(base_url, *channels, last_event_id=None):
    query = "&".join(f"channel={c}" for c in channels)
    if last_event_id:
        query += f"&lastEventId={last_event_id}"
    return f"{base_url}/events/?{query}"


class SSEReader:
    """`async with SSEReader(url, cookies) as stream:` then `stream.status`, `stream.events`.

    Each event is {"event", "id", "data"}, data JSON-decoded when it is JSON."""

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
        fields = {}
        async for line in self._response.aiter_lines():
            if line == "":
                if fields:
                    self.events.append(self._event(fields))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                fields[name] = fields[name] + "\n" + value if name in fields else value

    @staticmethod
    def _event(fields):
        data = fields.get("data", "")
        with contextlib.suppress(ValueError):
            data = json.loads(data)
        return {"event": fields.get("event", "message"), "id": fields.get("id"), "data": data}

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

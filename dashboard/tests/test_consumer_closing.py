"""A broadcast that reaches a socket which has just closed is dropped quietly, on either server.

One client sends a frame over the size limit, so the server answers `too_large`
and starts closing its socket; the client then stays silent, so the close
handshake is still under way while another user's commands broadcast
`sampling.changed` to every dashboard socket, this one included. Before the
consumer dropped such messages, daphne raised autobahn's `Disconnected` out of
the handler and uvicorn refused a send after `websocket.close`, each logging a
traceback.
"""

import asyncio
import base64
import os
import struct
import subprocess

import pytest

from dashboard.control import protocol
from deploy.supervisor import free_port, wait_for_port
from tests.realclients import cookie_header, open_socket, origin_of, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CRASH_MARKERS = ("Traceback", "Exception inside application", "Exception in ASGI application", " ERROR ")
BROADCASTS = 6


@pytest.fixture
def uvicorn_worker(subprocess_env, tmp_path):
    from deploy.supervisor import Supervisor

    supervisor = Supervisor(env=subprocess_env)
    port = free_port()
    log = open(tmp_path / "uvicorn.log", "wb")  # noqa: SIM115
    process = supervisor.python(
        "uvicorn",
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "config.asgi:application",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, process=process)
    process.log_path = log.name
    yield f"http://127.0.0.1:{port}", process
    supervisor.stop()


@pytest.fixture
def daphne_worker(daphne_workers):
    (url,) = daphne_workers(1)
    return url, daphne_workers.workers[0]


@pytest.fixture(params=["daphne", "uvicorn"])
def worker(request):
    return request.getfixturevalue(f"{request.param}_worker")


class RawSocket:
    """A WebSocket spoken by hand, so the test decides when (and whether) it answers a close."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url, cookies):
        port = int(base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws/dashboard/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin_of(base_url)}\r\nCookie: {cookie_header(cookies)}\r\n\r\n"
        )
        writer.write(request.encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self):
        """(opcode, payload) of the next frame from the server (never masked)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def wait_for_opcode(self, opcode):
        while True:
            found, payload = await self.frame()
            if found == opcode:
                return payload

    def send_text(self, text):
        payload = text.encode()
        # Masked with a zero key: valid, and the payload goes out as it is.
        header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", len(payload)) + b"\0\0\0\0"
        self.writer.write(header + payload)

    def abort(self):
        self.writer.transport.abort()


async def wait_after(socket, start, predicate, timeout=10):
    """The first message after the first `start` ones that matches."""
    return await wait_until(lambda: next((m for m in socket.messages[start:] if predicate(m)), None), timeout)


def online(message):
    return {person["username"] for person in message["online"]}


def log_of(process):
    with open(process.log_path, encoding="utf-8", errors="replace") as log:
        return log.read()


async def test_broadcasts_to_a_socket_that_is_closing_are_dropped_quietly(
    worker, staff_cookies, alice_cookies
):
    base_url, process = worker
    async with open_socket(base_url, staff_cookies) as operator:
        await operator.wait_for(lambda m: m.get("type") == "hello")
        closing = await RawSocket.open(base_url, alice_cookies)
        try:
            await closing.wait_for_opcode(0x1)  # hello
            await operator.wait_for(lambda m: m.get("type") == "presence" and "alice" in online(m))
            closing.send_text("x" * (protocol.MAX_FRAME_BYTES + 1))
            close_payload = await closing.wait_for_opcode(0x8)
            assert struct.unpack("!H", close_payload[:2])[0] == protocol.CLOSE_TOO_LARGE
            # The server has said goodbye and waits for ours, which does not come.
            seen = len(operator.messages)
            for index in range(BROADCASTS):
                answer = await operator.command("set_interval", seconds=1 + index)
                assert answer["type"] == "ack"
            await operator.wait_for(
                lambda m: m.get("type") == "interval_changed" and m["interval"] == BROADCASTS
            )
        finally:
            closing.abort()
        # The closing socket's consumer handled the broadcasts before its disconnect,
        # which takes alice off the online list.
        await wait_after(
            operator, seen, lambda m: m.get("type") == "presence" and "alice" not in online(m), 30
        )
        assert (await operator.command("ping"))["type"] == "pong"
    text = log_of(process)
    assert [marker for marker in CRASH_MARKERS if marker in text] == [], text[-3000:]


async def test_sockets_dropped_during_a_burst_of_broadcasts_leave_no_traceback(
    worker, staff_cookies, alice_cookies
):
    base_url, process = worker
    async with open_socket(base_url, staff_cookies) as operator:
        await operator.wait_for(lambda m: m.get("type") == "hello")
        viewers = [await RawSocket.open(base_url, alice_cookies) for _ in range(8)]
        for viewer in viewers:
            await viewer.wait_for_opcode(0x1)  # hello
        seen = len(operator.messages)
        # A burst of broadcasts without waiting for answers; the viewers vanish in the middle of it.
        for index in range(BROADCASTS * 4):
            await operator.send({"type": "set_interval", "seconds": 1 + index % 10, "id": f"burst-{index}"})
            if index == BROADCASTS:
                for viewer in viewers:
                    viewer.abort()
        await wait_after(operator, seen, lambda m: m.get("id") == f"burst-{BROADCASTS * 4 - 1}")
        await wait_after(
            operator, seen, lambda m: m.get("type") == "presence" and "alice" not in online(m), 30
        )
        assert (await operator.command("ping"))["type"] == "pong"
    text = log_of(process)
    assert [marker for marker in CRASH_MARKERS if marker in text] == [], text[-3000:]

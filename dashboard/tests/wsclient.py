"""A WebsocketCommunicator for the dashboard consumer, logged in as a given user."""

import asyncio
import contextlib

from channels.testing import WebsocketCommunicator

from dashboard.control.consumers import DashboardConsumer

WAIT = 5.0


class Client:
    def __init__(self, communicator):
        self.communicator = communicator
        self.seen = []

    async def send(self, message):
        if isinstance(message, str):
            # send_input, not send_to: send_to refuses an empty text frame, which a client can send.
            await self.communicator.send_input({"type": "websocket.receive", "text": message})
        elif isinstance(message, bytes):
            await self.communicator.send_to(bytes_data=message)
        else:
            await self.communicator.send_json_to(message)

    async def next(self, timeout=WAIT):
        message = await self.communicator.receive_json_from(timeout=timeout)
        self.seen.append(message)
        return message

    async def wait_for(self, predicate, timeout=WAIT):
        """The first message (already seen or still to come) that matches."""
        for message in self.seen:
            if predicate(message):
                self.seen.remove(message)
                return message
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"no matching message; saw {self.seen[-5:]}")
            message = await self.next(timeout=remaining)
            if predicate(message):
                self.seen.remove(message)
                return message

    async def wait_for_type(self, message_type, timeout=WAIT):
        return await self.wait_for(lambda m: m.get("type") == message_type, timeout)

    async def answer(self, message, timeout=WAIT):
        """Send a command with an id and return the reply carrying that id."""
        await self.send(message)
        return await self.wait_for(lambda m: m.get("id") == message.get("id") and m["type"] != "notification")

    async def nothing_more(self, message_type, within=0.5, where=lambda message: True):
        """Assert no message of this type (and matching `where`) arrives within `within` seconds."""
        # receive_nothing, not a timed-out receive: asgiref cancels the app on a receive timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if await self.communicator.receive_nothing(timeout=0.05):
                continue
            message = await self.next()
            assert not (message.get("type") == message_type and where(message)), f"unexpected {message}"

    async def closed(self, timeout=WAIT):
        """The close code, skipping any messages sent before the close."""
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code")


def communicator_for(user, query=""):
    communicator = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard/" + query)
    communicator.scope["user"] = user
    return communicator


@contextlib.asynccontextmanager
async def connected(user, query=""):
    """A connected client and its hello."""
    communicator = communicator_for(user, query)
    accepted, code = await communicator.connect(timeout=WAIT)
    assert accepted, f"connection refused with {code}"
    client = Client(communicator)
    hello = await client.wait_for_type("hello")
    try:
        yield client, hello
    finally:
        await communicator.disconnect()

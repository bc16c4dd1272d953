import asyncio
import time

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie_for(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def communicator(cookie=None):
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


async def test_it_logs_in_from_the_session_cookie(alice, redis_url):
    ws = communicator(await database_sync_to_async(session_cookie_for)(alice))
    connected, _ = await ws.connect()
    assert connected
    hello = await ws.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    assert hello["user"]["username"] == "alice"
    await ws.disconnect()


async def test_it_refuses_a_forged_session_cookie(alice, redis_url):
    ws = communicator("not-a-session")
    connected, code = await ws.connect()
    assert not connected
    assert code == 4401
    await ws.disconnect()


async def test_a_handshake_does_not_wait_for_the_shared_database_thread(alice, redis_url):
    """Channels' stock AuthMiddleware looks the user up on the one thread every
    thread-sensitive call shares; while that thread is busy (here: for 3 s), a
    handshake has to wait. Ours must not."""
    cookie = await database_sync_to_async(session_cookie_for)(alice)
    busy = asyncio.ensure_future(sync_to_async(time.sleep, thread_sensitive=True)(3))
    await asyncio.sleep(0.1)
    ws = communicator(cookie)
    started = time.monotonic()
    connected, _ = await ws.connect(timeout=5)
    accepted_after = time.monotonic() - started
    await ws.disconnect()
    await busy
    assert connected
    assert accepted_after < 2, f"the handshake waited {accepted_after:.1f}s for the shared thread"


async def test_it_refuses_a_session_from_before_a_password_change(alice, redis_url):
    cookie = await database_sync_to_async(session_cookie_for)(alice)

    def change_password():
        alice.set_password("a brand new password 456")
        alice.save()

    await database_sync_to_async(change_password)()
    ws = communicator(cookie)
    connected, code = await ws.connect()
    assert not connected
    assert code == 4401
    await ws.disconnect()


async def test_the_socket_gets_its_user_and_session_and_the_server_s_own_send(alice, redis_url):
    """No per-message wrapper between a socket and its server: a socket never sends the
    HTTP response Channels' session wrapper saves sessions on."""
    from dashboard.control.auth import ConcurrentAuthMiddlewareStack

    seen = {}

    async def inner(scope, receive, send):
        seen.update(user=scope["user"].username, session=scope["session"].session_key, send=send)

    async def server_send(message):
        pass

    cookie = await database_sync_to_async(session_cookie_for)(alice)
    scope = {
        "type": "websocket",
        "path": "/ws/dashboard/",
        "headers": [(b"cookie", f"sessionid={cookie}".encode())],
    }
    await ConcurrentAuthMiddlewareStack(inner)(scope, None, server_send)
    assert seen == {"user": "alice", "session": cookie, "send": server_send}

"""Connects Pushpin forwards are answered on the ASGI application without Django's middleware chain.

These go through `config.asgi.application` as daphne would call it, with a
Grip-Sig signed by the key in GRIP_URL, as Pushpin sends it.
"""

import asyncio
import json
import time
from importlib import import_module

import jwt
import pytest
from asgiref.testing import ApplicationCommunicator
from channels.testing import HttpCommunicator
from django.conf import settings
from django.core.cache import cache
from django.core.signals import request_started
from django.db import connections

from config.asgi import application
from dashboard import access
from dashboard.access import AccessCache
from dashboard.stream import grip
from dashboard.stream.app import stream_sync
from tests.realclients import cookie_header

GRIP_KEY = "grip-connects-test-key-of-32-bytes-or-more"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def grip_on(settings, monkeypatch):
    settings.GRIP_URL = f"http://127.0.0.1:9?key={GRIP_KEY}"
    monkeypatch.setattr(access, "cache", AccessCache())


@pytest.fixture
def requests_through_django():
    """How many requests reached Django's own handler (it sends request_started first)."""
    started = []

    def count(**kwargs):
        started.append(kwargs)

    request_started.connect(count)
    yield started
    request_started.disconnect(count)


def signature(key=GRIP_KEY):
    return jwt.encode({"iss": "pushpin", "exp": int(time.time()) + 3600}, key)


def signed_headers(cookies=None, sig=None):
    """The headers of a request Pushpin forwards: its signature, and the browser's cookies."""
    headers = [(b"host", b"127.0.0.1"), (b"grip-sig", (sig or signature()).encode())]
    if cookies:
        headers.append((b"cookie", cookie_header(cookies).encode()))
    return headers


async def connect(cookies=None, query="channel=metrics", sig=None):
    headers = signed_headers(cookies, sig)
    communicator = HttpCommunicator(application, "GET", f"/events/?{query}", headers=headers)
    response = await communicator.get_response(timeout=10)
    response["headers"] = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    return response


async def test_it_answers_a_signed_connect_with_grip_instructions(alice_cookies, requests_through_django):
    response = await connect(alice_cookies)

    assert response["status"] == 200
    assert response["headers"]["grip-hold"] == "stream"
    assert "events-metrics" in response["headers"]["grip-channel"]
    assert b"event: stream-open" in response["body"]
    assert response["headers"]["x-content-type-options"] == "nosniff"
    assert response["headers"]["x-frame-options"] == "DENY"
    assert response["headers"]["content-length"] == str(len(response["body"]))
    assert requests_through_django == []


async def test_it_rejects_anonymous(requests_through_django):
    response = await connect()

    assert response["status"] == 403
    assert "grip-hold" not in response["headers"]
    assert json.loads(response["body"])["error"] == "Log in to read event streams"
    assert requests_through_django == []


async def test_it_rejects_a_user_without_permission(charlie_cookies):
    response = await connect(charlie_cookies)

    assert response["status"] == 403
    assert "grip-hold" not in response["headers"]


async def test_it_answers_a_malformed_last_event_id_with_400(alice_cookies):
    response = await connect(alice_cookies, query="channel=metrics&lastEventId=nonsense")

    assert response["status"] == 400
    assert "grip-hold" not in response["headers"]


async def test_it_treats_a_request_signed_with_another_key_as_a_direct_stream(monkeypatch):
    async def not_pushpin(*args):
        raise AssertionError("answered as a connect Pushpin forwarded")

    monkeypatch.setattr(grip, "authorise_and_replay", not_pushpin)
    response = await connect(sig=signature("not-the-key-pushpin-was-given-at-all"))

    assert response["status"] == 403
    assert "grip-hold" not in response["headers"]
    assert json.loads(response["body"])["error"] == "Log in to read event streams"


async def test_it_answers_500_and_keeps_serving_when_a_connect_fails(alice_cookies, monkeypatch):
    real = grip.authorise_and_replay

    async def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(grip, "authorise_and_replay", broken)
    failed = await connect(alice_cookies)
    monkeypatch.setattr(grip, "authorise_and_replay", real)
    served = await connect(alice_cookies)

    assert failed["status"] == 500
    assert json.loads(failed["body"])["status"] == 500
    assert served["status"] == 200


async def test_a_storm_is_worked_on_a_few_at_a_time_in_arrival_order(alice_cookies, monkeypatch):
    working, most_at_once, finished = 0, 0, []

    async def slow_access(request, user_id, channels):
        nonlocal working, most_at_once
        working += 1
        most_at_once = max(most_at_once, working)
        await asyncio.sleep(0.01)
        working -= 1
        finished.append(request.GET["n"])
        return None, []

    monkeypatch.setattr(grip, "resolve_user_access", slow_access)
    count = grip.CONNECTS_AT_ONCE * 4
    responses = await asyncio.gather(
        *(connect(alice_cookies, query=f"channel=metrics&n={n}") for n in range(count))
    )

    assert {r["status"] for r in responses} == {403}
    assert most_at_once == grip.CONNECTS_AT_ONCE
    assert finished == [str(n) for n in range(count)]


async def test_a_storm_from_one_session_is_authorised_once(alice_cookies, monkeypatch):
    authorised = []
    real = access.session_channel_access

    def counting(request, channels):
        authorised.append(channels)
        return real(request, channels)

    monkeypatch.setattr(access, "session_channel_access", counting)
    responses = await asyncio.gather(*(connect(alice_cookies) for _ in range(20)))

    assert {r["status"] for r in responses} == {200}
    assert authorised == [["metrics"]]


async def test_each_session_gets_its_own_answer(alice_cookies, charlie_cookies):
    assert (await connect(alice_cookies))["status"] == 200
    assert (await connect(charlie_cookies))["status"] == 403


async def test_it_skips_a_connect_whose_client_left_while_it_waited(alice_cookies, monkeypatch):
    monkeypatch.setattr(grip, "CONNECTS_AT_ONCE", 1)
    worked_on = []

    async def slow_access(request, user_id, channels):
        worked_on.append(request.GET["n"])
        await asyncio.sleep(0.3)
        return None, []

    monkeypatch.setattr(grip, "resolve_user_access", slow_access)

    def request(n):
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "path": "/events/",
            "query_string": f"channel=metrics&n={n}".encode(),
            "headers": signed_headers(alice_cookies),
        }
        return ApplicationCommunicator(application, scope)

    served, abandoned = request(0), request(1)
    await served.send_input({"type": "http.request", "body": b""})
    await asyncio.sleep(0.05)
    await abandoned.send_input({"type": "http.request", "body": b""})
    await abandoned.send_input({"type": "http.disconnect"})

    assert (await served.receive_output(2))["status"] == 403
    await abandoned.wait(2)
    assert abandoned.output_queue.empty()
    assert worked_on == ["0"]


async def test_it_closes_the_connection_a_session_read_from_the_database_opened(alice_cookies):
    session_key = alice_cookies[settings.SESSION_COOKIE_NAME]
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    await cache.adelete(store.cache_key)  # so the connect has to read the session from the database
    stream_sync.next_sweep = 0.0

    assert (await connect(alice_cookies))["status"] == 200

    def open_connections():
        return [alias for alias in connections if connections[alias].connection is not None]

    assert await asyncio.wrap_future(stream_sync.executor.submit(open_connections)) == []


def next_link(response):
    """The path of the Grip-Link rel=next Pushpin would call, with its es-meta token."""
    link = response["headers"]["grip-link"]
    return link[link.index("<") + 1 : link.index(">")]


async def follow(path, sig=None):
    headers = signed_headers(sig=sig)
    communicator = HttpCommunicator(application, "GET", path, headers=headers)
    response = await communicator.get_response(timeout=10)
    response["headers"] = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    return response


def change_password(user):
    user.set_password("a-new-password-nobody-knows")
    user.save()


def log_out(cookies):
    from django.test import Client

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookies[settings.SESSION_COOKIE_NAME]
    client.post("/accounts/logout/")


@pytest.mark.parametrize("revocation", ["password changed", "logged out"])
async def test_the_es_meta_token_dies_with_the_session(alice, alice_cookies, redis_url, revocation):
    from asgiref.sync import sync_to_async

    connected = await connect(alice_cookies)
    assert connected["status"] == 200
    path = next_link(connected)
    assert "es-meta=" in path
    # Pushpin's next-link request carries no cookie: the token alone stands for alice.
    assert (await follow(path))["status"] == 200
    # A second later than the token's issue (its expiry has whole seconds).
    await asyncio.sleep(1.1)
    if revocation == "password changed":
        await sync_to_async(change_password)(alice)
    else:
        await sync_to_async(log_out)(alice_cookies)
    error = stream_error_ending(await follow(path))
    assert error == {"condition": "forbidden", "text": "Access changed since this link was issued; reconnect"}


def stream_error_ending(response):
    """The data of the `stream-error` a refusal of Pushpin's own request carries: a 200
    without GRIP instructions (Pushpin passes the body on, then ends the client's
    stream; any other status it retries)."""
    assert response["status"] == 200
    assert "grip-hold" not in response["headers"]
    assert "grip-link" not in response["headers"]
    assert response["headers"]["content-type"].startswith("text/event-stream")
    head, _, data = response["body"].decode().strip().partition("\ndata: ")
    assert head == "event: stream-error"  # and no id: the reconnect resumes where it was
    return json.loads(data)


async def test_a_next_link_for_channels_the_user_may_no_longer_read_ends_the_stream(alice, alice_cookies):
    from asgiref.sync import sync_to_async

    connected = await connect(alice_cookies)
    path = next_link(connected)

    def take_view_metric():
        from django.contrib.auth.models import Permission

        alice.user_permissions.remove(Permission.objects.get(codename="view_metric"))

    await sync_to_async(take_view_metric)()
    error = stream_error_ending(await follow(path))
    # Refused for the change when it came in a later second than the token, else (the
    # same second has the benefit of the doubt) for the permission itself.
    assert error["condition"] == "forbidden"
    assert error["text"] in (
        "Access changed since this link was issued; reconnect",
        "Permission denied to channels: metrics",
    )


async def test_a_next_link_that_fails_for_a_while_keeps_its_status_so_pushpin_asks_again(
    alice_cookies, monkeypatch
):
    from redis.exceptions import ConnectionError

    connected = await connect(alice_cookies)
    path = next_link(connected)

    async def redis_away(*args):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(grip.revocation, "arevoked_since", redis_away)
    failed = await follow(path)
    assert failed["status"] == 503
    assert "grip-hold" not in failed["headers"]


async def test_an_unsigned_next_link_never_counts_as_pushpins(alice_cookies, requests_through_django):
    connected = await connect(alice_cookies)
    path = next_link(connected)
    response = await follow(path, sig="x")
    assert "grip-hold" not in response["headers"]
    assert response["status"] == 403

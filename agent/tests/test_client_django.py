"""LivedashMiddleware in this project's Django, pushing to a real local receiver."""

import socket
import time

import line_protocol_parser
import pytest
from agent_receiver import Receiver
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.test import Client, override_settings
from livedash_client.django import LivedashMiddleware
from livedash_client.recorder import get_recorder

MIDDLEWARE = ["livedash_client.django.LivedashMiddleware"]
INTERVAL = 0.1


def settings_for(url, **extra):
    return override_settings(
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF="client_test_urls",
        LIVEDASH_URL=url,
        LIVEDASH_TOKEN="app-token",
        LIVEDASH_APP="shop",
        LIVEDASH_PUSH_INTERVAL=INTERVAL,
        **extra,
    )


@pytest.fixture
def receiver():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()
    get_recorder(receiver.url, "app-token", "shop", INTERVAL).stop()


def received(receiver):
    """{(name, labels...): [values]} of everything pushed so far."""
    found = {}
    for line in receiver.stored_lines():
        point = line_protocol_parser.parse_line(line)
        key = (point["measurement"], *sorted(point["tags"].items()))
        found.setdefault(key, []).append(point["fields"]["value"])
    return found


def has(receiver, name, **labels):
    key = (name, *sorted({"app": "shop", **labels}.items()))
    return any(v > 0 for v in received(receiver).get(key, []))


def test_it_records_requests_by_view_and_status_never_by_path(receiver, db):
    with settings_for(receiver.url):
        client = Client()
        for pk in (1, 2, 3, 4, 5):
            client.get(f"/items/{pk}/")
        client.get("/no/such/page/")
    receiver.wait_for(
        lambda r: (
            has(r, "django_requests", view="item", status="201", status_class="2xx")
            and has(r, "django_requests", view="item", status="404", status_class="4xx")
            and has(r, "django_requests", view="unmatched", status="404", status_class="4xx")
        ),
        what="requests by view and status",
    )
    views = {dict(key[1:]).get("view") for key in received(receiver)}
    assert views == {"item", "unmatched"}, "a view's name, never its path"
    assert has(receiver, "django_request_ms_p95", view="item")
    assert ("django_request_ms_max", ("app", "shop"), ("view", "item")) in received(receiver)


def test_it_counts_and_times_the_database_queries_of_a_request(receiver, db):
    with settings_for(receiver.url):
        Client().get("/users/")
    receiver.wait_for(lambda r: has(r, "django_request_queries_max", view="users"), what="query counts")
    assert received(receiver)[("django_request_queries_max", ("app", "shop"), ("view", "users"))] == [2.0]
    assert has(receiver, "django_request_db_ms_max", view="users")


def test_it_records_exceptions_by_type_and_lets_django_answer_500(receiver, db):
    with settings_for(receiver.url):
        response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
    receiver.wait_for(
        lambda r: (
            has(r, "django_exceptions", view="broken", exception="ValueError")
            and has(r, "django_requests", view="broken", status="500", status_class="5xx")
        ),
        what="the exception and its 500",
    )


@pytest.mark.parametrize("away", ["refusing", "silent"])
def test_requests_never_wait_for_livedash_when_it_is_away(db, away):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    if away == "silent":
        listener.listen()  # accepts connections, never answers: each push hangs until its timeout
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    if away == "refusing":
        listener.close()
    recorder = get_recorder(url, "app-token", "shop", INTERVAL)
    try:
        with settings_for(url):
            client = Client()
            slowest = 0.0
            deadline = time.monotonic() + 1.0  # several push intervals
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert client.get("/items/1/").status_code == 201
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < 0.5
        assert recorder._thread is not None and recorder._thread.is_alive()
        assert len(recorder.pending) <= recorder.max_pending
        if away == "refusing":
            assert recorder._backoff.failures >= 1, "pushes were tried, and failed, meanwhile"
    finally:
        recorder.stop()
        listener.close()


def test_without_url_and_token_it_steps_aside_and_with_one_only_it_says_what_is_missing():
    with override_settings(LIVEDASH_URL=None, LIVEDASH_TOKEN=None), pytest.raises(MiddlewareNotUsed):
        LivedashMiddleware(lambda request: None)
    with (
        override_settings(LIVEDASH_URL="http://127.0.0.1:9", LIVEDASH_TOKEN=None),
        pytest.raises(ImproperlyConfigured, match="LIVEDASH_TOKEN"),
    ):
        LivedashMiddleware(lambda request: None)

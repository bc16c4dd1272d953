import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_an_anonymous_websocket():
    communicator = WebsocketCommunicator(
        application, "/ws/dashboard/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    connected, code = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_it_refuses_a_foreign_origin():
    communicator = WebsocketCommunicator(
        application, "/ws/dashboard/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_it_serves_http_through_django():
    from channels.testing import HttpCommunicator

    communicator = HttpCommunicator(application, "GET", "/accounts/login/", headers=[(b"host", b"127.0.0.1")])
    response = await communicator.get_response()
    assert response["status"] == 200


@pytest.mark.django_db(transaction=True)
async def test_streams_skip_the_middlewares_that_do_nothing_for_them_and_keep_the_rest():
    from channels.testing import HttpCommunicator

    async def headers_of(path):
        communicator = HttpCommunicator(application, "GET", path, headers=[(b"host", b"127.0.0.1")])
        response = await communicator.get_response()
        return response["status"], {name.lower(): value for name, value in response["headers"]}

    status, stream = await headers_of("/events/?channel=metrics")
    assert status == 403  # sessions and auth ran: an anonymous client is refused
    assert stream[b"x-content-type-options"] == b"nosniff"  # SecurityMiddleware ran
    assert b"x-frame-options" not in stream  # the frame middleware did not
    _, page = await headers_of("/accounts/login/")
    assert page[b"x-frame-options"] == b"DENY"


def stream_scope(cookies=None, host=b"127.0.0.1", client_port=50000):
    from tests.realclients import cookie_header

    headers = [(b"host", host)]
    if cookies:
        headers.append((b"cookie", cookie_header(cookies).encode()))
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/events/",
        "query_string": b"channel=metrics",
        "headers": headers,
        "client": ("127.0.0.1", client_port),
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.django_db(transaction=True)
async def test_an_open_stream_keeps_no_django_request_and_never_enters_the_chain(alice_cookies, redis_url):
    """What a stream holds for as long as it is open is what it costs per viewer: the
    request (META, session, user) and Django's handler are done with once it starts."""
    import gc

    from asgiref.testing import ApplicationCommunicator
    from django.core.handlers.asgi import ASGIRequest
    from django.core.signals import request_started

    entered = []

    def note(**kwargs):
        entered.append(kwargs)

    request_started.connect(note)
    try:
        # A client port no other test uses, so only this stream's request is looked for.
        port = 50321
        stream = ApplicationCommunicator(application, stream_scope(alice_cookies, client_port=port))
        await stream.send_input({"type": "http.request", "body": b""})
        start = await stream.receive_output(5)
        assert start["status"] == 200
        assert {k.lower(): v for k, v in start["headers"]}[b"x-content-type-options"] == b"nosniff"
        assert b"stream-open" in (await stream.receive_output(5))["body"]
        gc.collect()
        live = [
            o
            for o in gc.get_objects()
            # type(), not isinstance(): a lazy object (request.user) would evaluate itself.
            if type(o) is ASGIRequest and o.path == "/events/" and o.META.get("REMOTE_PORT") == port
        ]
        assert live == []
        assert entered == []
        await stream.send_input({"type": "http.disconnect"})
        await stream.wait(5)  # the client leaving ends it
    finally:
        request_started.disconnect(note)


@pytest.mark.django_db(transaction=True)
async def test_a_stream_for_a_host_not_allowed_is_refused_as_django_refuses_it(alice_cookies):
    from asgiref.testing import ApplicationCommunicator

    stream = ApplicationCommunicator(application, stream_scope(alice_cookies, host=b"evil.example"))
    await stream.send_input({"type": "http.request", "body": b""})
    assert (await stream.receive_output(5))["status"] == 400

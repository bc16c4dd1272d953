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

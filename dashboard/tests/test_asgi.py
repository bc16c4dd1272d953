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

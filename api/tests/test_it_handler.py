"""The token endpoints' own handler: which middlewares run for them, and that they do."""

import json

import pytest
from channels.testing import HttpCommunicator
from django.core.signals import request_started

from api.models import ApiToken
from config.asgi import application


@pytest.mark.django_db(transaction=True)
async def test_a_push_skips_the_page_middlewares_and_keeps_security(redis_url, async_orm):
    from asgiref.sync import sync_to_async

    _token, raw = await sync_to_async(ApiToken.create)("handler", metric_patterns=["*"])
    started = []

    def note(**kwargs):
        started.append(kwargs)

    request_started.connect(note)
    try:
        communicator = HttpCommunicator(
            application,
            "POST",
            "/api/v1/metrics",
            body=json.dumps({"name": "handled", "value": 1}).encode(),
            headers=[
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"authorization", f"Bearer {raw}".encode()),
            ],
        )
        response = await communicator.get_response(timeout=10)
    finally:
        request_started.disconnect(note)
    headers = {name.decode().lower(): value for name, value in response["headers"]}
    assert response["status"] == 202, response["body"]
    assert headers["x-content-type-options"] == b"nosniff"  # SecurityMiddleware ran
    assert "x-frame-options" not in headers and "content-security-policy" not in headers
    assert started, "served by a Django handler (its signals still run)"

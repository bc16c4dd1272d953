"""A user's own delivery channels from the page: listed, paused, resumed; nobody else's."""

import json

import pytest

from notifications.models import DeliveryChannel


@pytest.fixture
def channels(alice, bob):
    return {
        "alice": DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice),
        "bob": DeliveryChannel.objects.create(kind="email", target="bob@example.org", owner_user=bob),
        "all": DeliveryChannel.objects.create(kind="webhook", target="http://10.0.0.1/h", secret="s"),
    }


def post(client, channel_id, body):
    return client.post(
        f"/notifications/channels/{channel_id}/",
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
    )


def test_it_lists_only_the_users_own_channels(client, alice, channels):
    client.force_login(alice)
    answer = client.get("/notifications/channels/")
    assert answer.status_code == 200
    assert answer.json() == {
        "channels": [
            {
                "id": channels["alice"].pk,
                "kind": "email",
                "target": "alice@example.org",
                "min_level": "info",
                "paused": False,
            }
        ]
    }
    assert "secret" not in answer.content.decode()


def test_anonymous_users_get_nothing(client, channels):
    assert client.get("/notifications/channels/").status_code == 403
    assert post(client, channels["alice"].pk, {"paused": True}).status_code == 403
    assert not DeliveryChannel.objects.filter(paused=True).exists()


def test_a_user_pauses_and_resumes_their_channel(client, alice, channels):
    client.force_login(alice)
    answer = post(client, channels["alice"].pk, {"paused": True})
    assert answer.status_code == 200 and answer.json()["paused"] is True
    channels["alice"].refresh_from_db()
    assert channels["alice"].paused
    assert post(client, channels["alice"].pk, {"paused": False}).json()["paused"] is False


def test_another_users_channel_is_not_found(client, alice, channels):
    client.force_login(alice)
    for other in ("bob", "all"):
        assert post(client, channels[other].pk, {"paused": True}).status_code == 404
    assert post(client, 999999, {"paused": True}).status_code == 404
    assert not DeliveryChannel.objects.filter(paused=True).exists()


@pytest.mark.parametrize("body", ["not json", "[]", '{"paused": "yes"}', '{"paused": true, "target": "x"}'])
def test_bad_bodies_get_a_clear_400(client, alice, channels, body):
    client.force_login(alice)
    answer = post(client, channels["alice"].pk, body)
    assert answer.status_code == 400 and answer.json()["error"]
    channels["alice"].refresh_from_db()
    assert not channels["alice"].paused and channels["alice"].target == "alice@example.org"


def test_posts_need_the_csrf_token(alice, channels):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert post(client, channels["alice"].pk, {"paused": True}).status_code == 403

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


# ---- an apprise channel of one's own, from the bell menu -------------------------------


@pytest.fixture
def receiver():
    from tests.receivers import WebhookReceiver

    server = WebhookReceiver(signed=False).start()
    yield server
    server.stop()


def grant_adding(user):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="add_deliverychannel"))


def add(client, body):
    return client.post(
        "/notifications/channels/",
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
    )


def test_a_user_allowed_to_add_one_adds_an_apprise_channel_of_their_own_shown_masked(client, alice, receiver):
    from audit.models import AuditEntry

    client.force_login(alice)
    url = f"json://hook-user:hunter2-pass@127.0.0.1:{receiver.port}/mine"
    assert add(client, {"kind": "apprise", "target": url}).status_code == 403  # not granted
    assert client.get("/").context["page_config"]["canAddChannels"] is False
    grant_adding(alice)
    answer = add(client, {"kind": "apprise", "target": url, "min_level": "warning"})
    assert answer.status_code == 201, answer.content
    assert "hunter2-pass" not in answer.content.decode()
    channel = DeliveryChannel.objects.get()
    assert (channel.owner_user, channel.kind, channel.min_level) == (alice, "apprise", "warning")
    assert channel.apprise_url == url and "hunter2-pass" not in channel.target + channel.sealed_target
    assert answer.json() == {**channel.as_dict(), "id": channel.pk}
    assert AuditEntry.objects.filter(action="deliverychannel.created", actor="alice").exists()
    assert client.get("/").context["page_config"]["canAddChannels"] is True


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"kind": "webhook", "target": "http://127.0.0.1/h"}, "only apprise"),
        ({"kind": "apprise", "target": "nosuchservice://x"}, ""),
        ({"kind": "apprise", "target": ""}, "target must be"),
        ({"kind": "apprise", "target": "json://127.0.0.1/", "min_level": "loud"}, "min_level"),
        ({"kind": "apprise", "target": "json://127.0.0.1/", "owner_user": 1}, "send {"),
        ("not json", "send {"),
    ],
)
def test_bad_channels_are_refused_saying_why(client, alice, body, problem):
    grant_adding(alice)
    client.force_login(alice)
    answer = add(client, body)
    assert answer.status_code == 400 and problem in answer.json()["error"]
    assert not DeliveryChannel.objects.exists()


def test_a_user_sends_their_channel_a_test_and_sees_the_outcome(client, alice, bob, receiver):
    from tests.receivers import free_port

    client.force_login(alice)
    mine = DeliveryChannel(kind="apprise", target=f"json://127.0.0.1:{receiver.port}/mine", owner_user=alice)
    mine.full_clean()
    mine.save()
    answer = client.post(f"/notifications/channels/{mine.pk}/test/")
    assert answer.json() == {"sent": True}
    (request,) = receiver.requests
    assert request.path == "/mine" and request.payload["title"] == "Test from livedash"

    dead = DeliveryChannel(kind="apprise", target=f"json://127.0.0.1:{free_port()}/", owner_user=alice)
    dead.full_clean()
    dead.save()
    failed = client.post(f"/notifications/channels/{dead.pk}/test/").json()
    assert failed["sent"] is False and "apprise could not send" in failed["error"]

    theirs = DeliveryChannel.objects.create(kind="email", target="bob@example.org", owner_user=bob)
    assert client.post(f"/notifications/channels/{theirs.pk}/test/").status_code == 404
    assert len(receiver.requests) == 1


def test_a_user_removes_their_own_channel_and_no_one_elses(client, alice, channels):
    client.force_login(alice)
    for other in ("bob", "all"):
        assert client.delete(f"/notifications/channels/{channels[other].pk}/").status_code == 404
    assert client.delete(f"/notifications/channels/{channels['alice'].pk}/").status_code == 204
    assert set(DeliveryChannel.objects.values_list("target", flat=True)) == {
        "bob@example.org",
        "http://10.0.0.1/h",
    }

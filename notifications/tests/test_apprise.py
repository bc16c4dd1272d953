"""apprise channels against real local receivers: a JSON endpoint (`json://`) and an
ntfy-compatible one (`ntfy://`); the URL's secrets are stored encrypted and never
shown again; delivery keeps its retries and never sends twice after a success;
"send a test" in the admin shows the outcome."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEntry
from notifications import delivery
from notifications.models import Delivery, DeliveryChannel
from notifications.services import notify
from tests.receivers import WebhookReceiver


@pytest.fixture
def receiver():
    server = WebhookReceiver(signed=False).start()
    yield server
    server.stop()


def add_channel(*args):
    out = io.StringIO()
    call_command("add_channel", *args, stdout=out)
    return out.getvalue()


def deliver_all():
    total = 0
    while True:
        sent = delivery.send_due(limit=50)
        total += sent
        if not sent:
            return total


def test_an_apprise_json_channel_receives_notifications_and_hides_its_password(db, receiver):
    url = f"json://hook-user:hunter2-pass@127.0.0.1:{receiver.port}/alerts"
    said = add_channel("apprise", url, "--all")
    assert "hunter2-pass" not in said
    channel = DeliveryChannel.objects.get()
    assert channel.kind == "apprise"
    assert "hunter2-pass" not in channel.target and "hook-user" in channel.target
    assert "hunter2-pass" not in channel.sealed_target  # encrypted at rest
    assert channel.apprise_url == url
    (entry,) = AuditEntry.objects.filter(action__startswith="deliverychannel")
    assert "hunter2-pass" not in json.dumps(entry.after)

    with_commit = notify(None, "Disk almost full", body="92% on /", level="warning")
    assert with_commit.pk
    assert deliver_all() == 1
    (request,) = receiver.requests
    assert request.path == "/alerts"
    body = request.payload
    assert body["title"] == "Disk almost full" and body["message"].startswith("92% on /")
    assert body["type"] == "warning"
    assert Delivery.objects.get().state == Delivery.State.DELIVERED


def test_an_ntfy_channel_posts_to_an_ntfy_compatible_endpoint(db, receiver):
    add_channel("apprise", f"ntfy://127.0.0.1:{receiver.port}/ops-alerts", "--all")
    notify(None, "CPU above 90", body="web1 is at 97 %", level="error")
    assert deliver_all() == 1
    (request,) = receiver.requests
    body = request.payload
    assert body["topic"] == "ops-alerts"
    assert body["title"] == "CPU above 90" and "web1 is at 97 %" in body["message"]


def test_a_failure_is_retried_and_a_success_never_sent_again(db, receiver):
    add_channel("apprise", f"json://127.0.0.1:{receiver.port}/", "--all")
    receiver.answers.put(503)
    notify(None, "first")
    notify(None, "second")
    assert deliver_all() == 0
    failed = Delivery.objects.order_by("pk").first()
    assert failed.state == Delivery.State.PENDING and failed.attempts == 1
    assert "apprise could not send" in failed.last_error
    # The second waits behind the first: order per channel holds.
    assert Delivery.objects.order_by("pk").last().attempts == 0

    Delivery.objects.update(next_attempt_at=timezone.now())
    assert deliver_all() == 2
    assert [r.payload["title"] for r in receiver.requests] == ["first", "first", "second"]
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert deliver_all() == 0 and len(receiver.requests) == 3


@pytest.mark.parametrize(
    "url, problem",
    [
        ("nonsense", "looks like service://"),
        ("nosuchservice://secret-token@host/", "cannot send to this nosuchservice:// URL"),
    ],
)
def test_a_bad_apprise_url_is_refused_without_echoing_it(db, url, problem):
    with pytest.raises(CommandError, match=problem) as error:
        add_channel("apprise", url, "--all")
    assert "secret-token" not in str(error.value)
    assert not DeliveryChannel.objects.exists()


def test_the_admin_keeps_the_url_sealed_and_sends_a_test(client, admin_user, receiver):
    client.force_login(admin_user)
    url = f"json://user:sealed-pass@127.0.0.1:{receiver.port}/test"
    form = {"kind": "apprise", "target": url, "min_level": "info", "secret": ""}
    answer = client.post("/admin/notifications/deliverychannel/add/", form)
    assert answer.status_code == 302, answer.content.decode()[:3000]
    channel = DeliveryChannel.objects.get()
    page = client.get(f"/admin/notifications/deliverychannel/{channel.pk}/change/").content.decode()
    assert "sealed-pass" not in page and channel.target in page.replace("&amp;", "&")

    # Saved again as shown (masked): the URL stays the one entered.
    form["target"] = channel.target
    form["min_level"] = "warning"
    client.post(f"/admin/notifications/deliverychannel/{channel.pk}/change/", form)
    channel.refresh_from_db()
    assert channel.min_level == "warning" and channel.apprise_url == url

    action = {"action": "send_test", "_selected_action": [channel.pk]}
    answer = client.post("/admin/notifications/deliverychannel/", action, follow=True)
    assert "the test was sent" in answer.content.decode()
    (request,) = receiver.requests
    assert request.payload["title"] == "Test from livedash"
    assert not Delivery.objects.exists()  # a test is nobody's notification

    receiver.answers.put(500)
    answer = client.post("/admin/notifications/deliverychannel/", action, follow=True)
    assert "the test failed" in answer.content.decode()

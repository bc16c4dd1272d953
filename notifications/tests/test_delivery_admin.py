"""The admin: delivery channels, the delivery log (read-only) and its retry action."""

import pytest
from django.utils import timezone

from notifications.models import Delivery, DeliveryChannel
from notifications.services import notify


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_a_channel_is_added_in_the_admin_and_validated(admin_client_, alice):
    bad = admin_client_.post(
        "/admin/notifications/deliverychannel/add/",
        {"kind": "webhook", "target": "ftp://x", "owner_user": alice.pk, "min_level": "info", "secret": "s"},
    )
    assert bad.status_code == 200 and "not an http(s) URL" in bad.content.decode()
    good = admin_client_.post(
        "/admin/notifications/deliverychannel/add/",
        {"kind": "email", "target": "alice@example.org", "owner_user": alice.pk, "min_level": "warning"},
    )
    assert good.status_code == 302
    channel = DeliveryChannel.objects.get()
    assert (channel.owner_user, channel.min_level) == (alice, "warning")
    listing = admin_client_.get("/admin/notifications/deliverychannel/")
    assert "alice@example.org" in listing.content.decode()


def test_the_delivery_log_shows_attempts_and_errors_and_retries(admin_client_, alice):
    channel = DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice)
    notify(alice, "Disk almost full")
    row = Delivery.objects.get()
    Delivery.objects.filter(pk=row.pk).update(
        state="failed", attempts=12, last_error="HTTP 503 Service Unavailable", retry_until=timezone.now()
    )

    listing = admin_client_.get("/admin/notifications/delivery/")
    html = listing.content.decode()
    assert listing.status_code == 200
    assert "Disk almost full" in html and "HTTP 503" in html and str(channel) in html
    assert admin_client_.get(f"/admin/notifications/delivery/{row.pk}/change/").status_code == 200
    assert admin_client_.get("/admin/notifications/delivery/add/").status_code == 403

    answer = admin_client_.post(
        "/admin/notifications/delivery/", {"action": "retry", "_selected_action": [row.pk]}
    )
    assert answer.status_code == 302
    row.refresh_from_db()
    assert row.state == "pending" and row.next_attempt_at <= timezone.now()
    assert row.retry_until > timezone.now()

"""The admin: staff compose and send notifications."""

import pytest
from django.contrib.auth.models import Group

from notifications.models import Notification, NotificationRead
from notifications.services import notify


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_notification_list_loads_with_read_counts_and_filters(admin_client_, alice, bob):
    broadcast = notify(None, "Planned downtime")
    notify(alice, "Just for alice", level="warning")
    NotificationRead.objects.create(user=alice, notification=broadcast)
    NotificationRead.objects.create(user=bob, notification=broadcast)

    response = admin_client_.get("/admin/notifications/notification/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Planned downtime" in html and "Just for alice" in html
    assert '<td class="field-read_count">2</td>' in html
    assert "everyone" in html

    filtered = admin_client_.get("/admin/notifications/notification/?audience=user&level__exact=warning")
    assert "Just for alice" in filtered.content.decode()
    assert "Planned downtime" not in filtered.content.decode()


def test_sending_from_the_admin_records_the_sender(admin_client_, admin_user, alice):
    response = admin_client_.post(
        "/admin/notifications/notification/add/",
        {"title": "Hello from the admin", "level": "info", "link": "", "recipient_user": alice.pk},
    )
    assert response.status_code == 302, response.content.decode()
    notification = Notification.objects.get()
    assert notification.created_by == admin_user
    assert notification.recipient_user == alice


def test_the_admin_refuses_a_user_and_a_group_at_once(admin_client_, alice):
    ops = Group.objects.create(name="ops")
    response = admin_client_.post(
        "/admin/notifications/notification/add/",
        {"title": "Both", "level": "info", "recipient_user": alice.pk, "recipient_group": ops.pk},
    )
    assert response.status_code == 200
    assert "not both" in response.content.decode()
    assert not Notification.objects.exists()


def test_the_admin_refuses_a_bad_link(admin_client_):
    response = admin_client_.post(
        "/admin/notifications/notification/add/",
        {"title": "Bad", "level": "info", "link": "javascript:alert(1)"},
    )
    assert response.status_code == 200
    assert not Notification.objects.exists()


def test_a_sent_notification_is_read_only(admin_client_, alice):
    notification = notify(alice, "Sent")
    response = admin_client_.get(f"/admin/notifications/notification/{notification.pk}/change/")
    assert response.status_code == 200
    assert 'name="title"' not in response.content.decode()


def test_staff_without_permissions_cannot_see_notifications(client, staff):
    client.force_login(staff)
    assert client.get("/admin/notifications/notification/").status_code == 403

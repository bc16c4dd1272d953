import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError

from notifications.models import Notification, NotificationRead


@pytest.fixture
def ops(alice):
    group = Group.objects.create(name="ops")
    alice.groups.add(group)
    return group


def test_it_refuses_a_user_and_a_group_at_once(alice, ops):
    with pytest.raises(IntegrityError):
        Notification.objects.create(title="both", recipient_user=alice, recipient_group=ops)


def test_visible_to_covers_own_group_and_broadcast_only(alice, bob, ops):
    to_alice = Notification.objects.create(title="alice", recipient_user=alice)
    to_bob = Notification.objects.create(title="bob", recipient_user=bob)
    to_ops = Notification.objects.create(title="ops", recipient_group=ops)
    to_all = Notification.objects.create(title="all")

    assert set(Notification.objects.visible_to(alice)) == {to_alice, to_ops, to_all}
    assert set(Notification.objects.visible_to(bob)) == {to_bob, to_all}


def test_visible_to_gives_anonymous_nothing(alice):
    from django.contrib.auth.models import AnonymousUser

    Notification.objects.create(title="all")
    assert not Notification.objects.visible_to(AnonymousUser()).exists()


def test_a_broadcast_read_by_one_user_stays_unread_for_another(alice, bob):
    broadcast = Notification.objects.create(title="all")
    NotificationRead.objects.create(user=alice, notification=broadcast)

    assert not Notification.objects.unread_for(alice).exists()
    assert list(Notification.objects.unread_for(bob)) == [broadcast]


def test_it_records_a_read_once_per_user(alice):
    notification = Notification.objects.create(title="x", recipient_user=alice)
    NotificationRead.objects.create(user=alice, notification=notification)
    with pytest.raises(IntegrityError):
        NotificationRead.objects.create(user=alice, notification=notification)


def test_as_dict_has_the_protocol_fields(alice, staff):
    notification = Notification.objects.create(
        title="Disk", body="90%", level="warning", link="/admin/", recipient_user=alice, created_by=staff
    )
    data = notification.as_dict()
    assert data == {
        "id": notification.pk,
        "title": "Disk",
        "body": "90%",
        "level": "warning",
        "link": "/admin/",
        "created_at": notification.created_at.isoformat(),
        "created_by": "staff",
    }
    assert Notification.objects.create(title="no link").as_dict()["link"] is None

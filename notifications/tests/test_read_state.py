"""hello_state, mark_read and group_names_for: per-user read state, one user
never sees or marks another's notifications (direct, group or broadcast)."""

import pytest
from django.contrib.auth.models import Group

from notifications.models import NotificationRead
from notifications.services import (
    NotificationNotFound,
    group_names_for,
    hello_state,
    mark_read,
    notify,
)


@pytest.fixture
def ops(alice):
    group = Group.objects.create(name="ops")
    alice.groups.add(group)
    return group


def ids(notifications):
    return [n["id"] for n in notifications]


def test_group_names_cover_the_user_their_groups_and_everyone(alice, ops):
    other = Group.objects.create(name="other")
    alice.groups.add(other)
    assert group_names_for(alice) == [
        f"notify.user.{alice.pk}",
        f"notify.group.{ops.pk}",
        f"notify.group.{other.pk}",
        "notify.all",
    ]


def test_group_names_for_anonymous_are_none():
    from django.contrib.auth.models import AnonymousUser

    assert group_names_for(AnonymousUser()) == []


def test_hello_has_the_unread_count_and_recent_newest_first(alice, bob, ops):
    first = notify(alice, "first")
    notify(bob, "for bob")
    second = notify(ops, "ops")
    third = notify(None, "everyone")
    NotificationRead.objects.create(user=alice, notification=first)

    state = hello_state(alice)

    assert state["unread"] == 2
    assert ids(state["recent"]) == [third.pk, second.pk, first.pk]
    assert [n["read"] for n in state["recent"]] == [False, False, True]
    assert state["missed"] == []


def test_hello_never_shows_another_users_or_groups_notifications(alice, bob, ops):
    notify(alice, "for alice")
    notify(ops, "for ops")
    broadcast = notify(None, "everyone")

    state = hello_state(bob)
    assert ids(state["recent"]) == [broadcast.pk]
    assert state["unread"] == 1


def test_hello_returns_exactly_what_is_newer_than_since_oldest_first(alice, bob):
    seen = notify(alice, "seen")
    notify(bob, "not for alice")
    missed_one = notify(alice, "missed 1")
    missed_two = notify(None, "missed 2")

    state = hello_state(alice, since_id=seen.pk)
    assert ids(state["missed"]) == [missed_one.pk, missed_two.pk]


def test_hello_ignores_a_since_id_that_is_not_a_number(alice):
    notify(alice, "x")
    assert hello_state(alice, since_id="abc")["missed"] == []


def test_hello_caps_missed_at_the_newest(alice, monkeypatch):
    from notifications import services

    monkeypatch.setattr(services, "MISSED_LIMIT", 3)
    sent = [notify(alice, f"n{i}").pk for i in range(5)]
    assert ids(hello_state(alice, since_id=0)["missed"]) == sent[-3:]


def test_marking_one_read_returns_the_new_unread_count(alice):
    one = notify(alice, "one")
    notify(alice, "two")
    assert mark_read(alice, one.pk) == 1
    assert mark_read(alice, one.pk) == 1  # Twice is harmless.


def test_marking_all_read_leaves_nothing_unread(alice, ops):
    notify(alice, "one")
    notify(ops, "two")
    notify(None, "three")
    assert mark_read(alice, "all") == 0
    assert hello_state(alice)["unread"] == 0


def test_a_broadcast_marked_read_by_alice_stays_unread_for_bob(alice, bob):
    broadcast = notify(None, "everyone")
    mark_read(alice, broadcast.pk)
    assert hello_state(bob)["unread"] == 1
    assert hello_state(bob)["recent"][0]["read"] is False


def test_mark_all_by_alice_leaves_bob_unread(alice, bob):
    notify(None, "everyone")
    notify(bob, "bob's")
    mark_read(alice, "all")
    assert hello_state(bob)["unread"] == 2


@pytest.mark.parametrize("audience", ["user", "group"])
def test_bob_cannot_mark_alices_notification(alice, bob, ops, audience):
    notification = notify(alice if audience == "user" else ops, "private")
    # The same answer as for an id that does not exist: ids reveal nothing.
    with pytest.raises(NotificationNotFound, match=f"you have no notification {notification.pk}$"):
        mark_read(bob, notification.pk)
    assert not NotificationRead.objects.exists()
    assert hello_state(alice)["unread"] == 1


def test_marking_a_missing_notification_is_not_found_and_changes_nothing(alice):
    notify(alice, "x")
    with pytest.raises(NotificationNotFound):
        mark_read(alice, 999_999)
    assert not NotificationRead.objects.exists()


@pytest.mark.parametrize("target", ["1", 1.5, None, True, [1], "everything"])
def test_marking_with_a_bad_target_is_a_value_error(alice, target):
    notify(alice, "x")
    with pytest.raises(ValueError):
        mark_read(alice, target)
    assert not NotificationRead.objects.exists()

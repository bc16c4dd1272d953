"""notify(): addressing and validation. Bad input stores nothing."""

import pytest
from django.contrib.auth.models import Group

from notifications.models import Notification
from notifications.services import notify


@pytest.fixture
def ops(db):
    return Group.objects.create(name="ops")


def test_it_sends_to_a_user(alice):
    notification = notify(alice, "Disk almost full", level="warning")
    assert notification.pk is not None
    assert notification.recipient_user == alice
    assert notification.recipient_group is None
    assert notification.level == "warning"


def test_it_sends_to_a_username(alice):
    assert notify("alice", "hi").recipient_user == alice


def test_it_sends_to_a_group(ops):
    notification = notify(ops, "hi")
    assert notification.recipient_group == ops
    assert notification.audience == "group"


def test_it_sends_to_everyone_with_none(db):
    notification = notify(None, "hi")
    assert notification.audience == "all"
    assert notification.channel_group == "notify.all"


def test_it_records_who_sent_it(alice, staff):
    assert notify(alice, "hi", created_by=staff).created_by == staff


def test_it_accepts_an_http_link_and_a_local_path(alice):
    assert notify(alice, "a", link="https://example.org/runbook").link == "https://example.org/runbook"
    assert notify(alice, "b", link="/admin/").link == "/admin/"


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"to": "nobody"}, "unknown user 'nobody'"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 121}, "at most 120"),
        ({"body": "x" * 2001}, "body"),
        ({"level": "panic"}, "level"),
        ({"link": "javascript:alert(1)"}, "link"),
        ({"link": "//evil.example/x"}, "link"),
        ({"link": "/\\evil.example/x"}, "link"),
        ({"link": "ftp://example.org/x"}, "link"),
        ({"to": 42}, "to must be a user"),
        ({"title": None}, "title"),
    ],
)
def test_bad_input_raises_a_value_error_and_stores_nothing(alice, kwargs, problem):
    arguments = {"to": alice, "title": "ok", **kwargs}
    with pytest.raises(ValueError, match=problem):
        notify(arguments.pop("to"), arguments.pop("title"), **arguments)
    assert not Notification.objects.exists()


def test_a_title_of_exactly_120_characters_is_fine(alice):
    assert len(notify(alice, "x" * 120).title) == 120

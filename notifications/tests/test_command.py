"""`manage.py notify`: one audience, clear errors, non-zero exit on bad input."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from notifications.models import Notification


def test_it_sends_to_a_user(alice, capsys):
    call_command("notify", "--user", "alice", "--level", "warning", "--body", "90%", "Disk almost full")
    notification = Notification.objects.get()
    assert (notification.recipient_user, notification.level, notification.body) == (alice, "warning", "90%")
    assert f"Sent notification {notification.pk} to alice." in capsys.readouterr().out


def test_it_sends_to_a_group_by_name(db):
    ops = Group.objects.create(name="ops")
    call_command("notify", "--group", "ops", "Deploy done")
    assert Notification.objects.get().recipient_group == ops


def test_it_sends_to_everyone(db):
    call_command("notify", "--all", "--link", "/admin/", "Maintenance at 6")
    notification = Notification.objects.get()
    assert notification.audience == "all"
    assert notification.link == "/admin/"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--user", "nobody", "hi"], "unknown user 'nobody'"),
        (["--group", "nobody", "hi"], "unknown group 'nobody'"),
        (["--user", "alice", "--level", "panic", "hi"], "level"),
        (["--user", "alice", ""], "title"),
        (["--user", "alice", "x" * 121], "at most 120"),
        (["--user", "alice", "--link", "javascript:alert(1)", "hi"], "link"),
    ],
)
def test_bad_input_is_a_command_error_naming_the_problem(alice, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("notify", *args)
    assert not Notification.objects.exists()


@pytest.mark.parametrize("args", [["hi"], ["--user", "alice", "--all", "hi"]])
def test_it_needs_exactly_one_audience(alice, args):
    with pytest.raises(CommandError):
        call_command("notify", *args)


@pytest.mark.slow
def test_it_exits_zero_on_success_and_non_zero_with_the_message_on_error(manage, alice):
    ok = manage("notify", "--user", "alice", "Disk almost full")
    assert ok.returncode == 0, ok.stderr
    assert "Sent notification" in ok.stdout

    bad = manage("notify", "--user", "nobody", "Disk almost full")
    assert bad.returncode != 0
    assert "unknown user 'nobody'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert Notification.objects.count() == 1

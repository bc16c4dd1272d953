"""ensure_superuser: the first superuser from the environment, with a password
Django's own validators accept."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    ("password", "reason"),
    [("password", "too common"), ("short", "too short"), ("12345678901", "entirely numeric")],
)
def test_it_refuses_a_password_the_validators_refuse(db, monkeypatch, password, reason):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    with pytest.raises(CommandError, match=f"DJANGO_SUPERUSER_PASSWORD: .*{reason}"):
        call_command("ensure_superuser")
    assert not User.objects.exists()


def test_it_creates_the_superuser_with_a_good_password(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "correct-horse-battery-staple")
    call_command("ensure_superuser")
    user = User.objects.get(username="root")
    assert user.is_superuser and user.check_password("correct-horse-battery-staple")

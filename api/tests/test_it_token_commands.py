import hashlib
import time

import pytest
from django.test import RequestFactory

from api.auth import ApiError, authenticate
from api.models import ApiToken

pytestmark = pytest.mark.slow


def request_with(raw):
    return RequestFactory().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_create_token_prints_it_alone_on_the_last_line(manage):
    result = manage("create_token", "telegraf", "--metrics", "app_*", "cpu", "--scrape")
    assert result.returncode == 0, result.stderr
    raw = result.stdout.rstrip("\n").split("\n")[-1]
    assert raw.startswith("ldt_") and " " not in raw
    token = ApiToken.objects.get(name="telegraf")
    assert token.metric_patterns == ["app_*", "cpu"]
    assert (token.notify, token.scrape) == (False, True)
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert authenticate(request_with(raw), "scrape") == token


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothing"], "at least one scope"),
        (["   ", "--notify"], "NAME must not be empty"),
        (["taken", "--notify"], "already exists"),
        (["x" * 101, "--notify"], "name"),
        (["blank", "--metrics", " "], "must not be empty"),
    ],
)
def test_create_token_refuses_bad_input_in_one_line(manage, args, message):
    ApiToken.create("taken", notify=True)
    result = manage("create_token", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert ApiToken.objects.count() == 1


def test_revoke_token_is_seen_by_another_process_as_soon_as_it_returns(manage):
    token, raw = ApiToken.create("deploy", notify=True)
    assert authenticate(request_with(raw), "notify") == token
    result = manage("revoke_token", "deploy")
    assert result.returncode == 0, result.stderr
    returned = time.monotonic()
    # This process did not revoke it, and had just found it: refused within a second all the same.
    while True:
        try:
            authenticate(request_with(raw), "notify")
        except ApiError as error:
            assert error.status == 401
            break
        assert time.monotonic() - returned < 1.0, "still accepted a second after revoke_token returned"
        time.sleep(0.02)
    token.refresh_from_db()
    assert token.revoked and token.revoked_at is not None


def test_revoke_token_names_an_unknown_token(manage):
    result = manage("revoke_token", "ghost")
    assert result.returncode != 0
    assert "no API token named 'ghost'" in result.stderr

import hashlib
import json

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from api.auth import ApiError, aauthenticate, authenticate, token_required
from api.models import ApiToken


def bearer(raw, scheme="Bearer"):
    return RequestFactory().post(
        "/api/v1/metrics", HTTP_AUTHORIZATION=f"{scheme} {raw}", REMOTE_ADDR="10.1.2.3"
    )


@pytest.fixture
def token(db):
    return ApiToken.create("cron", metric_patterns=["app_*"], notify=True)


def test_it_stores_only_a_hash_of_the_token(token):
    row, raw = token
    row.refresh_from_db()
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    stored = json.dumps(list(ApiToken.objects.values().get(pk=row.pk).values()), default=str)
    secret = raw.rsplit("_", 1)[-1]
    assert secret not in stored
    assert raw.startswith(f"ldt_{row.prefix}_")


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer", "token"])
def test_it_authenticates_both_header_schemes(token, scheme):
    row, raw = token
    assert authenticate(bearer(raw, scheme), "metrics") == row
    row.refresh_from_db()
    assert row.last_used_from == "10.1.2.3"
    assert row.last_used_at is not None


async def test_it_authenticates_in_async_code(async_orm, token):
    row, raw = token
    assert (await aauthenticate(bearer(raw), "notify")).pk == row.pk


def test_it_answers_401_with_a_challenge_without_a_token(db):
    with pytest.raises(ApiError) as caught:
        authenticate(RequestFactory().post("/api/v1/metrics"), "metrics")
    assert caught.value.status == 401
    assert caught.value.code == "unauthenticated"
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "ldt_abcdefgh_x", "Bearer not-a-token", "Token ldt_short_x"],
)
def test_it_refuses_malformed_headers_with_401(db, header):
    request = RequestFactory().post("/api/v1/metrics", HTTP_AUTHORIZATION=header)
    with pytest.raises(ApiError) as caught:
        authenticate(request, "metrics")
    assert caught.value.status == 401


def test_it_refuses_a_wrong_secret_behind_a_real_prefix(token):
    row, raw = token
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    with pytest.raises(ApiError) as caught:
        authenticate(bearer(forged), "metrics")
    assert caught.value.status == 401
    row.refresh_from_db()
    assert row.last_used_at is None


def test_it_refuses_a_revoked_token(token):
    row, raw = token
    row.revoke()
    with pytest.raises(ApiError) as caught:
        authenticate(bearer(raw), "metrics")
    assert caught.value.status == 401
    assert "revoked" in caught.value.detail


@pytest.mark.parametrize(("scope", "granted"), [("metrics", True), ("notify", True), ("scrape", False)])
def test_it_answers_403_naming_the_missing_scope(token, scope, granted):
    row, raw = token
    if granted:
        assert authenticate(bearer(raw), scope) == row
        return
    with pytest.raises(ApiError) as caught:
        authenticate(bearer(raw), scope)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert "scrape" in caught.value.detail


def test_a_token_without_patterns_has_no_metrics_scope(db):
    _row, raw = ApiToken.create("scraper", scrape=True)
    with pytest.raises(ApiError) as caught:
        authenticate(bearer(raw), "metrics")
    assert caught.value.status == 403
    assert "metrics" in caught.value.detail


def test_metric_patterns_are_shell_style_and_case_sensitive(db):
    row, _raw = ApiToken.create("shipper", metric_patterns=["app_*", "cpu?", "disk"])
    assert row.allows_metric("app_orders")
    assert row.allows_metric("cpu1")
    assert row.allows_metric("disk")
    assert not row.allows_metric("App_orders")
    assert not row.allows_metric("cpu10")
    assert not row.allows_metric("disk_free")


def test_the_view_decorator_answers_the_contract_json(token):
    _row, raw = token

    @token_required("scrape")
    def scrape_view(request):
        return HttpResponse("ok")

    denied = scrape_view(bearer(raw))
    assert denied.status_code == 403
    assert json.loads(denied.content) == {"error": "forbidden", "detail": "this token lacks the scrape scope"}
    anonymous = scrape_view(RequestFactory().get("/metrics"))
    assert anonymous.status_code == 401
    assert json.loads(anonymous.content)["error"] == "unauthenticated"
    assert anonymous["WWW-Authenticate"].startswith("Bearer")


async def test_the_view_decorator_wraps_async_views(async_orm, token):
    row, raw = token

    @token_required("notify")
    async def notify_view(request):
        return HttpResponse(request.api_token.name)

    response = await notify_view(bearer(raw))
    assert response.status_code == 200
    assert response.content.decode() == row.name
    assert (await notify_view(RequestFactory().get("/x"))).status_code == 401

"""Enrollment in-process: an enrollment token trades for a host token, the host token
pushes only its own host's series (JSON and line protocol, all or nothing), and a host
enrolls again only once its token is revoked."""

import json
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from api.models import ApiToken
from audit.models import AuditEntry
from dashboard.storage import DashboardRedisStorage

T = int(time.time()) - 60


def post(raw, path, body, content_type="application/json"):
    if not isinstance(body, str):
        body = json.dumps(body)
    return Client().post(
        path, data=body, content_type=content_type, headers={"Authorization": f"Bearer {raw}"}
    )


def enroll(raw, host):
    return post(raw, "/api/v1/agents/enroll", {"host": host})


def published_since(mark):
    events = DashboardRedisStorage().get_events("metrics", mark, limit=10_000)
    return [json.loads(e.data) for e in events if e.type == "metric"]


@pytest.fixture
def enrollment(transactional_db, redis_url):
    return ApiToken.create("fleet", enroll=True)[1]


def test_create_token_makes_an_enrollment_token(transactional_db, capsys):
    call_command("create_token", "fleet", "--enroll")
    out = capsys.readouterr().out.strip().splitlines()
    assert "enroll" in out[0]
    token = ApiToken.lookup(out[-1])
    assert token.scopes == ["enroll"]


def test_an_enrolled_host_gets_a_token_for_its_own_host_label(enrollment):
    response = enroll(enrollment, "web1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["host"] == "web1"
    token = ApiToken.lookup(body["token"])
    assert token.host == "web1" and token.has_scope("metrics") and not token.has_scope("enroll")
    entry = AuditEntry.objects.get(action="agent.enroll")
    assert entry.target == "web1" and entry.actor == "token:fleet" and entry.after == {"token": token.name}


def test_the_host_token_pushes_its_own_host_and_nothing_else(enrollment):
    raw = enroll(enrollment, "web1").json()["token"]
    mark = DashboardRedisStorage().get_current_id("metrics")
    ok = {"name": "cpu", "value": 1, "ts": T, "labels": {"host": "web1"}}
    assert post(raw, "/api/v1/metrics", ok).status_code == 202
    for bad in (
        {"points": [ok, {"name": "cpu", "value": 2, "ts": T, "labels": {"host": "db1"}}]},
        {"points": [ok, {"name": "cpu", "value": 2, "ts": T}]},
    ):
        response = post(raw, "/api/v1/metrics", bad)
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
    lines = f"cpu,host=web1 value=3 {T}000000000\ncpu,host=db1 value=4 {T}000000000\n"
    response = post(raw, "/api/v2/write", lines, content_type="text/plain")
    assert response.status_code == 403 and "line 2" in response.json()["detail"]
    response = post(raw, "/api/v2/write", f"cpu,host=web1 value=5 {T}000000000", content_type="text/plain")
    assert response.status_code == 204
    assert [(e["value"], e["labels"]) for e in published_since(mark)] == [
        (1, {"host": "web1"}),
        (5, {"host": "web1"}),
    ]


def test_enrolling_a_host_again_needs_its_token_revoked(enrollment):
    first = ApiToken.lookup(enroll(enrollment, "web1").json()["token"])
    again = enroll(enrollment, "web1")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert "revoke" in again.json()["detail"]
    call_command("revoke_token", first.name)
    assert enroll(enrollment, "web1").status_code == 201


def test_only_an_enrollment_token_enrolls_and_bad_hosts_are_invalid(enrollment):
    pusher = ApiToken.create("pusher", metric_patterns=["*"])[1]
    response = enroll(pusher, "web1")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    for body in ({"host": ""}, {"host": "x" * 257}, {"host": 3}, {}, {"host": "a", "more": 1}):
        response = post(enrollment, "/api/v1/agents/enroll", body)
        assert response.status_code == 400 and response.json()["error"] == "invalid", body
    assert not ApiToken.objects.exclude(host="").exists()


def test_create_token_still_needs_a_scope(transactional_db):
    with pytest.raises(CommandError, match="--enroll"):
        call_command("create_token", "nothing")

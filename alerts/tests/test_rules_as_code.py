"""Alert rules as code: the API (a token with the alerts scope, or staff) and
provisioning from ALERT_RULES_DIR (JSON and YAML), with the contract's JSON."""

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client

from alerts.models import AlertRule
from api.models import ApiToken

RULE = {
    "name": "cpu-hot",
    "match": 'cpu{host=~"web.*"}',
    "condition": "above",
    "threshold": 90,
    "for": 300,
    "group_by": ["cluster"],
    "notify": {"group": "ops"},
}


@pytest.fixture
def ops(db):
    return Group.objects.create(name="ops")


@pytest.fixture
def token(transactional_db, redis_url):
    _, raw = ApiToken.create("rules-ci", alerts=True)
    return raw


def call(method, path, raw=None, body=None, client=None):
    client = client or Client()
    headers = {"Authorization": f"Bearer {raw}"} if raw else {}
    data = json.dumps(body) if body is not None else None
    kwargs = {"content_type": "application/json"} if body is not None else {}
    return getattr(client, method)(path, data=data, headers=headers, **kwargs)


def test_put_creates_and_replaces_and_get_and_delete_follow(ops, token):
    answer = call("put", "/api/v1/alert-rules/cpu-hot", token, RULE)
    assert answer.status_code == 200, answer.content
    stored = answer.json()
    assert stored == {
        **RULE,
        "threshold": 90.0,
        "group_wait": 30,
        "group_interval": 300,
        "repeat_interval": 14400,
        "enabled": True,
    }
    rule = AlertRule.objects.get(name="cpu-hot")
    assert (rule.match, rule.sustain_seconds, rule.recipient_group) == (RULE["match"], 300, ops)

    replaced = {**RULE, "threshold": 95, "notify": {"all": True}, "repeat_interval": 3600, "enabled": False}
    assert call("put", "/api/v1/alert-rules/cpu-hot", token, replaced).json()["notify"] == {"all": True}
    assert AlertRule.objects.count() == 1
    got = call("get", "/api/v1/alert-rules/cpu-hot", token).json()
    assert (got["threshold"], got["repeat_interval"], got["enabled"]) == (95.0, 3600, False)
    assert call("get", "/api/v1/alert-rules", token).json() == {"rules": [got]}

    assert call("delete", "/api/v1/alert-rules/cpu-hot", token).status_code == 204
    missing = call("get", "/api/v1/alert-rules/cpu-hot", token)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"match": 'cpu{host=~"("}'}, "invalid regex"),
        ({"condition": "sideways"}, "condition"),
        ({"threshold": "high"}, "threshold"),
        ({"for": -1}, "for must be"),
        ({"notify": {"group": "nobody"}}, "unknown group"),
        ({"notify": {"user": "x", "all": True}}, "exactly one"),
        ({"group_by": ["__name__"]}, "reserved"),
        ({"name": "other"}, "differs"),
        ({"colour": "red"}, "unknown keys: colour"),
    ],
)
def test_bad_rules_are_400_invalid_and_change_nothing(ops, token, change, problem):
    answer = call("put", "/api/v1/alert-rules/cpu-hot", token, {**RULE, **change})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid" and problem in answer.json()["detail"]
    assert not AlertRule.objects.exists()


def test_who_may_use_it(ops, token, alice, staff, admin_user):
    assert call("get", "/api/v1/alert-rules").status_code == 401
    _, notify_only = ApiToken.create("notifier", notify=True)
    answer = call("get", "/api/v1/alert-rules", notify_only)
    assert answer.status_code == 403 and "alerts scope" in answer.json()["detail"]

    session = Client()
    session.force_login(alice)
    assert call("get", "/api/v1/alert-rules", client=session).status_code == 403
    session.force_login(admin_user)  # staff
    assert call("get", "/api/v1/alert-rules", client=session).status_code == 200
    assert call("put", "/api/v1/alert-rules/cpu-hot", body=RULE, client=session).status_code == 200
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(admin_user)
    assert call("delete", "/api/v1/alert-rules/cpu-hot", client=guarded).status_code == 403
    assert AlertRule.objects.filter(name="cpu-hot").exists()


def test_create_token_grants_the_alerts_scope(db):
    out = io.StringIO()
    call_command("create_token", "rules", "--alerts", stdout=out)
    assert "alerts" in out.getvalue()
    assert ApiToken.objects.get(name="rules").has_scope("alerts")


def test_rule_files_are_provisioned_and_then_only_follow_their_files(ops, token, tmp_path, settings):
    (tmp_path / "cpu.json").write_text(json.dumps(RULE))
    (tmp_path / "more.yaml").write_text(
        "rules:\n"
        "  - name: disk-full\n"
        "    match: disk\n"
        "    condition: above\n"
        "    threshold: 95\n"
        "    for: 60\n"
        "    notify: {all: true}\n"
    )
    settings.ALERT_RULES_DIR = str(tmp_path)
    out = io.StringIO()
    call_command("provision_alert_rules", stdout=out)
    assert "Provisioned 2 alert rules" in out.getvalue()
    assert set(AlertRule.objects.values_list("name", "provisioned_from")) == {
        ("cpu-hot", "cpu.json"),
        ("disk-full", "more.yaml"),
    }

    refused = call("put", "/api/v1/alert-rules/cpu-hot", token, {**RULE, "threshold": 1})
    assert refused.status_code == 409 and refused.json()["error"] == "provisioned"
    assert call("delete", "/api/v1/alert-rules/disk-full", token).status_code == 409

    # The file changes: the rule follows; its file goes: the rule goes.
    (tmp_path / "cpu.json").write_text(json.dumps({**RULE, "threshold": 97}))
    (tmp_path / "more.yaml").unlink()
    call_command("provision_alert_rules", stdout=io.StringIO())
    assert list(AlertRule.objects.values_list("name", "threshold")) == [("cpu-hot", 97.0)]

    # A broken file is reported and leaves its rule as it was.
    (tmp_path / "cpu.json").write_text("{not json")
    with pytest.raises(CommandError, match="cpu.json"):
        call_command("provision_alert_rules", stdout=io.StringIO())
    assert AlertRule.objects.get(name="cpu-hot").threshold == 97.0

"""The audit log: configuration changes from the admin, the page and commands,
with who, when, from where, before and after; read-only; pruned by retention."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertRule
from audit.models import AuditEntry
from audit.services import prune, record
from dashboard.collector.collector import Collector
from dashboard.models import Metric
from notifications.models import DeliveryChannel


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


RULE_FORM = {
    "name": "",
    "comparison": "above",
    "threshold": "90",
    "sustain_seconds": "30",
    "cooldown_seconds": "300",
    "repeat_minutes": "60",
    "level": "warning",
    "recipient_group": "",
    "enabled": "on",
}


def test_an_alert_rule_changed_in_the_admin_is_logged_with_before_and_after(admin_client_):
    cpu = Metric.objects.create(key="cpu", label="CPU")
    created = admin_client_.post(
        "/admin/alerts/alertrule/add/", {**RULE_FORM, "metric": cpu.pk}, REMOTE_ADDR="203.0.113.7"
    )
    assert created.status_code == 302
    rule = AlertRule.objects.get()
    changed = admin_client_.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/",
        {**RULE_FORM, "metric": cpu.pk, "threshold": "95"},
        REMOTE_ADDR="203.0.113.7",
    )
    assert changed.status_code == 302

    entries = list(AuditEntry.objects.filter(action__startswith="alertrule.").order_by("id"))
    assert [e.action for e in entries] == ["alertrule.created", "alertrule.changed"]
    change = entries[1]
    assert change.actor == "admin"
    assert change.address == "203.0.113.7"
    assert change.before == {"threshold": 90.0}
    assert change.after == {"threshold": 95.0}
    assert f"#{rule.pk}" in change.target
    assert entries[0].after["metric_id"] == cpu.pk

    deleted = admin_client_.post(f"/admin/alerts/alertrule/{rule.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert AuditEntry.objects.filter(action="alertrule.deleted", actor="admin").exists()


def test_a_metric_saved_unchanged_is_not_logged(db):
    metric = Metric.objects.create(key="disk", label="Disk")
    assert AuditEntry.objects.filter(action="metric.created").count() == 1
    metric.save()
    assert not AuditEntry.objects.filter(action="metric.changed").exists()
    metric.warning_threshold = 80
    metric.save()
    entry = AuditEntry.objects.get(action="metric.changed")
    assert entry.before == {"warning_threshold": None} and entry.after == {"warning_threshold": 80.0}
    assert entry.actor == ""  # code outside a request or command: the system


def test_channel_secrets_never_reach_the_log(alice):
    channel = DeliveryChannel.objects.create(
        kind="webhook", target="http://127.0.0.1/h", secret="hunter2", owner_user=alice
    )
    channel.secret = "correct-horse"
    channel.save()
    logged = str(list(AuditEntry.objects.values_list("before", "after")))
    assert "hunter2" not in logged and "correct-horse" not in logged
    entry = AuditEntry.objects.get(action="deliverychannel.changed")
    assert entry.before == {"secret": "(secret)"} and entry.after == {"secret": "(secret)"}


def test_pausing_a_channel_from_the_page_is_logged_for_that_user(client, alice):
    channel = DeliveryChannel.objects.create(kind="email", target="alice@example.org", owner_user=alice)
    client.force_login(alice)
    client.post(f"/notifications/channels/{channel.pk}/", {"paused": True}, content_type="application/json")
    entry = AuditEntry.objects.get(action="deliverychannel.changed")
    assert (entry.actor, entry.address) == ("alice", "127.0.0.1")
    assert entry.before == {"paused": False} and entry.after == {"paused": True}


@pytest.mark.slow
def test_a_channel_added_by_command_names_the_command(manage):
    result = manage("add_channel", "email", "ops@example.org", "--all")
    assert result.returncode == 0, result.stderr
    entry = AuditEntry.objects.get(action="deliverychannel.created")
    assert entry.actor == "manage.py add_channel"
    assert entry.after["target"] == "ops@example.org"


def test_the_admin_lists_entries_and_cannot_change_them(admin_client_):
    entry = record(
        "set_interval", "sampling", {"interval": 1.0}, {"interval": 5.0}, actor="staff", address="::1"
    )
    listing = admin_client_.get("/admin/audit/auditentry/")
    assert listing.status_code == 200
    assert "set_interval" in listing.content.decode()
    detail = admin_client_.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert detail.status_code == 200 and "&quot;interval&quot;: 5.0" in detail.content.decode()
    assert admin_client_.get("/admin/audit/auditentry/add/").status_code == 403
    admin_client_.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_staff_without_the_permission_cannot_read_it(client, staff):
    client.force_login(staff)
    assert client.get("/admin/audit/auditentry/").status_code == 403


# The collector closes its connection after each chore, as it runs outside any transaction.
@pytest.mark.django_db(transaction=True)
def test_retention_prunes_old_entries_from_the_collector(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    old = record("pause", "sampling", actor="staff", address="")
    AuditEntry.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=31))
    recent = record("resume", "sampling", actor="staff", address="")

    collector = Collector(
        sampler=_StaticSampler(), publish=lambda *a, **k: None, app_metrics=dict, chores=[(3600, prune)]
    )
    collector.tick()

    assert list(AuditEntry.objects.values_list("pk", flat=True)) == [recent.pk]


class _StaticSampler:
    def sample(self):
        return {"cpu": 1.0}


def test_api_tokens_created_and_revoked_are_logged_without_their_hash(db):
    from api.models import ApiToken

    token, raw = ApiToken.create("ingest", metric_patterns=["*"])
    token.revoke()
    entries = {e.action: e for e in AuditEntry.objects.filter(action__startswith="apitoken.")}
    assert set(entries) == {"apitoken.created", "apitoken.changed"}
    assert entries["apitoken.created"].after["token_hash"] == "(secret)"
    assert entries["apitoken.changed"].after["revoked"] is True
    assert raw not in str(list(AuditEntry.objects.values_list("before", "after")))
    assert token.token_hash not in str(list(AuditEntry.objects.values_list("before", "after")))

"""Acknowledge and silence: repeats stop once acknowledged, a silence notifies nobody
for its window, and the alert history records each step and who took it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import actions
from alerts.evaluation import AlertEvaluator
from alerts.models import AlertEvent, AlertRule
from audit.models import AuditEntry
from dashboard.models import Metric
from notifications.models import Notification

NOW = timezone.now().timestamp()


@pytest.fixture
def rule(db):
    cpu = Metric.objects.create(key="cpu", label="CPU", unit="%")
    return AlertRule.objects.create(
        metric=cpu,
        comparison="above",
        threshold=90,
        sustain_seconds=10,
        cooldown_seconds=60,
        repeat_minutes=1,
        level="error",
        group_wait=0,
        group_interval=0,
    )


def run(evaluator, value, seconds, start):
    for i in range(seconds):
        evaluator.evaluate({"cpu": value}, start + i)
    return start + seconds


def titles():
    return list(Notification.objects.order_by("id").values_list("title", flat=True))


def kinds(rule):
    return list(AlertEvent.objects.filter(rule=rule).order_by("id").values_list("kind", "actor_name"))


def test_a_firing_rule_repeats_until_acknowledged(rule, staff):
    evaluator = AlertEvaluator()
    t = run(evaluator, 95, 11, NOW)  # fires at +10
    t = run(evaluator, 95, 61, t)  # a minute later: one repeat
    assert titles() == ["CPU above 90: CPU is 95 %", "Still firing: CPU above 90: CPU is 95 %"]

    state = actions.acknowledge(rule.pk, staff, "198.51.100.4")
    assert state["acknowledged_by"] == "staff" and state["firing"] is True
    run(evaluator, 95, 180, t)
    assert len(titles()) == 2  # no more repeats of this firing

    assert kinds(rule) == [("fired", ""), ("repeated", ""), ("acknowledged", "staff")]
    audit = AuditEntry.objects.get(action="ack_alert")
    assert (audit.actor, audit.address) == ("staff", "198.51.100.4")
    assert audit.after == {"acknowledged_by": "staff"}


def test_the_next_firing_needs_its_own_acknowledgement(rule, staff):
    evaluator = AlertEvaluator()
    t = run(evaluator, 95, 11, NOW)
    actions.acknowledge(rule.pk, staff)
    t = run(evaluator, 50, 11, t)  # resolved
    t = run(evaluator, 50, 60, t)  # past the cooldown
    t = run(evaluator, 95, 11, t)  # fires again
    rule.refresh_from_db()
    assert rule.firing and rule.acknowledged_at is None
    run(evaluator, 95, 61, t)
    assert titles()[-1].startswith("Still firing")


def test_only_a_firing_rule_can_be_acknowledged(rule, staff):
    with pytest.raises(actions.NotFiring):
        actions.acknowledge(rule.pk, staff)
    with pytest.raises(actions.RuleNotFound):
        actions.acknowledge(999999, staff)
    assert not AlertEvent.objects.exists() and not AuditEntry.objects.filter(action="ack_alert").exists()


def test_a_silenced_rule_notifies_nobody_but_keeps_its_history(rule, staff):
    state = actions.silence(rule.pk, 30, staff, "::1")
    assert state["silenced_by"] == "staff" and state["silenced_until"]
    evaluator = AlertEvaluator()
    firing = [evaluator.evaluate({"cpu": 95}, NOW + i) for i in range(80)]
    assert firing[-1] == {"cpu"}  # the page still shows it firing
    run(evaluator, 50, 11, NOW + 80)
    assert titles() == []
    assert [kind for kind, _ in kinds(rule)] == ["silenced", "fired", "resolved"]
    assert "silenced" in AlertEvent.objects.get(kind="fired").detail


def test_a_silence_ends_by_itself_or_when_lifted(rule, staff):
    actions.silence(rule.pk, 1, staff)
    evaluator = AlertEvaluator()
    run(evaluator, 95, 11, timezone.now().timestamp() + 61)  # the minute has passed when it fires
    assert titles() == ["CPU above 90: CPU is 95 %"]

    actions.silence(rule.pk, 60, staff)
    state = actions.unsilence(rule.pk, staff)
    assert state["silenced_until"] is None
    assert [e.action for e in AuditEntry.objects.order_by("id") if "silence" in e.action] == [
        "silence_alert",
        "silence_alert",
        "unsilence_alert",
    ]


@pytest.mark.parametrize("minutes", [0, 10081, 1.5, "5", True, None])
def test_silences_are_one_minute_to_a_week(rule, staff, minutes):
    with pytest.raises(ValueError):
        actions.silence(rule.pk, minutes, staff)
    rule.refresh_from_db()
    assert rule.silenced_until is None


def test_a_maintenance_window_set_in_the_admin_says_who_set_it(client, admin_user, rule):
    client.force_login(admin_user)
    until = (timezone.now() + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    form = {
        "name": "",
        "metric": rule.metric_id,
        "comparison": "above",
        "threshold": "90",
        "sustain_seconds": "10",
        "cooldown_seconds": "60",
        "repeat_minutes": "1",
        "level": "error",
        "recipient_group": "",
        "enabled": "on",
        "silenced_until_0": until[:10],
        "silenced_until_1": until[11:],
    }
    answer = client.post(f"/admin/alerts/alertrule/{rule.pk}/change/", form)
    assert answer.status_code == 302, answer.content.decode()[:2000]
    rule.refresh_from_db()
    assert rule.is_silenced() and rule.silenced_by == admin_user
    assert AuditEntry.objects.filter(action="alertrule.changed", actor="admin").exists()
    assert client.get("/admin/alerts/alertevent/").status_code == 200

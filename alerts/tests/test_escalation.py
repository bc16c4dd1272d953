"""Escalation: an alert still unacknowledged after a step's delay goes to that step's
channel too; an acknowledgement stops the later steps. The clock is the test's."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import actions
from alerts.evaluation import AlertEvaluator
from alerts.models import AlertEvent, AlertRule, EscalationStep, SeriesAlert
from dashboard.models import Metric
from notifications.models import Delivery, DeliveryChannel

NOW = timezone.now().timestamp()


@pytest.fixture
def rule(db, staff):
    Metric.objects.create(key="cpu", label="CPU", unit="%")
    rule = AlertRule.objects.create(
        match="cpu", threshold=90, sustain_seconds=0, group_wait=0, group_interval=0, repeat_minutes=0
    )
    first = DeliveryChannel.objects.create(kind="email", target="oncall-a@example.org", owner_user=staff)
    second = DeliveryChannel.objects.create(kind="email", target="oncall-b@example.org", owner_user=staff)
    EscalationStep.objects.create(rule=rule, delay_minutes=5, channel=first)
    EscalationStep.objects.create(rule=rule, delay_minutes=15, channel=second)
    return rule


def sent_to():
    escalations = Delivery.objects.filter(notification__title__startswith="Escalated")
    return list(escalations.order_by("pk").values_list("channel__target", flat=True))


def test_steps_are_taken_in_time_until_someone_acknowledges(rule, staff):
    evaluator = AlertEvaluator(host="web1")
    evaluator.evaluate({"cpu": 99}, NOW)
    alert = SeriesAlert.objects.get()
    step = alert.next_escalation(now=alert.last_fired_at)
    # Named by whom the channel belongs to: the page shows it to every viewer.
    assert (step["channel"], step["kind"]) == ("staff", "email")

    evaluator.evaluate({"cpu": 99}, NOW + 299)
    assert sent_to() == []
    evaluator.evaluate({"cpu": 99}, NOW + 300)
    assert sent_to() == ["oncall-a@example.org"]
    evaluator.evaluate({"cpu": 99}, NOW + 301)
    assert sent_to() == ["oncall-a@example.org"]  # each step once

    actions.acknowledge(rule.pk, staff, series='cpu{host="web1"}')
    evaluator.evaluate({"cpu": 99}, NOW + 15 * 60)
    evaluator.evaluate({"cpu": 99}, NOW + 30 * 60)
    assert sent_to() == ["oncall-a@example.org"]  # the acknowledgement stopped step two
    kinds = list(AlertEvent.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == ["fired", "escalated", "acknowledged"]


def test_without_an_acknowledgement_every_step_is_taken(rule):
    evaluator = AlertEvaluator(host="web1")
    for minute in range(0, 20):
        evaluator.evaluate({"cpu": 99}, NOW + minute * 60)
    assert sent_to() == ["oncall-a@example.org", "oncall-b@example.org"]
    alert = SeriesAlert.objects.get()
    assert alert.next_escalation(now=alert.last_fired_at + timedelta(minutes=20)) is None


def test_it_names_the_next_step_by_its_channels_owner_never_its_address(rule, staff):
    from django.contrib.auth.models import Group

    oncall = Group.objects.create(name="On-call B")
    hook = DeliveryChannel.objects.create(
        kind="webhook", target="https://hooks.example.org/T0/B0/secret-token", owner_group=oncall
    )
    everyone = DeliveryChannel.objects.create(kind="email", target="all-hands@example.org")
    rule.escalation_steps.all().delete()
    EscalationStep.objects.create(rule=rule, delay_minutes=5, channel=hook)
    EscalationStep.objects.create(rule=rule, delay_minutes=10, channel=everyone)
    AlertEvaluator(host="web1").evaluate({"cpu": 99}, NOW)
    alert = SeriesAlert.objects.get()
    fired = alert.last_fired_at
    assert alert.next_escalation(now=fired) == {
        "channel": "On-call B",
        "kind": "webhook",
        "at": (fired + timedelta(minutes=5)).isoformat(),
    }
    assert alert.next_escalation(now=fired + timedelta(minutes=6))["channel"] is None
    # What every page is told carries no address.
    state = str(rule.as_state(now=fired))
    assert "On-call B" in state and "secret-token" not in state and "all-hands" not in state

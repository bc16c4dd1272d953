"""Alert rules driven with synthetic value sequences and explicit clocks."""

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule
from dashboard.models import Metric
from notifications.models import Notification


@pytest.fixture
def cpu(db):
    return Metric.objects.create(key="cpu", label="CPU", unit="%")


@pytest.fixture
def rule(cpu):
    return AlertRule.objects.create(
        metric=cpu,
        comparison="above",
        threshold=90,
        sustain_seconds=10,
        cooldown_seconds=60,
        level="error",
        group_wait=0,
        group_interval=0,
    )


def run(evaluator, sequence, start=0.0, step=1.0, key="cpu"):
    """Feed one value per tick; returns the firing sets, tick by tick."""
    return [evaluator.evaluate({key: value}, start + i * step) for i, value in enumerate(sequence)]


def titles():
    return list(Notification.objects.order_by("id").values_list("title", flat=True))


def test_it_fires_once_after_the_sustain_time(rule):
    evaluator = AlertEvaluator()
    firing = run(evaluator, [95] * 30)

    assert firing[9] == set()  # 9 s out of range: not yet
    assert firing[10] == {"cpu"}
    assert all(f == {"cpu"} for f in firing[10:])
    assert titles() == ["CPU above 90: CPU is 95 %"]
    notification = Notification.objects.get()
    assert notification.level == "error"
    assert notification.audience == "all"


def test_it_resolves_once_when_back_in_range_for_the_sustain_time(rule):
    evaluator = AlertEvaluator()
    run(evaluator, [95] * 11)
    firing = run(evaluator, [50] * 30, start=11)

    assert firing[9] == {"cpu"}
    assert firing[10] == set()
    assert titles() == ["CPU above 90: CPU is 95 %", "Resolved: CPU above 90"]
    assert Notification.objects.order_by("id").last().level == "success"


def test_a_value_flapping_around_the_threshold_raises_nothing(rule):
    evaluator = AlertEvaluator()
    firing = run(evaluator, [95, 85] * 100)
    assert not any(firing)
    assert not Notification.objects.exists()


def test_flapping_while_firing_does_not_resolve(rule):
    evaluator = AlertEvaluator()
    run(evaluator, [95] * 11)
    firing = run(evaluator, [85, 95] * 50, start=11)
    assert all(f == {"cpu"} for f in firing)
    assert len(titles()) == 1


def test_the_cooldown_holds_back_a_second_alert_after_a_resolve(rule):
    evaluator = AlertEvaluator()
    run(evaluator, [95] * 11)  # fires at t=10
    run(evaluator, [50] * 11, start=11)  # resolves at t=21
    firing = run(evaluator, [95] * 60, start=22)  # out of range again from t=22

    # Sustained by t=32, but the cooldown runs until t=81.
    assert firing[32 - 22] == set()
    assert firing[81 - 22] == {"cpu"}
    assert len(titles()) == 3


def test_below_rules_fire_on_low_values(cpu):
    AlertRule.objects.create(metric=cpu, comparison="below", threshold=5, sustain_seconds=0)
    evaluator = AlertEvaluator()
    assert evaluator.evaluate({"cpu": 10}, 0) == set()
    assert evaluator.evaluate({"cpu": 1}, 1) == {"cpu"}


def test_it_notifies_the_rules_group(rule):
    from django.contrib.auth.models import Group

    rule.recipient_group = Group.objects.create(name="ops")
    rule.save()
    run(AlertEvaluator(), [95] * 11)
    assert Notification.objects.get().recipient_group == rule.recipient_group


def test_a_restarted_evaluator_does_not_fire_again(rule):
    run(AlertEvaluator(), [95] * 11)
    rule.refresh_from_db()
    assert rule.firing
    assert rule.last_fired_at is not None

    restarted = AlertEvaluator()
    firing = run(restarted, [95] * 30, start=11)
    assert all(f == {"cpu"} for f in firing)
    assert len(titles()) == 1


def test_a_restarted_evaluator_keeps_the_cooldown(rule):
    import time

    now = time.time()
    evaluator = AlertEvaluator()
    run(evaluator, [95] * 11, start=now)
    run(evaluator, [50] * 11, start=now + 11)

    restarted = AlertEvaluator()
    run(restarted, [95] * 20, start=now + 22)
    assert len(titles()) == 2  # Still cooling down until now + 81.


def test_missing_and_bad_values_leave_the_state_alone(rule):
    evaluator = AlertEvaluator()
    run(evaluator, [95] * 5)
    for t, values in enumerate([{}, {"cpu": None}, {"cpu": "high"}, {"cpu": float("nan")}], start=5):
        assert evaluator.evaluate(values, t) == set()
    assert evaluator.evaluate({"cpu": 95}, 10) == {"cpu"}


def test_it_reloads_rules_every_few_seconds_not_every_tick(rule, django_assert_max_num_queries):
    evaluator = AlertEvaluator(reload_seconds=5)
    evaluator.evaluate({"cpu": 0}, 0)
    with django_assert_max_num_queries(0):
        for t in range(1, 5):
            evaluator.evaluate({"cpu": 0}, t)

    rule.enabled = False
    rule.save()
    evaluator.evaluate({"cpu": 95}, 5)
    assert evaluator.rules == []


def test_it_ignores_disabled_rules(rule):
    rule.enabled = False
    rule.save()
    assert run(AlertEvaluator(), [95] * 20) == [set()] * 20
    assert not Notification.objects.exists()


def test_it_never_raises_when_the_database_is_away(rule, monkeypatch):
    from django.db import OperationalError

    evaluator = AlertEvaluator()
    run(evaluator, [95] * 5)

    def database_away(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("alerts.evaluation.notify", database_away)
    monkeypatch.setattr(AlertRule.objects, "filter", database_away)
    firing = run(evaluator, [95] * 20, start=5)  # Due to fire and to reload: both fail.
    assert firing == [set()] * 20

    monkeypatch.undo()
    assert evaluator.evaluate({"cpu": 95}, 25) == {"cpu"}
    assert len(titles()) == 1

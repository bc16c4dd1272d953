"""The collector and the alert evaluator together: a rule that holds fires once,
is marked in the frames while firing, and resolves once."""

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule
from dashboard.collector.collector import Collector
from dashboard.models import Metric
from notifications.models import Notification


class ScriptedSampler:
    """Host values from a script, one entry per tick."""

    def __init__(self, values):
        self.values = iter(values)

    def sample(self):
        return {"cpu": next(self.values)}


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def cpu_rule(transactional_db):
    # Transactional: the collector closes its database connection after each tick.
    cpu = Metric.objects.get_or_create(key="cpu", defaults={"label": "CPU", "unit": "%"})[0]
    return AlertRule.objects.create(
        metric=cpu, comparison="above", threshold=90, sustain_seconds=3, group_wait=0, group_interval=0
    )


def test_a_collector_fires_marks_and_resolves_a_rule_once(cpu_rule, redis_url):
    script = [95] * 8 + [10] * 8
    frames, clock = [], Clock()
    collector = Collector(
        sampler=ScriptedSampler(script),
        evaluator=AlertEvaluator(),
        publish=lambda seq, ts, values, firing, host: frames.append(list(firing)),
        app_metrics=dict,
        wallclock=clock,
    )
    for _ in script:
        collector.tick()
        clock.now += 1

    assert frames[:3] == [[]] * 3
    assert frames[3:11] == [["cpu"]] * 8  # Out of range for 3 s, then back in range for 3 s.
    assert frames[11:] == [[]] * 5
    assert Notification.objects.count() == 2
    cpu_rule.refresh_from_db()
    assert not cpu_rule.firing
    assert cpu_rule.last_resolved_at is not None


def test_a_group_whose_wait_ends_between_two_ticks_is_sent_then_not_on_the_next_tick(cpu_rule, redis_url):
    import threading
    import time

    from dashboard.redis import get_sync_client, key

    # Ticks 5 s apart, a group waiting 1 s: sent on a tick, it would go 5 s after the crossing.
    get_sync_client().hset(key("sampling"), mapping={"interval": "5"})
    AlertRule.objects.filter(pk=cpu_rule.pk).update(sustain_seconds=0, group_wait=1)
    ticks = []
    collector = Collector(
        sampler=ScriptedSampler([95] * 100),
        evaluator=AlertEvaluator(),
        publish=lambda seq, ts, values, firing, host: ticks.append(ts),
        app_metrics=dict,
    )
    runner = threading.Thread(target=collector.run)
    runner.start()
    try:
        deadline = time.monotonic() + 15
        while not Notification.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        collector.stop()
        runner.join(10)
    notification = Notification.objects.get()
    assert len(ticks) == 1
    assert 1.0 <= notification.created_at.timestamp() - ticks[0] < 3.0

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

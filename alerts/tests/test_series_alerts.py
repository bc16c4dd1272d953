"""Rules on selectors: every matching series has its own alert (state, acknowledgement,
silence), and what is said about it names the series' labels."""

from importlib import import_module

import pytest
from django.apps import apps
from django.utils import timezone

from alerts import actions
from alerts.evaluation import AlertEvaluator
from alerts.feed import MetricEventFeed
from alerts.models import AlertEvent, AlertRule, SeriesAlert
from audit.models import AuditEntry
from dashboard import frames
from dashboard.live import publish_metric
from dashboard.models import Metric
from notifications.models import Notification

NOW = timezone.now().timestamp()
WEB1 = 'cpu{host="web1"}'
WEB2 = 'cpu{host="web2"}'


class Points:
    """A feed whose next tick's published values the test sets."""

    def __init__(self):
        self.next = {}

    def set(self, **values_by_host):
        self.next = dict(values_by_host)

    def __call__(self):
        points = []
        for host, value in self.next.items():
            data = frames.metric("cpu", value, NOW, {"host": host})
            points.extend(frames.points_of(frames.METRIC, data))
        return points


@pytest.fixture
def cpu(db):
    return Metric.objects.create(key="cpu", label="CPU", unit="%")


@pytest.fixture
def fleet_rule(cpu):
    return AlertRule.objects.create(
        match='cpu{host=~"web.*"}',
        threshold=90,
        sustain_seconds=5,
        cooldown_seconds=0,
        repeat_minutes=1,
        level="error",
        # One group a host, each message at once: every series is told apart here.
        group_by=["host"],
        group_wait=0,
        group_interval=0,
    )


def run(evaluator, feed, seconds, start, **values_by_host):
    feed.set(**values_by_host)
    firing = [evaluator.evaluate({}, start + i) for i in range(seconds)]
    return start + seconds, firing


def titles():
    return list(Notification.objects.order_by("id").values_list("title", flat=True))


def test_one_rule_watches_every_matching_series_apart(fleet_rule):
    feed = Points()
    evaluator = AlertEvaluator(feed=feed)
    t, firing = run(evaluator, feed, 6, NOW, web1=95, web2=50, db1=99)
    assert firing[-1] == {"cpu"}
    assert titles() == ['CPU above 90: CPU is 95 % (host="web1")']  # db1 is not matched, web2 is fine
    alert = SeriesAlert.objects.get()
    assert (alert.series, alert.labels, alert.firing, alert.value) == (WEB1, {"host": "web1"}, True, 95)
    fleet_rule.refresh_from_db()
    assert fleet_rule.firing and fleet_rule.metric.key == "cpu"  # linked from the selector's name

    t, _ = run(evaluator, feed, 6, t, web1=95, web2=96)
    assert titles()[-1] == 'CPU above 90: CPU is 96 % (host="web2")'
    t, firing = run(evaluator, feed, 6, t, web1=10, web2=96)
    assert titles()[-1] == 'Resolved: CPU above 90 (host="web1")'
    assert firing[-1] == {"cpu"}  # web2 still fires, so the rule does
    fleet_rule.refresh_from_db()
    assert fleet_rule.firing
    events = AlertEvent.objects.order_by("id").values_list("kind", "series")
    assert list(events) == [("fired", WEB1), ("fired", WEB2), ("resolved", WEB1)]
    assert 'host="web1"' in AlertEvent.objects.get(kind="resolved").detail

    run(evaluator, feed, 6, t, web1=10, web2=10)
    fleet_rule.refresh_from_db()
    assert not fleet_rule.firing


def test_the_frame_values_are_series_of_the_collectors_host(cpu):
    AlertRule.objects.create(match='cpu{host="box"}', threshold=90, sustain_seconds=0)
    assert AlertEvaluator(host="other").evaluate({"cpu": 99}, NOW) == set()
    assert AlertEvaluator(host="box").evaluate({"cpu": 99}, NOW) == {"cpu"}
    assert SeriesAlert.objects.get().series == 'cpu{host="box"}'


def test_acknowledging_one_series_stops_only_its_repeats(fleet_rule, staff):
    feed = Points()
    evaluator = AlertEvaluator(feed=feed)
    t, _ = run(evaluator, feed, 6, NOW, web1=95, web2=95)
    state = actions.acknowledge(fleet_rule.pk, staff, "192.0.2.1", series=WEB1)
    acknowledged = {s["series"]: s["acknowledged_by"] for s in state["series"]}
    assert acknowledged == {WEB1: "staff", WEB2: None}
    assert state["acknowledged_by"] is None  # the rule as a whole is not

    run(evaluator, feed, 61, t, web1=95, web2=95)
    repeats = [title for title in titles() if title.startswith("Still firing")]
    assert repeats == ['Still firing: CPU above 90: CPU is 95 % (host="web2")']
    event = AlertEvent.objects.get(kind="acknowledged")
    assert (event.series, event.actor_name) == (WEB1, "staff")
    audit = AuditEntry.objects.get(action="ack_alert")
    assert 'host="web1"' in audit.target and audit.after["series"] == WEB1


def test_acknowledging_the_rule_acknowledges_every_firing_series(fleet_rule, staff):
    feed = Points()
    evaluator = AlertEvaluator(feed=feed)
    t, _ = run(evaluator, feed, 6, NOW, web1=95, web2=95)
    actions.acknowledge(fleet_rule.pk, staff)
    assert set(SeriesAlert.objects.values_list("acknowledged_by__username", flat=True)) == {"staff"}
    run(evaluator, feed, 61, t, web1=95, web2=95)
    assert not any(title.startswith("Still firing") for title in titles())


def test_a_series_can_be_acknowledged_only_while_it_fires(fleet_rule, staff):
    with pytest.raises(actions.NotFiring):
        actions.acknowledge(fleet_rule.pk, staff, series=WEB1)
    with pytest.raises(ValueError):
        actions.acknowledge(fleet_rule.pk, staff, series="cpu{host=web1}")
    assert not AuditEntry.objects.filter(action="ack_alert").exists()


def test_a_silenced_series_fires_quietly_beside_the_others(fleet_rule, staff):
    actions.silence(fleet_rule.pk, 30, staff, series=WEB1)  # ahead of maintenance on web1
    with pytest.raises(ValueError, match="does not watch"):
        actions.silence(fleet_rule.pk, 30, staff, series='cpu{host="db1"}')
    feed = Points()
    evaluator = AlertEvaluator(feed=feed)
    run(evaluator, feed, 6, NOW, web1=95, web2=95)
    assert titles() == ['CPU above 90: CPU is 95 % (host="web2")']
    fired = AlertEvent.objects.get(kind="fired", series=WEB1)
    assert "silenced" in fired.detail

    (rule_state,) = actions.active_states()
    shown = {s["series"]: s for s in rule_state["series"]}
    assert shown[WEB1]["silenced_by"] == "staff" and shown[WEB1]["firing"]

    state = actions.unsilence(fleet_rule.pk, staff)  # the rule's: every series' silence goes
    assert all(s["silenced_until"] is None for s in state["series"])


def test_a_firing_series_that_goes_quiet_resolves_as_no_data(fleet_rule):
    feed = Points()
    evaluator = AlertEvaluator(feed=feed, stale_seconds=60, reload_seconds=5)
    t, _ = run(evaluator, feed, 6, NOW, web1=95)
    run(evaluator, feed, 70, t)  # web1 sends nothing more
    assert titles()[-1] == 'Resolved: CPU above 90 (host="web1")'
    assert AlertEvent.objects.filter(kind="resolved", detail__startswith="no data").exists()
    fleet_rule.refresh_from_db()
    assert not fleet_rule.firing


def test_a_restarted_evaluator_carries_on_per_series(fleet_rule):
    feed = Points()
    t, _ = run(AlertEvaluator(feed=feed), feed, 6, NOW, web1=95)
    restarted = AlertEvaluator(feed=feed)
    _, firing = run(restarted, feed, 20, t, web1=95)
    assert all(f == {"cpu"} for f in firing)
    assert len(titles()) == 1


def test_published_values_reach_the_rules_through_the_event_store(
    fleet_rule, redis_url, django_capture_on_commit_callbacks
):
    feed = MetricEventFeed()
    assert feed() == []  # the first call only marks where reading starts
    with django_capture_on_commit_callbacks(execute=True):
        publish_metric("cpu", 97, labels={"host": "web1"})
        publish_metric("memory", 1)
    points = feed()
    assert [(p[0], p[4]) for p in points] == [(WEB1, 97), ("memory", 1)]
    assert feed() == []


def test_the_migration_turns_each_metric_into_a_selector_and_keeps_firing_rules(cpu, staff):
    migration = import_module("alerts.migrations.0002_rules_on_selectors")
    quiet = AlertRule.objects.create(metric=cpu, threshold=90)
    firing = AlertRule.objects.create(metric=cpu, threshold=50, firing=True, last_fired_at=timezone.now())
    AlertRule.objects.filter(pk=firing.pk).update(acknowledged_at=timezone.now(), acknowledged_by=staff)
    AlertRule.objects.update(match="")  # as rules were before the migration

    migration.rules_to_selectors(apps, schema_editor=None)

    assert set(AlertRule.objects.values_list("match", flat=True)) == {"cpu"}
    alert = SeriesAlert.objects.get()
    assert (alert.rule_id, alert.series, alert.firing, alert.acknowledged_by) == (
        firing.pk,
        "cpu",
        True,
        staff,
    )
    assert not SeriesAlert.objects.filter(rule=quiet).exists()
    # The bare series keeps its alert: an unlabelled metric goes on firing without a second message.
    evaluator = AlertEvaluator()
    assert evaluator.evaluate({"cpu": 60}, NOW) == {"cpu"}
    assert not Notification.objects.exists()

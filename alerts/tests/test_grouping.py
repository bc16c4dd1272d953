"""Grouping as Alertmanager does it, with the clock driven by the test and real webhook
receivers: forty series firing at once make ONE message; a flapping series within
group_interval makes no storm; a resolved message lists what resolved; every message
of a group carries the same group key."""

import pytest
from django.utils import timezone

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule
from dashboard import frames
from dashboard.models import Metric
from notifications import delivery
from notifications.models import DeliveryChannel, Notification
from tests.receivers import WebhookReceiver

NOW = timezone.now().timestamp()


class Published:
    """The feed: the values the test says were published since the last tick."""

    def __init__(self):
        self.values = {}

    def __call__(self):
        points = []
        for labels, value in self.values.items():
            data = frames.metric("cpu", value, NOW, dict(labels))
            points.extend(frames.points_of(frames.METRIC, data))
        return points


def hosts(count, value, cluster="eu"):
    return {(("cluster", cluster), ("host", f"web{n:02}")): value for n in range(count)}


@pytest.fixture
def receiver(db):
    server = WebhookReceiver().start()
    DeliveryChannel.objects.create(kind="webhook", target=server.url, secret=server.secret)
    yield server
    server.stop()


@pytest.fixture
def rule(db):
    Metric.objects.create(key="cpu", label="CPU", unit="%")
    return AlertRule.objects.create(
        match="cpu",
        threshold=90,
        sustain_seconds=0,
        cooldown_seconds=0,
        repeat_minutes=240,
        group_by=["cluster"],
        group_wait=30,
        group_interval=300,
    )


def tick(evaluator, feed, at, values):
    feed.values = values
    return evaluator.evaluate({}, at)


def deliver_all():
    while delivery.send_due(limit=100):
        pass


def test_forty_series_firing_at_once_make_one_grouped_webhook(rule, receiver):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    # A bad deploy: forty hosts of one cluster cross within a few seconds.
    tick(evaluator, feed, NOW, hosts(25, 99))
    tick(evaluator, feed, NOW + 5, hosts(40, 99))
    tick(evaluator, feed, NOW + 29, hosts(40, 99))
    assert not Notification.objects.exists()  # group_wait: still gathering
    tick(evaluator, feed, NOW + 30, hosts(40, 99))

    (notification,) = Notification.objects.all()
    assert notification.title == 'CPU above 90: 40 firing, 0 resolved (cluster="eu")'
    deliver_all()
    (request,) = receiver.requests
    payload = request.payload
    assert request.signature_ok
    assert payload["group_key"] == f'rule-{rule.pk}{{cluster="eu"}}'
    assert payload["status"] == "firing" and payload["group_labels"] == {"cluster": "eu"}
    assert len(payload["alerts"]) == 40
    assert {a["labels"]["host"] for a in payload["alerts"]} == {f"web{n:02}" for n in range(40)}
    assert all(a["status"] == "firing" and a["value"] == 99 for a in payload["alerts"])
    assert '- cluster="eu", host="web00": 99 %' in payload["body"]

    # Ten recover: one resolved message after group_interval, listing them, same group key.
    recovered = {**hosts(40, 99), **hosts(10, 10)}
    for at in range(31, 330, 10):
        tick(evaluator, feed, NOW + at, recovered)
    assert Notification.objects.count() == 1  # not before group_interval since the last one
    tick(evaluator, feed, NOW + 330, recovered)
    deliver_all()
    second = receiver.requests[-1].payload
    assert len(receiver.requests) == 2
    assert second["group_key"] == payload["group_key"]
    assert second["title"] == 'CPU above 90: 30 firing, 10 resolved (cluster="eu")'
    resolved = [a for a in second["alerts"] if a["status"] == "resolved"]
    assert {a["labels"]["host"] for a in resolved} == {f"web{n:02}" for n in range(10)}
    assert "Resolved:" in second["body"]


def test_another_cluster_is_another_group_with_its_own_key(rule, receiver):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    both = {**hosts(3, 99, "eu"), **hosts(2, 99, "us")}
    tick(evaluator, feed, NOW, both)
    tick(evaluator, feed, NOW + 30, both)
    deliver_all()
    keys = sorted(r.payload["group_key"] for r in receiver.requests)
    assert keys == [f'rule-{rule.pk}{{cluster="eu"}}', f'rule-{rule.pk}{{cluster="us"}}']


def test_a_flapping_series_within_group_interval_makes_no_storm(rule, receiver):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    one = (("cluster", "eu"), ("host", "web01"))
    at = NOW
    tick(evaluator, feed, at, {one: 99})
    tick(evaluator, feed, at + 30, {one: 99})  # the first message
    # Then it flaps every 5 seconds for four minutes: fires, resolves, fires...
    for step in range(1, 50):
        tick(evaluator, feed, at + 30 + 5 * step, {one: 99 if step % 2 else 10})
    assert Notification.objects.count() == 1
    tick(evaluator, feed, at + 330, {one: 10})  # group_interval since the first: one update
    tick(evaluator, feed, at + 331, {one: 10})
    assert Notification.objects.count() == 2
    assert Notification.objects.order_by("id").last().title.startswith("Resolved: CPU above 90")
    deliver_all()
    assert len(receiver.requests) == 2
    assert len({r.payload["group_key"] for r in receiver.requests}) == 1


def test_a_group_repeats_after_repeat_interval_unless_acknowledged(rule, staff):
    from alerts import actions

    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    firing = hosts(3, 99)
    tick(evaluator, feed, NOW, firing)
    tick(evaluator, feed, NOW + 30, firing)
    tick(evaluator, feed, NOW + 30 + 4 * 3600, firing)
    titles = list(Notification.objects.order_by("id").values_list("title", flat=True))
    assert titles[-1] == 'Still firing: CPU above 90: 3 firing, 0 resolved (cluster="eu")'

    actions.acknowledge(rule.pk, staff)
    tick(evaluator, feed, NOW + 30 + 8 * 3600, firing)
    assert Notification.objects.count() == 2  # acknowledged: no more repeats


def test_a_group_is_due_when_its_wait_is_over_and_not_a_moment_before(db):
    """The collector wakes at `due_at` between its ticks: a tick a hair early must not
    send the message before group_wait (or group_interval) is over."""
    from alerts.grouping import Group

    rule = AlertRule(group_wait=5, group_interval=5, repeat_minutes=0)
    group = Group(1, "rule-1", {})
    group.fired('cpu{host="a"}', {"host": "a"}, 99, NOW)
    assert group.due_at(rule) == NOW + 5
    assert group.due(rule, NOW + 4.995) is None
    assert group.due(rule, NOW + 5) == "first"
    group.sent(NOW + 5)
    assert group.due_at(rule) is None  # nothing new to say, no repeats
    group.resolved_now('cpu{host="a"}', 10)
    assert group.due_at(rule) == NOW + 10
    assert group.due(rule, NOW + 9.99) is None
    assert group.due(rule, NOW + 10) == "update"


def test_it_says_when_the_next_message_falls_due_so_the_collector_can_wake_for_it(rule):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    assert evaluator.next_message_at() is None
    tick(evaluator, feed, NOW, hosts(3, 99))
    assert evaluator.next_message_at() == NOW + 30  # group_wait
    evaluator.send_due_messages(NOW + 29)
    assert not Notification.objects.exists()
    evaluator.send_due_messages(NOW + 30)
    assert Notification.objects.count() == 1
    assert evaluator.next_message_at() == NOW + 30 + 4 * 3600  # repeat_interval
    tick(evaluator, feed, NOW + 40, hosts(3, 10))
    assert evaluator.next_message_at() == NOW + 30 + 300  # group_interval, for the resolve


def test_it_sends_a_due_group_before_reading_the_ticks_values(rule):
    """Reading and judging a tick's values (thousands of series) must not hold back a
    message whose group_wait is over: it goes out first."""

    class Watching(Published):
        def __call__(self):
            self.sent_before_reading.append(Notification.objects.count())
            return super().__call__()

    feed = Watching()
    feed.sent_before_reading = []
    evaluator = AlertEvaluator(feed=feed)
    tick(evaluator, feed, NOW, hosts(3, 99))
    tick(evaluator, feed, NOW + 30, hosts(3, 99))
    assert feed.sent_before_reading == [0, 1]


class PublishedAt(Published):
    """The feed, with the values' own timestamp set by the test."""

    ts = NOW

    def __call__(self):
        return [(*point[:3], self.ts, point[4]) for point in super().__call__()]


def test_a_group_waits_from_the_crossing_not_from_the_tick_that_read_it(rule):
    """A value that crossed 0.8 s before the tick that read it: the group's message goes
    out group_wait after the crossing, a tick earlier than counting from the tick."""
    feed = PublishedAt()
    evaluator = AlertEvaluator(feed=feed)
    feed.ts = NOW - 0.8
    tick(evaluator, feed, NOW, hosts(3, 99))
    tick(evaluator, feed, NOW + 28, hosts(3, 99))
    assert not Notification.objects.exists()
    tick(evaluator, feed, NOW + 29.2, hosts(3, 99))
    assert Notification.objects.count() == 1


def test_a_value_stamped_long_ago_cuts_the_wait_by_two_seconds_at_most(rule):
    feed = PublishedAt()
    evaluator = AlertEvaluator(feed=feed)
    feed.ts = NOW - 3600  # a backfill, or an agent whose clock is an hour behind
    tick(evaluator, feed, NOW, hosts(3, 99))
    tick(evaluator, feed, NOW + 27.5, hosts(3, 99))
    assert not Notification.objects.exists()
    tick(evaluator, feed, NOW + 28, hosts(3, 99))
    assert Notification.objects.count() == 1

"""The alert messenger: a group's message goes out when its wait ends, between ticks
and while a tick is busy reading values, not on the tick after."""

import threading
import time

import pytest

from alerts.evaluation import AlertEvaluator
from alerts.messenger import AlertMessenger
from alerts.models import AlertRule
from dashboard.models import Metric
from notifications.models import Notification


@pytest.fixture
def cpu_rule(transactional_db):
    # Transactional: the messenger sends from a thread of its own, with its own connection.
    cpu = Metric.objects.create(key="cpu", label="CPU", unit="%")
    return AlertRule.objects.create(
        metric=cpu, comparison="above", threshold=90, sustain_seconds=0, group_wait=1, group_interval=60
    )


@pytest.fixture
def messenger_of():
    started = []

    def start(evaluator):
        started.append(AlertMessenger(evaluator, look_every=0.1).start())
        return started[-1]

    yield start
    for messenger in started:
        messenger.stop(timeout=10)


def wait_for(condition, timeout=15):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class HeldFeed:
    """Published values whose reading takes until the test lets it go."""

    def __init__(self):
        self.reading = threading.Event()
        self.release = threading.Event()
        self.hold = False

    def __call__(self):
        if self.hold:
            self.reading.set()
            self.release.wait(20)
        return []


def test_it_sends_a_group_when_its_wait_ends_with_no_tick_after_it(cpu_rule, messenger_of):
    evaluator = AlertEvaluator()
    crossed = time.time()
    evaluator.evaluate({"cpu": 95}, crossed)  # the one tick: the group starts waiting 1 s
    assert not Notification.objects.exists()
    messenger_of(evaluator)
    assert wait_for(Notification.objects.exists)
    assert 1.0 <= Notification.objects.get().created_at.timestamp() - crossed < 3.0


def test_it_sends_a_due_group_while_a_tick_is_still_reading_its_values(cpu_rule, messenger_of):
    feed = HeldFeed()
    evaluator = AlertEvaluator(feed=feed)
    evaluator.evaluate({"cpu": 95}, time.time())
    messenger_of(evaluator)
    feed.hold = True
    tick = threading.Thread(target=evaluator.evaluate, args=({"cpu": 95}, time.time()))
    tick.start()
    try:
        assert feed.reading.wait(10)
        # The tick reads on; the message does not wait for it.
        assert wait_for(Notification.objects.exists)
        assert tick.is_alive()
    finally:
        feed.release.set()
        tick.join(20)
    assert Notification.objects.count() == 1


def test_it_does_not_send_before_the_wait_is_over_or_twice(cpu_rule, messenger_of):
    evaluator = AlertEvaluator()
    AlertRule.objects.filter(pk=cpu_rule.pk).update(group_wait=3)
    crossed = time.time()
    evaluator.evaluate({"cpu": 95}, crossed)
    messenger_of(evaluator)
    assert wait_for(Notification.objects.exists)
    assert Notification.objects.get().created_at.timestamp() - crossed >= 3.0
    evaluator.evaluate({"cpu": 95}, time.time())  # a tick after it: nothing new to say
    assert Notification.objects.count() == 1

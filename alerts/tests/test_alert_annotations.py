"""Alerts mark the charts: a series' alert firing and resolving each leave an annotation
on that series' chart, naming the rule and the series' labels, read back through the
annotations API as the page reads them."""

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.utils import timezone

from alerts.evaluation import AlertEvaluator
from alerts.models import AlertRule, Annotation
from dashboard import frames, selectors
from dashboard.models import Metric

NOW = int(timezone.now().timestamp())
WEB1 = 'cpu{host="web1"}'


class Published:
    def __init__(self):
        self.values = {}

    def __call__(self):
        points = []
        for host, value in self.values.items():
            points.extend(frames.points_of(frames.METRIC, frames.metric("cpu", value, NOW, {"host": host})))
        return points


@pytest.fixture
def rule(db):
    Metric.objects.create(key="cpu", label="CPU", unit="%")
    return AlertRule.objects.create(
        name="CPU hot",
        match='cpu{host=~"web.*"}',
        threshold=90,
        sustain_seconds=0,
        cooldown_seconds=0,
        group_wait=0,
        group_interval=0,
    )


def tick(evaluator, feed, at, **values):
    feed.values = values
    evaluator.evaluate({}, at)


def test_it_annotates_a_series_firing_and_resolving_on_that_series_chart(rule, alice):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    tick(evaluator, feed, NOW, web1=95, web2=50)
    (fired,) = Annotation.objects.all()
    assert fired.text == 'Fired: CPU hot (host="web1")'
    assert fired.tags == ["alert", "fired"]
    assert fired.time == datetime.fromtimestamp(NOW, tz=UTC) and fired.end is None
    # Its selector is the series itself: web1's line, not web2's.
    selector = selectors.parse(fired.match)
    assert selector.matches("cpu", {"host": "web1"})
    assert not selector.matches("cpu", {"host": "web2"})

    tick(evaluator, feed, NOW + 1, web1=96, web2=50)  # still firing: nothing new
    assert Annotation.objects.count() == 1
    tick(evaluator, feed, NOW + 60, web1=10, web2=50)
    resolved = Annotation.objects.exclude(pk=fired.pk).get()
    assert (resolved.text, resolved.tags, resolved.match) == (
        'Resolved: CPU hot (host="web1")',
        ["alert", "resolved"],
        WEB1,
    )

    # The page reads them for the chart of cpu.
    client = Client()
    client.force_login(alice)
    answer = client.get(f"/api/v1/annotations?start={NOW - 10}&end={NOW + 120}&match=cpu").json()
    texts = [note["text"] for note in answer["annotations"] if "alert" in note["tags"]]
    assert texts == ['Fired: CPU hot (host="web1")', 'Resolved: CPU hot (host="web1")']


def test_it_annotates_every_series_of_a_fleet_firing_together(rule):
    feed = Published()
    evaluator = AlertEvaluator(feed=feed)
    tick(evaluator, feed, NOW, **{f"web{n}": 99 for n in range(5)})
    assert sorted(Annotation.objects.values_list("match", flat=True)) == [
        f'cpu{{host="web{n}"}}' for n in range(5)
    ]

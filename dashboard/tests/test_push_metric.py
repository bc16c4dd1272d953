import json

import pytest

from dashboard.models import Metric
from dashboard.storage import DashboardRedisStorage

pytestmark = pytest.mark.slow


def test_it_publishes_a_metric_from_the_command_line(manage):
    storage = DashboardRedisStorage()
    before = storage.get_current_id("metrics")
    result = manage("push_metric", "orders", "42.5")
    assert result.returncode == 0, result.stderr
    [event] = storage.get_events("metrics", before)
    assert event.type == "metric"
    assert json.loads(event.data)["name"] == "orders"
    assert json.loads(event.data)["value"] == 42.5
    assert Metric.objects.get(key="orders").source == Metric.Source.CUSTOM


def test_it_publishes_a_labelled_series(manage):
    storage = DashboardRedisStorage()
    before = storage.get_current_id("metrics")
    result = manage("push_metric", "latency", "0.25", "--label", "service=checkout", "--label", "note=a=b")
    assert result.returncode == 0, result.stderr
    [event] = storage.get_events("metrics", before)
    data = json.loads(event.data)
    assert data["labels"] == {"note": "a=b", "service": "checkout"}
    assert data["series"] == 'latency{note="a=b",service="checkout"}'
    assert 'published latency{note="a=b",service="checkout"}=0.25' in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["orders", "lots"], "VALUE must be a number"),
        (["orders", "nan"], "finite"),
        (["orders", "inf"], "finite"),
        (["not a slug", "1"], "slug"),
        (["x" * 65, "1"], "at most 64"),
        (["orders", "1", "--label", "host"], "--label must be NAME=VALUE"),
        (["orders", "1", "--label", "bad-name=x"], "label name must match"),
        (["orders", "1", "--label", "__name__=x"], "reserved"),
        (["orders", "1", "--label", "host=" + "h" * 257], "at most 256"),
        (["orders", "1", "--label", "host=a", "--label", "host=b"], "each label name at most once"),
    ],
)
def test_it_exits_non_zero_with_the_problem_and_publishes_nothing(manage, args, message):
    storage = DashboardRedisStorage()
    before = storage.get_current_id("metrics")
    result = manage("push_metric", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert storage.get_current_id("metrics") == before

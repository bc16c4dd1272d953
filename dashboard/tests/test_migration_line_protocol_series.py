"""The data migration from line protocol's old `__` keys to labelled series."""

import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard import series

migration = importlib.import_module("dashboard.migrations.0007_line_protocol_series")
BEFORE = [("dashboard", "0006_series")]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("cpu__usage", ("cpu_usage", {})),
        ("cpu__usage__host__web1", ("cpu_usage", {"host": "web1"})),
        ("cpu__value__host__a", ("cpu", {"host": "a"})),
        ("disk__free__dc__eu__host__a-1", ("disk_free", {"dc": "eu", "host": "a-1"})),
        ("cpu", None),  # no parts: an ordinary name
        ("cpu__value", None),  # the old scheme wrote this line as "cpu"
        ("cpu__usage__host", None),  # odd count
        ("cpu__usage__host__a__dc__eu", None),  # tags out of order: not the old scheme
        ("cpu__usage__my-tag__a", None),  # a tag key that is no label name
        ("cpu_usage_host__a___0123456789abc", None),  # hashed: cannot be reversed
    ],
)
def test_which_keys_map_to_which_series(key, expected):
    assert migration.new_series(key) == expected


def test_the_migration_moves_history_and_metrics_and_leaves_what_it_cannot(transactional_db):
    executor = MigrationExecutor(connection)
    # Alert rules too, as they are now (they refer to metrics).
    before = BEFORE + [
        node for node in executor.loader.graph.leaf_nodes() if node[0] in ("notifications", "alerts")
    ]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Metric, MetricRollup, Series = (
        old.get_model("dashboard", m) for m in ("Metric", "MetricRollup", "Series")
    )
    (AlertRule,) = {
        rel.related_model for rel in Metric._meta.related_objects if rel.related_model.__name__ == "AlertRule"
    }
    for key in (
        "cpu__usage__host__web1",
        "cpu__usage__host__web2",
        "orders",
        "x___0123456789abc",
        "mem__used",
    ):
        Metric.objects.create(key=key, unit="%" if key.startswith("cpu") else "")
        Series.objects.create(key=key, series_id=key, name=key, labels={})
        MetricRollup.objects.create(key=key, tier=10, bucket=100, count=1, sum=2.0, min=2.0, max=2.0)
    watched = Metric.objects.get(key="mem__used")
    AlertRule.objects.create(metric=watched, threshold=1, comparison="above", level="warning")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from dashboard.models import Metric, MetricRollup, Series

    web1 = 'cpu_usage{host="web1"}'
    assert set(Metric.objects.values_list("key", flat=True)) == {
        "cpu_usage",
        "orders",
        "x___0123456789abc",
        "mem__used",
    }
    assert Metric.objects.get(key="cpu_usage").unit == "%"
    rollup_keys = set(MetricRollup.objects.values_list("key", flat=True))
    assert rollup_keys == {
        series.storage_key(web1),
        series.storage_key('cpu_usage{host="web2"}'),
        "orders",
        "x___0123456789abc",
        "mem__used",
    }
    moved = Series.objects.get(key=series.storage_key(web1))
    assert (moved.series_id, moved.name, moved.labels) == (web1, "cpu_usage", {"host": "web1"})
    assert not Series.objects.filter(key="cpu__usage__host__web1").exists()

"""History by series: rollups keyed by the series' storage key with the id beside it,
`/api/metrics/history/` keyed by series id, and `match=` narrowing it."""

import time

import pytest

from dashboard import frames, rollups, series
from dashboard.live import publish_frame, send
from dashboard.models import MetricRollup, Series

URL = "/api/metrics/history/"
WEB1 = 'cpu{dc="eu",host="web1"}'
WEB2 = 'cpu{dc="eu",host="web2"}'
LONG = 'cpu{dc="us",host="' + "x" * 256 + '",rack="' + "y" * 256 + '"}'


def metric_event(series_id, value, ts):
    name, labels = series.parse_series_id(series_id)
    return send("metrics", "metric", frames.metric(name, value, ts, labels))


@pytest.fixture
def as_alice(client, alice, redis_url):
    client.force_login(alice)
    return client


def test_raw_history_is_keyed_by_series_id_and_match_selects(as_alice):
    now = time.time()
    metric_event(WEB1, 1, now - 30)
    metric_event(WEB2, 2, now - 20)
    metric_event("orders", 5, now - 10)
    publish_frame(1, now, {"cpu": 3.0}, host="db1")

    body = as_alice.get(URL).json()
    assert body["step"] == 0
    assert body["series"] == {
        WEB1: [[now - 30, 1, 1, 1]],
        WEB2: [[now - 20, 2, 2, 2]],
        "orders": [[now - 10, 5, 5, 5]],
        'cpu{host="db1"}': [[now, 3.0, 3.0, 3.0]],
    }
    web1 = as_alice.get(URL, {"match": 'cpu{host="web1"}'}).json()["series"]
    assert web1 == {WEB1: [[now - 30, 1, 1, 1]]}
    union = as_alice.get(URL, {"match": ["orders", '{host=~"web2"}']}).json()["series"]
    assert set(union) == {WEB2, "orders"}


@pytest.mark.parametrize("match", ['cpu{host=~"("}', "{}", "cpu{"])
def test_a_bad_selector_is_400(as_alice, match):
    response = as_alice.get(URL, {"match": match})
    assert response.status_code == 400
    assert response.json()["error"]


def test_the_writer_keys_rollups_by_storage_key_and_registers_the_id(transactional_db, redis_url):
    now = time.time()
    metric_event(WEB1, 4, now - 5)
    metric_event(LONG, 6, now - 5)
    publish_frame(1, now - 5, {"cpu": 1.0}, host="")  # a frame stored before hosts were named
    rollups.write_pending()

    keys = set(MetricRollup.objects.values_list("key", flat=True))
    assert keys == {series.storage_key(WEB1), series.storage_key(LONG), "cpu"}
    assert all(len(key) <= series.STORAGE_KEY_MAX_LENGTH for key in keys)
    stored = {row.key: (row.series_id, row.name, row.labels) for row in Series.objects.all()}
    assert stored[series.storage_key(WEB1)] == (WEB1, "cpu", {"dc": "eu", "host": "web1"})
    assert stored[series.storage_key(LONG)][0] == LONG
    assert stored["cpu"] == ("cpu", "cpu", {})


def test_bucketed_history_names_series_by_id_and_match_narrows_the_rollups(as_alice):
    # Two days ago: only the rollups know it (the event store keeps a day).
    start = time.time() - 2 * 86400
    step = rollups.tiers()[0][0]
    rows = []
    for series_id, value in ((WEB1, 1.0), (WEB2, 2.0), (LONG, 3.0), ("orders", 4.0)):
        rollups.register_series({series_id: series.storage_key(series_id)})
        rows += [
            (series.storage_key(series_id), rollups.bucket_of(start + i * step, step), 1, value, value, value)
            for i in range(2000)
        ]
    rollups.upsert(step, rows)
    window = {"start": f"{start:.0f}", "end": f"{start + 2000 * step:.0f}"}

    every = as_alice.get(URL, window).json()
    assert every["step"] > 0
    assert set(every["series"]) == {WEB1, WEB2, LONG, "orders"}
    assert {point[1] for point in every["series"][LONG]} == {3.0}

    narrowed = as_alice.get(URL, {**window, "match": '{dc="us"}'}).json()
    assert set(narrowed["series"]) == {LONG}
    assert set(as_alice.get(URL, {**window, "match": "orders"}).json()["series"]) == {"orders"}
    assert as_alice.get(URL, {**window, "match": "nothing"}).json()["series"] == {}


def test_prune_forgets_series_without_history(transactional_db):
    rollups.register_series({WEB1: series.storage_key(WEB1), "orders": "orders"})
    rollups.upsert(rollups.tiers()[0][0], [("orders", rollups.bucket_of(time.time(), 10), 1, 1.0, 1.0, 1.0)])
    deleted = rollups.prune()
    assert deleted["series"] == 1
    assert list(Series.objects.values_list("series_id", flat=True)) == ["orders"]


def test_a_token_with_the_read_scope_reads_history(client, transactional_db, redis_url):
    from api.models import ApiToken

    now = time.time()
    metric_event(WEB1, 1, now - 30)
    _token, reader = ApiToken.create("grafana", read=True)
    _token, pusher = ApiToken.create("pusher", metric_patterns=["*"])

    answer = client.get(URL, {"match": "cpu"}, headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 200
    assert answer.json()["series"] == {WEB1: [[now - 30, 1, 1, 1]]}
    refused = client.get(URL, headers={"Authorization": f"Bearer {pusher}"})
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    unknown = client.get(URL, headers={"Authorization": "Bearer ldt_nope"})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "unauthenticated")


@pytest.mark.parametrize(("scan_limit", "walked"), [(20, False), (100, True)])
def test_the_store_is_walked_for_raw_values_only_when_the_window_fits_the_walk(
    as_alice, monkeypatch, scan_limit, walked
):
    # 60 values in the last 10 minutes: a walk limited to 20 events cannot reach the
    # window's start (its values come from the rollups without reading 20 events for
    # nothing); one allowed 100 can, and answers raw values.
    from dashboard.storage import DashboardRedisStorage
    from dashboard.stream import history

    now = time.time()
    for i in range(60):
        metric_event((WEB1, WEB2, "orders")[i % 3], i, now - 600 + 10 * i)
    rollups.write_pending()
    monkeypatch.setattr(history, "RAW_SCAN_LIMIT", scan_limit)
    read = []
    original = DashboardRedisStorage.read_back

    def counted(self, *args, **kwargs):
        for event in original(self, *args, **kwargs):
            read.append(event.id)
            yield event

    monkeypatch.setattr(DashboardRedisStorage, "read_back", counted)
    body = as_alice.get(URL, {"minutes": 60, "match": 'cpu{host="web1"}'}).json()

    assert list(body["series"]) == [WEB1]
    if walked:
        assert body["step"] == 0
        assert [point[1] for point in body["series"][WEB1]] == list(range(0, 60, 3))
    else:
        assert body["step"] > 0
        assert len(read) <= 1, f"read {len(read)} events to answer from the rollups"


def test_history_by_exact_labels_decodes_only_the_series_carrying_them(transactional_db):
    from django.db import connection

    from dashboard import selectors

    ids = [
        series.format_id(name, {"dc": dc, "host": f"h{i}"})
        for name in ("cpu", "mem")
        for i, dc in [(i, ("eu", "us")[i % 2]) for i in range(20)]
    ]
    ids += ["cpu", 'cpu{role="web"}']
    rollups.register_series({series_id: series.storage_key(series_id) for series_id in ids})
    rollups.forget_registered_series()
    cases = [
        ['{host="h7"}'],
        ['cpu{dc="eu",host=~"h1.*"}'],
        ['cpu{host=""}'],
        ['mem{dc!="eu"}', '{host="h3"}'],
        ['{role="web"}', "cpu"],
    ]
    for texts in cases:
        selection = selectors.selection(texts)
        rollups.forget_registered_series()
        found = {Series.objects.get(key=key).series_id for key in rollups.matching_keys(selection)}
        expected = {i for i in ids if selection.matches(*series.parse_series_id(i))}
        assert found == expected, texts
        if connection.vendor == "postgresql" and texts == ['{host="h7"}']:
            # The database narrowed the rows: only h7's two series were decoded here.
            assert len(rollups._described) == 2

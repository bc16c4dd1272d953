"""`/api/v1/series` and `/api/v1/labels/NAME/values`: answers, selectors, who may read,
and the cardinality limits as the ingest API answers them."""

import time

import httpx
import pytest
from django.test import Client, override_settings

from api.models import ApiToken
from dashboard import series, seriesindex, telemetry
from dashboard.live import publish_metric
from dashboard.storage import DashboardRedisStorage

T = int(time.time()) - 60


def labelled(name, value, ts, **labels):
    labels = series.validate_labels(labels)
    return (series.format_id(name, labels), name, labels, ts, value)


@pytest.fixture
def fleet(transactional_db, redis_url):
    seriesindex.admit(
        [
            labelled("cpu", 10, T, host="web1", dc="eu"),
            labelled("cpu", 20, T + 1, host="web2", dc="eu"),
            labelled("cpu", 30, T + 2, host="db1", dc="us"),
            labelled("mem", 40, T, host="web1", dc="eu"),
        ]
    )
    publish_metric("orders", 5, ts=T)


@pytest.fixture
def reader(fleet):
    _token, raw = ApiToken.create("grafana", read=True)
    return {"Authorization": f"Bearer {raw}"}


def get(path, headers=None, client=None, **params):
    return (client or Client()).get(path, params, headers=headers or {})


def error_of(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail"} and body["error"] == code
    return body["detail"]


def test_it_lists_every_live_series_with_labels_and_last_value(reader):
    body = get("/api/v1/series", reader).json()
    assert body == {
        "series": [
            {
                "id": 'cpu{dc="eu",host="web1"}',
                "name": "cpu",
                "labels": {"dc": "eu", "host": "web1"},
                "last": [T, 10],
            },
            {
                "id": 'cpu{dc="eu",host="web2"}',
                "name": "cpu",
                "labels": {"dc": "eu", "host": "web2"},
                "last": [T + 1, 20],
            },
            {
                "id": 'cpu{dc="us",host="db1"}',
                "name": "cpu",
                "labels": {"dc": "us", "host": "db1"},
                "last": [T + 2, 30],
            },
            {
                "id": 'mem{dc="eu",host="web1"}',
                "name": "mem",
                "labels": {"dc": "eu", "host": "web1"},
                "last": [T, 40],
            },
            {"id": "orders", "name": "orders", "labels": {}, "last": [T, 5]},
        ],
        "truncated": False,
    }


def test_match_selects_and_repeats_as_a_union(reader):
    one = get("/api/v1/series", reader, match='cpu{host=~"web.*"}').json()["series"]
    assert [s["id"] for s in one] == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}']
    both = get("/api/v1/series", reader, match=['{dc="us"}', "orders"]).json()["series"]
    assert [s["id"] for s in both] == ['cpu{dc="us",host="db1"}', "orders"]


def test_label_values(reader):
    assert get("/api/v1/labels/host/values", reader).json() == {"values": ["db1", "web1", "web2"]}
    assert get("/api/v1/labels/host/values", reader, match="mem").json() == {"values": ["web1"]}
    assert get("/api/v1/labels/__name__/values", reader).json() == {"values": ["cpu", "mem", "orders"]}
    assert get("/api/v1/labels/nothing/values", reader).json() == {"values": []}


@pytest.mark.parametrize(
    "match",
    ['cpu{host=~"("}', "{}", 'cpu{host="a"', "x" * 20000, '{host=~".*"}'],
)
def test_a_bad_selector_is_400_invalid(reader, match):
    assert error_of(get("/api/v1/series", reader, match=match), 400, "invalid")
    assert error_of(get("/api/v1/labels/host/values", reader, match=match), 400, "invalid")


def test_a_bad_label_name_is_400_invalid(reader):
    assert "label name" in error_of(get("/api/v1/labels/__x/values", reader), 400, "invalid")
    assert "label name" in error_of(get("/api/v1/labels/1a/values", reader), 400, "invalid")


@pytest.mark.parametrize("path", ["/api/v1/series", "/api/v1/labels/host/values"])
def test_who_may_read(fleet, client, alice, charlie, path):
    assert error_of(get(path), 401, "unauthenticated")
    _token, pusher = ApiToken.create("pusher", metric_patterns=["*"], scrape=True)
    assert "read scope" in error_of(get(path, {"Authorization": f"Bearer {pusher}"}), 403, "forbidden")
    assert error_of(get(path, {"Authorization": "Bearer ldt_nope"}), 401, "unauthenticated")
    client.force_login(charlie)
    assert "dashboard.view_metric" in error_of(get(path, client=client), 403, "forbidden")
    client.force_login(alice)
    assert get(path, client=client).status_code == 200


def test_create_token_read(manage, db):
    result = manage("create_token", "dash", "--read")
    assert result.returncode == 0, result.stderr
    assert "read" in result.stdout
    token = ApiToken.objects.get(name="dash")
    assert (token.read, token.scopes) == (True, ["read"])


@override_settings(MAX_SERIES=6)
def test_ingest_past_a_limit_is_400_too_many_series_and_publishes_nothing(fleet):
    _token, raw = ApiToken.create("shipper", metric_patterns=["*"])
    storage = DashboardRedisStorage()
    mark = storage.get_current_id("metrics")
    response = Client().post(
        "/api/v1/metrics",
        {
            "points": [
                {"name": "orders", "value": 1},
                {"name": "new1", "value": 1},
                {"name": "new2", "value": 1},
            ]
        },
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    detail = error_of(response, 400, "too_many_series")
    assert "2 new series would pass MAX_SERIES (6; 5 live)" in detail
    assert storage.get_current_id("metrics") == mark
    telemetry.flush()
    counts = DashboardRedisStorage().redis.hgetall(telemetry.counters_key())
    assert int(counts[b"ingest_refusals|too_many_series"]) == 1
    assert int(counts[b"series_refusals|MAX_SERIES"]) == 3


def test_metrics_shows_live_series_and_refusals(fleet):
    _token, raw = ApiToken.create("prometheus", scrape=True)
    telemetry.count_series_refused("MAX_SERIES", 3)
    telemetry.flush()
    text = Client().get("/metrics", headers={"Authorization": f"Bearer {raw}"}).content.decode()
    assert "livedash_live_series 5.0" in text
    assert 'livedash_series_refusals_total{limit="MAX_SERIES"} 3.0' in text


def test_real_workers_answer_the_series_api(web_workers, reader):
    (url,) = web_workers(1)
    response = httpx.get(f"{url}/api/v1/series", params={"match": "mem"}, headers=reader, timeout=10)
    assert response.status_code == 200
    assert [s["id"] for s in response.json()["series"]] == ['mem{dc="eu",host="web1"}']


@override_settings(MAX_SERIES_PER_METRIC=3)
def test_labelled_points_past_the_per_metric_limit_are_refused_over_json_and_line_protocol(fleet):
    _token, raw = ApiToken.create("telegraf", metric_patterns=["*"])
    headers = {"Authorization": f"Bearer {raw}"}
    storage = DashboardRedisStorage()
    mark = storage.get_current_id("metrics")
    points = [{"name": "cpu", "value": 1, "labels": {"host": "new"}}, {"name": "orders", "value": 1}]
    response = Client().post(
        "/api/v1/metrics", {"points": points}, content_type="application/json", headers=headers
    )
    assert "'cpu'" in error_of(response, 400, "too_many_series")
    lines = "disk,host=a free=1\ndisk,host=b free=1\ndisk,host=c free=1\ndisk,host=d free=1\n"
    response = Client().post("/api/v2/write", lines, content_type="text/plain", headers=headers)
    assert "'disk_free'" in error_of(response, 400, "too_many_series")
    assert storage.get_current_id("metrics") == mark
    # Within the limit it goes through, and the series API lists it.
    response = Client().post("/api/v2/write", lines[:-19], content_type="text/plain", headers=headers)
    assert response.status_code == 204, response.content
    reader = ApiToken.create("reader", read=True)[1]
    listed = get("/api/v1/series", {"Authorization": f"Bearer {reader}"}, match="disk_free").json()
    assert [s["id"] for s in listed["series"]] == [f'disk_free{{host="{h}"}}' for h in "abc"]


def test_two_workers_together_never_pass_the_limit(web_workers, transactional_db, redis_url):
    from concurrent.futures import ThreadPoolExecutor

    urls = web_workers(2, env={"MAX_SERIES": "30", "API_TOKEN_REQUESTS_PER_SECOND": "10000"})
    _token, raw = ApiToken.create("racer", metric_patterns=["*"])
    headers = {"Authorization": f"Bearer {raw}"}

    def push(i):
        point = {"name": "race", "value": 1, "labels": {"i": str(i)}}
        response = httpx.post(f"{urls[i % 2]}/api/v1/metrics", json=point, headers=headers, timeout=20)
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(push, range(80)))

    assert sorted(set(answers)) == [202, 400]
    assert answers.count(202) == 30
    assert seriesindex.live_count() == 30

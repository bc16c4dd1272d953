"""The ingest and notify endpoints in-process: every answer the contract lists, and
nothing published whenever a request is refused."""

import gzip
import json
import time

import pytest
from django.test import Client

from api.models import ApiToken
from dashboard.models import Metric
from dashboard.storage import DashboardRedisStorage
from notifications.models import Notification

# A recent second: published timestamps must be within what the history keeps.
T = int(time.time()) - 3600


class Api:
    def __init__(self, raw):
        self.raw = raw
        self.client = Client()
        self.storage = DashboardRedisStorage()
        self.mark = self.storage.get_current_id("metrics")

    def post(self, path, body, content_type="application/json", token=True, **headers):
        if not isinstance(body, str | bytes):
            body = json.dumps(body)
        if token:
            headers.setdefault("Authorization", f"Bearer {self.raw}")
        return self.client.post(path, data=body, content_type=content_type, headers=headers)

    def metrics(self, body, **kwargs):
        return self.post("/api/v1/metrics", body, **kwargs)

    def write(self, body, query="", content_type="text/plain", **kwargs):
        return self.post(f"/api/v2/write{query}", body, content_type=content_type, **kwargs)

    def published(self):
        events = self.storage.get_events("metrics", self.mark, limit=100_000)
        return [json.loads(e.data) for e in events if e.type == "metric"]


def error_of(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code
    assert set(body) == {"error", "detail"}
    return body["detail"]


@pytest.fixture
def api(transactional_db, redis_url):
    _token, raw = ApiToken.create("shipper", metric_patterns=["*"], notify=True)
    return Api(raw)


def test_it_accepts_one_point_and_publishes_it_as_publish_metric_does(api):
    response = api.metrics({"name": "orders", "value": 3, "ts": T + 0.5})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    assert api.published() == [
        {"name": "orders", "labels": {}, "series": "orders", "value": 3, "ts": T + 0.5}
    ]
    assert Metric.objects.get(key="orders").source == Metric.Source.CUSTOM


def test_it_accepts_a_batch_in_order_and_stamps_missing_times(api):
    points = [{"name": f"m{i % 3}", "value": i} for i in range(10)]
    response = api.metrics({"points": points}, content_type="application/json; charset=utf-8")
    assert response.json() == {"accepted": 10}
    published = api.published()
    assert [(p["name"], p["value"]) for p in published] == [(p["name"], p["value"]) for p in points]
    assert all(isinstance(p["ts"], float) for p in published)
    assert set(Metric.objects.values_list("key", flat=True)) >= {"m0", "m1", "m2"}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"points": [{"name": "ok", "value": 1}, {"name": "bad name", "value": 2}]}, "points[1]"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": "2"}]}, "points[1].value"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": True}]}, "points[1].value"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": 10**400}]}, "points[1].value"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": 1, "unit": "s"}]}, "points[1].unit"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok"}]}, "points[1].value"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "x" * 65, "value": 1}]}, "points[1]"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ünïcode", "value": 1}]}, "points[1]"),
        ({"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": 1, "ts": "now"}]}, "points[1].ts"),
        ({"name": "ok", "value": [1]}, "value"),
        ({"points": "all"}, "points"),
        ([{"name": "ok", "value": 1}], "the body"),
    ],
)
def test_one_bad_point_refuses_the_whole_request_naming_it(api, body, where):
    detail = error_of(api.metrics(body), 400, "invalid")
    assert detail.startswith(where), detail
    assert api.published() == []
    assert not Metric.objects.filter(key="ok").exists()


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "ok", "value": NaN}',
        '{"name": "ok", "value": Infinity}',
        '{"name": "ok", "value": 1e999}',
        '{"name": "ok", "value": 1' + "0" * 5000 + "}",
        '{"name": "ok", "value": 1',
        "[" * 100_000 + "]" * 100_000,
        '{"points": [' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]}",
        b'{"name": "ok", "value": 1, "ts": "\xff"}',
        " ",
    ],
    ids=[
        "nan",
        "infinity",
        "huge-float",
        "huge-int",
        "truncated",
        "deep-list",
        "deep-object",
        "not-utf8",
        "blank",
    ],
)
def test_hostile_json_gets_a_clear_400_and_publishes_nothing(api, body):
    detail = error_of(api.metrics(body), 400, "invalid")
    assert detail
    assert api.published() == []


def test_it_answers_401_with_a_challenge(api):
    for headers in ({"token": False}, {"Authorization": "Bearer ldt_00000000_" + "x" * 43}):
        response = api.metrics({"name": "ok", "value": 1}, **headers)
        error_of(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert api.published() == []


def test_a_browser_session_alone_gets_nothing(api, client, alice):
    client.force_login(alice)
    response = client.post("/api/v1/metrics", {"name": "ok", "value": 1}, content_type="application/json")
    error_of(response, 401, "unauthenticated")
    assert api.published() == []


def test_it_answers_403_naming_the_scope_or_the_metric(api):
    _token, notify_only = ApiToken.create("notifier", notify=True)
    detail = error_of(
        api.metrics({"name": "ok", "value": 1}, Authorization=f"Token {notify_only}"), 403, "forbidden"
    )
    assert "metrics scope" in detail
    _token, app_only = ApiToken.create("app", metric_patterns=["app_*"])
    body = {"points": [{"name": "app_orders", "value": 1}, {"name": "cpu", "value": 2}]}
    detail = error_of(api.metrics(body, Authorization=f"Bearer {app_only}"), 403, "forbidden")
    assert detail == "points[1]: this token may not push metric 'cpu'"
    detail = error_of(
        api.write("app_x value=1\ncpu value=2", Authorization=f"Token {app_only}"), 403, "forbidden"
    )
    assert detail == "line 2: this token may not push metric 'cpu'"
    detail = error_of(
        api.post("/api/v1/notifications", {"title": "t", "all": True}, Authorization=f"Bearer {app_only}"),
        403,
        "forbidden",
    )
    assert "notify scope" in detail
    assert api.published() == []


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_the_json_endpoints_answer_415_to_other_media_types(api, content_type):
    detail = error_of(
        api.metrics('{"name": "ok", "value": 1}', content_type=content_type), 415, "unsupported_media_type"
    )
    assert "application/json" in detail
    error_of(
        api.post("/api/v1/notifications", {"title": "t", "all": True}, content_type=content_type),
        415,
        "unsupported_media_type",
    )
    assert api.published() == []


def test_line_protocol_refuses_json_and_unknown_encodings(api):
    error_of(api.write("cpu value=1", content_type="application/json"), 415, "unsupported_media_type")
    detail = error_of(
        api.write("cpu value=1", HTTP_CONTENT_ENCODING="br", **{"Content-Encoding": "br"}),
        415,
        "unsupported_media_type",
    )
    assert "gzip" in detail
    assert api.published() == []


def test_line_protocol_is_published_with_its_timestamps_and_answers_204(api):
    body = f"cpu,host=web1 usage_idle=97.5,usage_user=2i {T}123\nload value=0.5 {T + 1}000\n"
    response = api.write(body, query="?org=any&bucket=thing&precision=ms")
    assert response.status_code == 204, response.content
    assert response.content == b""
    web1 = {"host": "web1"}
    assert api.published() == [
        {
            "name": "cpu_usage_idle",
            "labels": web1,
            "series": 'cpu_usage_idle{host="web1"}',
            "value": 97.5,
            "ts": (T * 1000 + 123) / 1000,
        },
        {
            "name": "cpu_usage_user",
            "labels": web1,
            "series": 'cpu_usage_user{host="web1"}',
            "value": 2,
            "ts": (T * 1000 + 123) / 1000,
        },
        {"name": "load", "labels": {}, "series": "load", "value": 0.5, "ts": T + 1.0},
    ]
    assert set(Metric.objects.values_list("key", flat=True)) >= {"cpu_usage_idle", "cpu_usage_user", "load"}


def test_line_protocol_maps_measurement_field_and_tags_to_a_series(api):
    body = (
        "deploys,env=prod,app=shop value=1\n"
        'http,path=/a\\ b,method=GET duration=0.25,status="ok"\n'
        "disk,host=db1,device=sda used=5i,free=7i\n"
    )
    assert api.write(body).status_code == 204
    assert [p["series"] for p in api.published()] == [
        'deploys{app="shop",env="prod"}',
        'http_duration{method="GET",path="/a b"}',
        'disk_free{device="sda",host="db1"}',
        'disk_used{device="sda",host="db1"}',
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("ok value=1\nmy.metric value=1\n", "metric name must be a slug"),
        ("ok value=1\ncpu,ho-st=a value=1\n", "label name must match"),
        ("ok value=1\ncpu,__name__=a value=1\n", "reserved"),
        ("ok value=1\ncpu,host=" + "h" * 257 + " value=1\n", "at most 256 characters"),
        ("ok value=1\ncpu," + ",".join(f"t{i}=v" for i in range(17)) + " value=1\n", "at most 16 labels"),
        ("ok value=1\n" + "m" * 60 + " field=1\n", "at most 64 characters"),
    ],
)
def test_line_protocol_refuses_a_name_or_label_against_the_rules_by_its_line(api, problem, body):
    detail = error_of(api.write(body), 400, "invalid")
    assert detail.startswith("line 2: ") and problem in detail
    assert api.published() == []


def test_json_points_carry_labels(api):
    response = api.metrics(
        {
            "points": [
                {"name": "latency", "value": 0.1, "labels": {"service": "checkout", "region": "eu"}},
                {"name": "latency", "value": 0.2, "labels": {}},
                {"name": "latency", "value": 0.3},
            ]
        }
    )
    assert response.json() == {"accepted": 3}
    assert [(p["series"], p["labels"]) for p in api.published()] == [
        ('latency{region="eu",service="checkout"}', {"region": "eu", "service": "checkout"}),
        ("latency", {}),
        ("latency", {}),
    ]
    assert Metric.objects.filter(key="latency").count() == 1


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"1x": "a"}, "label name must match"),
        ({"__name__": "a"}, "reserved"),
        ({"host": 3}, "label 'host': value must be a string"),
        ({"host": "v" * 257}, "label 'host': value must be at most 256 characters"),
        ({f"l{i}": "v" for i in range(17)}, "at most 16 labels"),
        (["host"], "valid dictionary"),
    ],
)
def test_json_labels_against_the_rules_are_invalid_naming_the_point(api, labels, problem):
    body = {"points": [{"name": "ok", "value": 1}, {"name": "ok", "value": 1, "labels": labels}]}
    detail = error_of(api.metrics(body), 400, "invalid")
    assert detail.startswith("points[1]") and problem in detail, detail
    assert api.published() == []


def test_token_patterns_apply_to_the_name_not_the_labels(transactional_db, redis_url):
    _token, raw = ApiToken.create("apps", metric_patterns=["app_*"])
    api = Api(raw)
    ok = {"name": "app_orders", "value": 1, "labels": {"host": "cpu"}}
    assert api.metrics(ok).status_code == 202
    detail = error_of(api.metrics({"name": "cpu", "value": 1, "labels": {"app": "app_x"}}), 403, "forbidden")
    assert "'cpu'" in detail
    detail = error_of(api.write("cpu,app=app_x usage=1"), 403, "forbidden")
    assert "line 1" in detail and "'cpu_usage'" in detail
    assert [p["series"] for p in api.published()] == ['app_orders{host="cpu"}']


def test_line_protocol_errors_name_the_line_and_publish_nothing(api):
    detail = error_of(api.write("cpu value=1\ncpu value=2\ncpu value=oops\n"), 400, "invalid")
    assert detail.startswith("line 3: ")
    detail = error_of(api.write("cpu value=1", query="?precision=h"), 400, "invalid")
    assert "precision" in detail
    assert api.published() == []


def test_gzip_bodies_are_accepted_on_both_ingest_endpoints(api):
    response = api.write(gzip.compress(b"gz value=1\n"), **{"Content-Encoding": "gzip"})
    assert response.status_code == 204, response.content
    response = api.metrics(gzip.compress(b'{"name": "gz", "value": 2}'), **{"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.content
    assert [p["value"] for p in api.published()] == [1, 2]


def test_corrupt_or_truncated_gzip_is_invalid(api):
    whole = gzip.compress(b"gz value=1\n" * 100)
    error_of(api.write(whole[: len(whole) // 2], **{"Content-Encoding": "gzip"}), 400, "invalid")
    error_of(api.write(b"not gzip at all", **{"Content-Encoding": "gzip"}), 400, "invalid")
    assert api.published() == []


def test_the_body_limit_holds_before_and_after_decompression(api, settings):
    settings.API_MAX_BODY_BYTES = 1000
    line = b"cpu value=1\n"
    at_limit = line * (1000 // len(line)) + b"\n" * (1000 % len(line))
    assert len(at_limit) == 1000
    assert api.write(at_limit).status_code == 204
    detail = error_of(api.write(at_limit + b"\n"), 413, "too_large")
    assert "API_MAX_BODY_BYTES (1000 bytes)" in detail
    # A small gzip that inflates past the limit is stopped while inflating.
    bomb = gzip.compress(b"\n" * 500_000)
    assert len(bomb) < 1000
    detail = error_of(api.write(bomb, **{"Content-Encoding": "gzip"}), 413, "too_large")
    assert "after decompression" in detail
    assert len(api.published()) == at_limit.count(line)


def test_the_point_limit_per_request(api, settings):
    settings.API_MAX_POINTS = 5
    response = api.metrics({"points": [{"name": "p", "value": i} for i in range(5)]})
    assert response.json() == {"accepted": 5}
    mark = len(api.published())
    detail = error_of(
        api.metrics({"points": [{"name": "p", "value": i} for i in range(6)]}), 413, "too_large"
    )
    assert "API_MAX_POINTS (5 per request)" in detail
    detail = error_of(api.write("p a=1,b=2,c=3\np d=4,e=5,f=6"), 413, "too_large")
    assert "6 points" in detail
    assert len(api.published()) == mark


def test_the_per_token_request_rate_answers_429_with_retry_after(api, settings):
    settings.API_TOKEN_REQUESTS_PER_SECOND = 3
    answers = [api.metrics({"name": "r", "value": i}) for i in range(12)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, [r.status_code for r in answers]
    assert 1 <= int(limited[0]["Retry-After"]) <= 1
    error_of(limited[0], 429, "rate_limited")
    assert len(api.published()) == 12 - len(limited)
    # Another token has its own allowance.
    _token, other = ApiToken.create("other", metric_patterns=["*"])
    assert api.metrics({"name": "r", "value": 1}, Authorization=f"Bearer {other}").status_code == 202


def test_the_per_token_point_rate_answers_429(api, settings):
    settings.API_TOKEN_POINTS_PER_SECOND = 10
    first = api.metrics({"points": [{"name": "r", "value": i} for i in range(10)]})
    second = api.metrics({"points": [{"name": "r", "value": i} for i in range(10)]})
    statuses = sorted([first.status_code, second.status_code])
    # Both land in one second (then the second is refused) or straddle two (both pass).
    assert statuses in ([202, 429], [202, 202])
    detail = error_of(
        api.metrics({"points": [{"name": "r", "value": i} for i in range(11)]}), 413, "too_large"
    )
    assert "API_TOKEN_POINTS_PER_SECOND" in detail
    assert len(api.published()) == 10 * statuses.count(202)


def test_notifications_are_sent_to_one_audience(api, alice):
    response = api.post(
        "/api/v1/notifications", {"title": "Deployed", "body": "v2", "level": "success", "user": "alice"}
    )
    assert response.status_code == 201, response.content
    notification = Notification.objects.get(pk=response.json()["id"])
    assert (notification.title, notification.body, notification.level) == ("Deployed", "v2", "success")
    assert notification.recipient_user == alice
    response = api.post("/api/v1/notifications", {"title": "All hands", "all": True})
    assert Notification.objects.get(pk=response.json()["id"]).recipient_user is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"title": "t"}, "exactly one"),
        ({"title": "t", "user": "alice", "all": True}, "exactly one"),
        ({"title": "t", "all": False}, "exactly one"),
        ({"title": "t", "user": "nobody"}, "unknown user"),
        ({"title": "t", "group": "nobody"}, "unknown group"),
        ({"title": "", "all": True}, "title"),
        ({"title": "t", "all": True, "level": "panic"}, "level"),
        ({"title": "t", "all": True, "link": "javascript:alert(1)"}, "link"),
        ({"title": 5, "all": True}, "title"),
    ],
)
def test_bad_notifications_get_400_and_store_nothing(api, alice, body, words):
    detail = error_of(api.post("/api/v1/notifications", body), 400, "invalid")
    assert words in detail
    assert not Notification.objects.exists()


def test_the_docs_are_for_logged_in_users(client, alice, db):
    assert client.get("/api/v1/docs").status_code == 302
    assert client.get("/api/v1/openapi.json").status_code == 302
    client.force_login(alice)
    schema = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/metrics", "/api/v2/write", "/api/v1/notifications"} <= set(schema["paths"])
    page = client.get("/api/v1/docs").content.decode()
    assert "swagger" in page.lower()
    assert "cdn" not in page.lower()


@pytest.mark.parametrize("path", ["/api/v1/metrics", "/api/v2/write", "/api/v1/notifications"])
def test_a_wrong_method_gets_the_api_json_error_naming_the_allowed_one(api, path):
    response = api.client.get(path, headers={"Authorization": f"Bearer {api.raw}"})
    detail = error_of(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert "POST" in detail


def test_redis_away_is_a_503_to_retry_not_a_server_error(api, monkeypatch):
    """Redis restarting or failing over to its replica (docs/operations.md)."""
    import redis

    from api import ratelimit

    async def away(*args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(ratelimit, "take", away)
    response = api.metrics({"name": "orders", "value": 3})
    assert "Redis" in error_of(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "1"
    assert api.published() == []

"""/metrics: the Prometheus exposition of livedash itself, behind an API token with the
scrape scope, summed over every worker (real daphne workers, a real command process)."""

import asyncio
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.models import ApiToken
from conftest import ROOT
from dashboard import telemetry
from tests.realclients import EventStream, wait_until


def samples(text):
    """{(sample name, frozenset of labels): value} of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())))


@pytest.fixture
def scrape_token(db):
    return ApiToken.create("prometheus", scrape=True)[1]


def test_it_refuses_a_request_without_a_token_with_401_and_a_challenge(client, redis_url, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"livedash_" not in response.content


def test_it_refuses_a_token_without_the_scrape_scope_with_403(client, redis_url, db):
    _, raw = ApiToken.create("ingest", metric_patterns=["*"], notify=True)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


def test_it_refuses_a_revoked_token(client, redis_url, db):
    row, raw = ApiToken.create("old", scrape=True)
    row.revoke()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401


def test_it_answers_the_prometheus_text_format_with_livedash_names(client, redis_url, scrape_token):
    telemetry.count_ingest(3)
    telemetry.count_ingest_refused("invalid")
    telemetry.count_delivery("sent", channel="webhook")
    telemetry.flush()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Token {scrape_token}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.content.decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names and all(name.startswith("livedash_") for name in names)
    assert {
        "livedash_events_published",
        "livedash_events_delivered",
        "livedash_stream_resets",
        "livedash_stream_drops",
        "livedash_catchup_reads",
        "livedash_ingest_points",
        "livedash_ingest_refusals",
        "livedash_notification_deliveries",
        "livedash_open_connections",
    } <= names
    assert value(text, "livedash_ingest_points_total") >= 3
    assert value(text, "livedash_ingest_refusals_total", reason="invalid") >= 1
    assert value(text, "livedash_notification_deliveries_total", channel="webhook", outcome="sent") >= 1


def test_a_count_that_cannot_reach_redis_is_kept_for_later(redis_url, monkeypatch):
    import redis

    from dashboard.redis import get_sync_client

    def down(*args, **kwargs):
        raise redis.ConnectionError("refused")

    client = get_sync_client()
    telemetry.flush()
    before = int(client.hget(telemetry.counters_key(), "stream_resets") or 0)
    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", down)
        telemetry.count("stream_resets", 2)
        telemetry.flush()
    telemetry.flush()
    assert int(client.hget(telemetry.counters_key(), "stream_resets")) == before + 2


def test_a_hot_counter_reports_each_addition_once_even_across_a_failed_flush(redis_url, monkeypatch):
    import redis

    from dashboard.redis import get_sync_client
    from dashboard.stream.stream import DELIVERED

    def down(*args, **kwargs):
        raise redis.ConnectionError("refused")

    client = get_sync_client()
    telemetry.flush()
    before = int(client.hget(telemetry.counters_key(), "events_delivered") or 0)
    DELIVERED.value += 5
    telemetry.flush()
    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", down)
        DELIVERED.value += 2
        telemetry.flush()
    telemetry.flush()
    telemetry.flush()
    assert int(client.hget(telemetry.counters_key(), "events_delivered")) == before + 7


def test_publish_metric_counts_what_it_accepts_and_refuses(redis_url, db):
    from dashboard.live import publish_metric
    from dashboard.redis import get_sync_client

    client = get_sync_client()
    telemetry.flush()

    def counted(field):
        return int(client.hget(telemetry.counters_key(), field) or 0)

    accepted, refused = counted("ingest_points"), counted("ingest_refusals|invalid")
    publish_metric("counted", 1)
    with pytest.raises(ValueError):
        publish_metric("not a slug", 1)
    telemetry.flush()
    assert (counted("ingest_points"), counted("ingest_refusals|invalid")) == (accepted + 1, refused + 1)


def test_it_answers_503_when_redis_is_away(client, scrape_token, settings):
    from dashboard.redis import get_sync_client

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    get_sync_client.cache_clear()
    try:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {scrape_token}")
    finally:
        get_sync_client.cache_clear()
    assert response.status_code == 503


@pytest.mark.slow
async def test_it_sums_over_every_worker_and_process(
    web_workers, subprocess_env, alice_cookies, scrape_token
):
    first, second = web_workers(2)
    headers = {"Authorization": f"Bearer {scrape_token}"}

    async def scrape(base_url):
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
            response = await client.get("/metrics")
            assert response.status_code == 200, response.text
            return response.text

    async with (
        EventStream(first, ["metrics"], alice_cookies) as on_first,
        EventStream(second, ["metrics"], alice_cookies) as on_second,
    ):
        # Values published by another process (a command), delivered by both workers.
        for n in range(3):
            pushed = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "manage.py", "push_metric", "scraped", str(n)],
                cwd=ROOT,
                env=subprocess_env,
                capture_output=True,
                text=True,
            )
            assert pushed.returncode == 0, pushed.stderr
        for stream in (on_first, on_second):
            await wait_until(lambda stream=stream: len(stream.of_type("metric")) >= 3, message="the pushes")

        def summed(text):
            return (
                value(text, "livedash_open_connections", transport="sse") == 2
                and value(text, "livedash_events_delivered_total") >= 6
                and value(text, "livedash_events_published_total", channel="metrics") >= 3
                and value(text, "livedash_ingest_points_total") >= 3
            )

        # Either worker answers with the totals of both and of the command.
        for base_url in (second, first):
            deadline = asyncio.get_running_loop().time() + 15
            while not summed(text := await scrape(base_url)):
                assert asyncio.get_running_loop().time() < deadline, text
                await asyncio.sleep(0.2)


def test_every_accepted_point_is_counted_once_from_the_shell_and_over_http(client, redis_url, db):
    from dashboard.live import publish_metrics
    from dashboard.redis import get_sync_client

    def counted():
        telemetry.flush()
        return int(get_sync_client().hget(telemetry.counters_key(), "ingest_points") or 0)

    before = counted()
    publish_metrics([("counted", 1, None), ("counted", 2, None), ("counted", 3, None)])
    assert counted() == before + 3
    _, raw = ApiToken.create("counted", metric_patterns=["*"])
    body = {"points": [{"name": "counted", "value": 4}, {"name": "counted", "value": 5}]}
    answer = client.post("/api/v1/metrics", body, "application/json", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert answer.status_code == 202
    assert counted() == before + 5


def test_it_counts_api_refusals_by_reason_and_webhook_outcomes(client, redis_url, scrape_token):
    from deploy.supervisor import free_port
    from notifications.delivery import send_due
    from notifications.models import DeliveryChannel
    from notifications.services import notify

    assert client.post("/api/v1/metrics", {"name": "x", "value": 1}, "application/json").status_code == 401
    _, ingest = ApiToken.create("ingest", metric_patterns=["*"])
    refused = client.post("/api/v1/metrics", "name=x", "text/plain", HTTP_AUTHORIZATION=f"Bearer {ingest}")
    assert refused.status_code == 415

    # A webhook on a port nobody listens on: the attempt fails and waits for a retry.
    DeliveryChannel.objects.create(kind="webhook", target=f"http://127.0.0.1:{free_port()}/hook", secret="s")
    notify(None, "disk full", level="error")
    assert send_due() == 0

    telemetry.flush()
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {scrape_token}").content.decode()
    assert value(text, "livedash_ingest_refusals_total", reason="unauthenticated") == 1
    assert value(text, "livedash_ingest_refusals_total", reason="unsupported_media_type") == 1
    assert value(text, "livedash_notification_deliveries_total", channel="webhook", outcome="retrying") == 1

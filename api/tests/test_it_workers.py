"""The API against real worker processes, driven by clients nobody here wrote:
the influxdb-client package and curl, with an SSE client watching what arrives."""

import asyncio
import gzip
import json
import subprocess
import time

import httpx
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from api.models import ApiToken
from dashboard.storage import DashboardRedisStorage
from tests.realclients import EventStream

pytestmark = pytest.mark.slow


@pytest.fixture
def token(transactional_db):
    _row, raw = ApiToken.create("shipper", metric_patterns=["*"], notify=True)
    return raw


def influx_write(base_url, raw, records, gzip_body=False, precision=WritePrecision.NS):
    with InfluxDBClient(url=base_url, token=raw, org="any-org", enable_gzip=gzip_body) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="any-bucket", record=records, write_precision=precision
        )


def curl(*args):
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def metric_events(stream):
    return [e["data"] for e in stream.of_type("metric")]


async def test_the_influxdb_client_writes_points_that_reach_the_dashboards(web_workers, token, alice_cookies):
    [base] = web_workers(1)
    stamp = int(time.time()) - 3600  # within what the history keeps
    records = [
        Point("cpu")
        .tag("host", "web1")
        .field("usage_idle", 97.5)
        .field("usage_user", 2)
        .time(stamp, WritePrecision.S),
        Point("queue").field("value", 12).time(stamp + 1, WritePrecision.S),
        f"deploys,env=prod value=1i {stamp + 2}",
    ]
    async with EventStream(base, ["metrics"], alice_cookies) as stream:
        await asyncio.to_thread(influx_write, base, token, records, False, WritePrecision.S)
        await stream.wait_for(
            lambda e: e["event"] == "metric" and e["data"]["series"] == 'deploys{env="prod"}'
        )
        # gzip, as the client sends it when asked, then the precision it names.
        await asyncio.to_thread(influx_write, base, token, [Point("gz").field("value", 3.5)], True)
        await stream.wait_for(lambda e: e["event"] == "metric" and e["data"]["name"] == "gz")
    assert metric_events(stream)[:4] == [
        {
            "name": "cpu_usage_idle",
            "labels": {"host": "web1"},
            "series": 'cpu_usage_idle{host="web1"}',
            "value": 97.5,
            "ts": float(stamp),
        },
        {
            "name": "cpu_usage_user",
            "labels": {"host": "web1"},
            "series": 'cpu_usage_user{host="web1"}',
            "value": 2,
            "ts": float(stamp),
        },
        {"name": "queue", "labels": {}, "series": "queue", "value": 12, "ts": float(stamp + 1)},
        {
            "name": "deploys",
            "labels": {"env": "prod"},
            "series": 'deploys{env="prod"}',
            "value": 1,
            "ts": float(stamp + 2),
        },
    ]


async def test_the_influxdb_client_sees_the_errors_and_nothing_is_published(web_workers, token):
    [base] = web_workers(1)
    storage = DashboardRedisStorage()
    before = storage.get_current_id("metrics")
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(influx_write, base, token, "ok value=1\nbroken value=\n")
    assert caught.value.status == 400
    assert json.loads(caught.value.body) == {
        "error": "invalid",
        "detail": "line 2: Failed to parse value of field: 'broken value='",
    }
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(influx_write, base, "ldt_00000000_" + "x" * 43, "ok value=1")
    assert caught.value.status == 401
    assert storage.get_current_id("metrics") == before


async def test_curl_pushes_json_and_gzipped_line_protocol(web_workers, token, alice_cookies, tmp_path):
    [base] = web_workers(1)
    gz = tmp_path / "lines.gz"
    gz.write_bytes(gzip.compress(b"curled,via=gzip value=2\n"))
    async with EventStream(base, ["metrics"], alice_cookies) as stream:
        status, body = await asyncio.to_thread(
            curl,
            *("-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json"),
            *("--data", '{"name": "curled", "value": 1}', f"{base}/api/v1/metrics"),
        )
        assert (status, json.loads(body)) == (202, {"accepted": 1})
        status, body = await asyncio.to_thread(
            curl,
            *("-H", f"Authorization: Token {token}", "-H", "Content-Encoding: gzip"),
            *("--data-binary", f"@{gz}", f"{base}/api/v2/write?org=o&bucket=b&precision=s"),
        )
        assert (status, body) == (204, "")
        await stream.wait_for(
            lambda e: e["event"] == "metric" and e["data"]["series"] == 'curled{via="gzip"}'
        )
    assert [e["series"] for e in metric_events(stream)] == ["curled", 'curled{via="gzip"}']


async def test_a_token_revoked_by_the_command_is_refused_on_both_workers(web_workers, token, manage):
    first, second = web_workers(2)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=15) as client:
        for base in (first, second):
            response = await client.post(
                f"{base}/api/v1/metrics", json={"name": "pre", "value": 1}, headers=headers
            )
            assert response.status_code == 202
        result = await asyncio.to_thread(manage, "revoke_token", "shipper")
        assert result.returncode == 0, result.stderr
        returned = time.monotonic()
        for base in (second, first):
            while True:
                response = await client.post(
                    f"{base}/api/v1/metrics", json={"name": "post", "value": 1}, headers=headers
                )
                if response.status_code != 202:
                    break
                assert time.monotonic() - returned < 1.0, f"{base} still accepts it after 1 s"
                await asyncio.sleep(0.02)
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "unauthenticated"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert time.monotonic() - returned < 1.0


async def test_the_request_rate_is_shared_by_every_worker(web_workers, token):
    first, second = web_workers(2, env={"API_TOKEN_REQUESTS_PER_SECOND": "3"})
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=15) as client:
        started = time.time()
        answers = []
        for index in range(16):
            base = (first, second)[index % 2]
            answers.append(
                await client.post(f"{base}/api/v1/metrics", json={"name": "r", "value": 1}, headers=headers)
            )
        ended = time.time()
    accepted = sum(r.status_code == 202 for r in answers)
    limited = [r for r in answers if r.status_code == 429]
    assert accepted + len(limited) == 16
    windows = int(ended) - int(started) + 1
    assert accepted <= 3 * windows, (accepted, windows)
    assert limited and limited[0].headers["Retry-After"] == "1"
    assert limited[0].json()["error"] == "rate_limited"


async def test_limits_and_hostile_bodies_on_a_real_worker(web_workers, token, tmp_path):
    [base] = web_workers(1)
    storage = DashboardRedisStorage()
    headers = {"Authorization": f"Bearer {token}"}
    limit = 10 * 1024 * 1024
    filler = b"# filler comment line to reach the body limit\n"
    at_limit = b"big value=1\n" + filler * ((limit - 12) // len(filler))
    at_limit += b"\n" * (limit - len(at_limit))
    assert len(at_limit) == limit
    async with httpx.AsyncClient(timeout=60) as client:
        # A batch at the point limit is accepted whole.
        batch = {"points": [{"name": "batch", "value": i} for i in range(50_000)]}
        response = await client.post(f"{base}/api/v1/metrics", json=batch, headers=headers)
        assert (response.status_code, response.json()) == (202, {"accepted": 50_000})
        response = await client.post(f"{base}/api/v2/write", content=at_limit, headers=headers)
        assert response.status_code == 204, response.text
        before = storage.get_current_id("metrics")

        refused = {
            "points over the limit": (
                "/api/v1/metrics",
                json.dumps({"points": batch["points"] + [{"name": "b", "value": 1}]}),
                "application/json",
                413,
            ),
            "10 MB and one byte": ("/api/v2/write", at_limit + b"\n", "text/plain", 413),
            "deep JSON": ("/api/v1/metrics", "[" * 200_000 + "]" * 200_000, "application/json", 400),
            "NaN": ("/api/v1/metrics", '{"name": "x", "value": NaN}', "application/json", 400),
            "huge number": (
                "/api/v1/metrics",
                '{"name": "x", "value": 1' + "0" * 400 + "}",
                "application/json",
                400,
            ),
            "unicode name": ("/api/v1/metrics", '{"name": "温度", "value": 1}', "application/json", 400),
            "unicode measurement is hashed, bad field is not": (
                "/api/v2/write",
                "温度 value=1\n温度 value=x",
                "text/plain",
                400,
            ),
        }
        for what, (path, body, content_type, status) in refused.items():
            response = await client.post(
                f"{base}{path}", content=body, headers={**headers, "Content-Type": content_type}
            )
            assert response.status_code == status, (what, response.text)
            assert set(response.json()) == {"error", "detail"}, what
    assert storage.get_current_id("metrics") == before, "a refused request published something"
    for worker in web_workers.workers:
        with open(worker.log_path, errors="replace") as log:
            assert "Traceback" not in log.read()

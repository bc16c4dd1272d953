"""/events/ against real web workers and real Redis."""

import asyncio
from urllib.parse import quote

import pytest

from conftest import drop_stored_events
from dashboard.live import publish_frame
from tests.realclients import SSEReader, events_url

pytestmark = [pytest.mark.slow, pytest.mark.servers]


@pytest.fixture
def worker(web_workers):
    return web_workers(1)[0]


def frame_ids(events):
    return [e["data"]["seq"] for e in events if e["event"] == "frame"]


def has_frames(count):
    return lambda events: len(frame_ids(events)) >= count


async def test_it_delivers_a_metric_pushed_from_another_process(worker, alice_cookies, manage):
    async with SSEReader(events_url(worker, "metrics"), alice_cookies) as stream:
        assert stream.status == 200
        await stream.wait_for(lambda events: any(e["event"] == "stream-open" for e in events))
        result = await asyncio.to_thread(manage, "push_metric", "orders", "42")
        assert result.returncode == 0, result.stderr
        events = await stream.wait_for(lambda events: stream.of_type("metric"), message="the metric")
    metric = stream.of_type("metric")[0]
    assert metric["data"]["name"] == "orders"
    assert metric["data"]["value"] == 42
    assert metric["id"].startswith("metrics:")
    assert events[0]["event"] == "stream-open"


async def test_it_sends_the_headers_event_source_needs(worker, alice_cookies):
    async with SSEReader(events_url(worker, "metrics"), alice_cookies) as stream:
        assert stream.status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.response_headers["cache-control"] == "no-cache"
        assert stream.response_headers["x-accel-buffering"] == "no"


async def test_it_resumes_with_last_event_id_without_gap_or_duplicate(worker, alice_cookies):
    async with SSEReader(events_url(worker, "metrics"), alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        for seq in range(1, 4):
            publish_frame(seq, 0.0, {"cpu": seq})
        await stream.wait_for(has_frames(3))
    last_id = [e for e in stream.events if e["event"] == "frame"][-1]["id"]

    for seq in range(4, 14):
        publish_frame(seq, 0.0, {"cpu": seq})

    async with SSEReader(events_url(worker, "metrics"), alice_cookies, {"Last-Event-ID": last_id}) as again:
        await again.wait_for(has_frames(10), message="the ten missed frames")
        publish_frame(14, 0.0, {"cpu": 14})
        await again.wait_for(has_frames(11), message="the live frame after the replay")
        await asyncio.sleep(0.3)
    assert frame_ids(again.events) == list(range(4, 15))
    ids = [int(e["id"].split(":")[1]) for e in again.events if e["event"] == "frame"]
    assert ids == list(range(ids[0], ids[0] + 11))


async def test_it_resumes_from_the_last_event_id_query_parameter(worker, alice_cookies):
    first = publish_frame(1, 0.0, {})
    publish_frame(2, 0.0, {})
    url = events_url(worker, "metrics", last_event_id=f"metrics:{first.id}")
    async with SSEReader(url, alice_cookies) as stream:
        await stream.wait_for(has_frames(1))
        await asyncio.sleep(0.2)
    assert frame_ids(stream.events) == [2]


async def test_it_resets_a_client_whose_events_are_no_longer_kept(worker, alice_cookies):
    first = publish_frame(1, 0.0, {})
    second = publish_frame(2, 0.0, {})
    publish_frame(3, 0.0, {})
    drop_stored_events("metrics", second.id)

    url = events_url(worker, "metrics", last_event_id=f"metrics:{first.id}")
    async with SSEReader(url, alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-reset"), message="stream-reset")
        publish_frame(4, 0.0, {})
        await stream.wait_for(has_frames(1))
    reset = stream.of_type("stream-reset")[0]
    assert reset["data"] == {"channels": ["metrics"]}
    assert reset["id"] == f"metrics:{second.id + 1}"
    assert frame_ids(stream.events) == [4]  # nothing from before the hole, nothing twice


async def test_a_flood_beyond_the_buffer_arrives_exactly_once_or_resets(worker, alice_cookies):
    from dashboard.storage import DashboardRedisStorage
    from dashboard.stream.stream import STREAM_BUFFER

    storage = DashboardRedisStorage()
    count = STREAM_BUFFER * 8
    # The first event seeds the id counter (from the clock), so ids count from here.
    storage.append_event("metrics", "frame", '{"seq":-1}')
    async with SSEReader(events_url(worker, "metrics"), alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        start = storage.get_current_id("metrics")
        # One pipeline: the hub reads them all off one socket before the stream runs.
        with storage.redis.pipeline(transaction=False) as pipe:
            for seq in range(count):
                storage._script(storage.redis)(
                    keys=storage._append_args("metrics", "frame", f'{{"seq":{seq}}}')[0],
                    args=storage._append_args("metrics", "frame", f'{{"seq":{seq}}}')[1],
                    client=pipe,
                )
            pipe.execute()
        await stream.wait_for(
            lambda events: any(e["id"] == f"metrics:{start + count}" for e in events),
            message="the last event of the flood",
        )
        await asyncio.sleep(0.3)
    ids = [int(e["id"].split(":")[1]) for e in stream.events if e["event"] in ("frame", "stream-reset")]
    resets = stream.of_type("stream-reset")
    assert ids == sorted(set(ids)), "an id came twice or out of order"
    if not resets:
        assert ids == list(range(start + 1, start + count + 1)), "a hole without a stream-reset"


async def test_it_refuses_anonymous_clients(worker):
    async with SSEReader(events_url(worker, "metrics")) as stream:
        assert stream.status == 403
        assert "Log in" in stream.json()["error"]


async def test_it_refuses_users_without_the_view_permission(worker, charlie_cookies):
    async with SSEReader(events_url(worker, "metrics"), charlie_cookies) as stream:
        assert stream.status == 403
        assert "metrics" in stream.json()["error"]


async def test_it_refuses_another_users_channel(worker, alice, alice_cookies, bob_cookies):
    async with SSEReader(events_url(worker, f"user-{alice.pk}"), bob_cookies) as stream:
        assert stream.status == 403
    async with SSEReader(events_url(worker, f"user-{alice.pk}"), alice_cookies) as own:
        assert own.status == 200


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("channel=metrics", {"Last-Event-ID": "garbage"}, "Last-Event-ID"),
        ("channel=metrics&lastEventId=metrics:12:3", {}, "Last-Event-ID"),
        ("channel=metrics", {"Last-Event-ID": "metrics:-1"}, "Last-Event-ID"),
        ("channel=metrics", {"Last-Event-ID": "error"}, "stream-error"),
        ("channel=nonsense", {}, "Unknown channel"),
        ("", {}, "No channels"),
        ("&".join(f"channel=user-{i}" for i in range(11)), {}, "Too many channels"),
        ("channel=metrics&pad=" + "x" * 3000, {}, "too long"),
        ("channel=metrics&match=" + quote('{host=~"(a+)+"'), {}, "Invalid match"),
        ("channel=metrics&match=" + "&match=".join(f"m{i}" for i in range(40)), {}, "Invalid match"),
    ],
)
async def test_it_rejects_bad_requests_with_400(worker, alice_cookies, query, headers, message):
    async with SSEReader(f"{worker}/events/?{query}", alice_cookies, headers) as stream:
        assert stream.status == 400
        assert message in stream.json()["error"]


async def test_it_answers_bad_requests_from_anonymous_clients_with_403(worker):
    async with SSEReader(f"{worker}/events/?channel=nonsense") as stream:
        assert stream.status == 403

"""`/events/?channel=metrics&match=SELECTOR`: a stream carries only the series it selects,
live, on resume and after a catch-up, against real web workers and real Redis."""

import asyncio
import json
from urllib.parse import urlencode

import pytest

from dashboard import frames, selectors
from dashboard.live import publish_frame, publish_metrics
from dashboard.storage import Event
from dashboard.stream.hub import HubEvent
from dashboard.stream.stream import Stream
from tests.realclients import SSEReader

pytestmark = [pytest.mark.slow, pytest.mark.servers]


@pytest.fixture
def worker(web_workers):
    return web_workers(1)[0]


def url(base, *match, channels=("metrics",), last_event_id=None):
    query = [("channel", c) for c in channels] + [("match", m) for m in match]
    if last_event_id:
        query.append(("lastEventId", last_event_id))
    return f"{base}/events/?{urlencode(query)}"


def series_of(stream):
    return [e["data"]["series"] for e in stream.of_type("metric")]


def publish_latency(hosts, value=1.0):
    publish_metrics([("latency", value, None, {"host": host, "service": "checkout"}) for host in hosts])


async def test_it_carries_only_the_selected_series(worker, alice_cookies):
    async with SSEReader(url(worker, 'latency{host=~"web.*"}'), alice_cookies) as stream:
        assert stream.status == 200
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        await asyncio.to_thread(publish_latency, ["db1", "web1", "db2", "web2"])
        publish_frame(1, 0.0, {"latency": 5.0, "cpu": 10.0}, host="web3")
        publish_frame(2, 0.0, {"latency": 6.0}, host="db3")
        await asyncio.to_thread(publish_latency, ["web9"])  # the last: everything before it arrived
        await stream.wait_for(lambda events: "web9" in str(series_of(stream)), message="web9")
    assert series_of(stream) == [
        'latency{host="web1",service="checkout"}',
        'latency{host="web2",service="checkout"}',
        'latency{host="web9",service="checkout"}',
    ]
    # The frame of a matching host, trimmed to the selected values; db3's frame not at all.
    (frame,) = stream.of_type("frame")
    assert frame["data"]["host"] == "web3"
    assert frame["data"]["values"] == {"latency": 5.0}


async def test_it_resumes_with_the_same_filter(worker, alice_cookies):
    selector = 'latency{host="web1"}'
    async with SSEReader(url(worker, selector), alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        await asyncio.to_thread(publish_latency, ["web1"], 1.0)
        await stream.wait_for(lambda events: stream.of_type("metric"))
    last_id = stream.of_type("metric")[-1]["id"]
    for value in (2.0, 3.0):
        await asyncio.to_thread(publish_latency, ["web1", "web2", "db1"], value)

    async with SSEReader(url(worker, selector, last_event_id=last_id), alice_cookies) as resumed:
        assert resumed.status == 200
        await resumed.wait_for(lambda events: len(resumed.of_type("metric")) >= 2, message="the replay")
        await asyncio.to_thread(publish_latency, ["db1", "web1"], 4.0)
        await resumed.wait_for(lambda events: len(resumed.of_type("metric")) >= 3, message="live events")
    metrics = resumed.of_type("metric")
    assert [m["data"]["value"] for m in metrics] == [2.0, 3.0, 4.0]
    assert set(series_of(resumed)) == {'latency{host="web1",service="checkout"}'}
    ids = [int(m["id"].split(":")[1]) for m in metrics]
    assert ids == sorted(ids) and ids[0] > int(last_id.split(":")[1])


async def test_a_flood_beyond_the_buffer_is_caught_up_filtered(worker, alice_cookies):
    async with SSEReader(url(worker, 'latency{host="web1"}'), alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        # More events at once than a stream buffers: it reads storage and filters there too.
        hosts = ["web1"] + ["db1"] * 9
        points = [("latency", float(i), None, {"host": hosts[i % 10]}) for i in range(3000)]
        await asyncio.to_thread(publish_metrics, points)
        await stream.wait_for(lambda events: len(stream.of_type("metric")) >= 300, message="300 of 3000")
        await asyncio.sleep(0)  # anything beyond would have come in the same chunks
    values = [m["data"]["value"] for m in stream.of_type("metric")]
    assert values == [float(i) for i in range(0, 3000, 10)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("channel", "user-1"), ("match", "cpu")], "channel=metrics"),
        ([("channel", "metrics"), ("match", "{")], "Invalid match"),
        ([("channel", "metrics"), ("match", "")], "Invalid match"),
    ],
)
async def test_it_refuses_a_selection_it_cannot_apply(worker, alice_cookies, query, message):
    async with SSEReader(f"{worker}/events/?{urlencode(query)}", alice_cookies) as stream:
        assert stream.status == 400
        assert message in stream.json()["error"]


def test_streams_with_the_same_selectors_share_one_decision_per_event(monkeypatch):
    decisions = []
    wants = selectors.Selection.wants
    monkeypatch.setattr(
        selectors.Selection, "wants", lambda self, *args: decisions.append(args) or wants(self, *args)
    )
    # However written or ordered, the same selectors are one selection.
    texts = [['cpu{host="a"}', "mem"], ["mem", 'cpu{ host = "a" }']]
    streams = [Stream(["metrics"], {}, selection=selectors.selection(texts[i % 2])) for i in range(100)]
    datas = [frames.metric("cpu", float(i), 0.0, {"host": "ab"[i % 2]}) for i in range(10)]
    run = HubEvent([Event("metrics", "metric", json.dumps(d), id=i + 1) for i, d in enumerate(datas)])
    for stream in streams:
        stream.last_ids = {"metrics": 0}
        chunk = stream.deliver(run)
        assert chunk.count(b"event: metric") == 5
    assert len(decisions) == 10  # once per event, not once per stream and event


async def test_a_skipped_end_of_a_run_moves_the_clients_last_event_id_on(worker, alice_cookies):
    async with SSEReader(url(worker, 'latency{host="web1"}'), alice_cookies) as stream:
        await stream.wait_for(lambda events: stream.of_type("stream-open"))
        await asyncio.to_thread(publish_latency, ["web1", "db1", "db2"])  # one run of three
        await stream.wait_for(lambda events: stream.of_type("keep-alive"), message="the position")
    (metric,) = stream.of_type("metric")
    (position,) = [e for e in stream.of_type("keep-alive") if e["id"]]
    assert int(position["id"].split(":")[1]) == int(metric["id"].split(":")[1]) + 2


def test_an_idle_selected_stream_says_where_it_is_in_its_keep_alive():
    stream = Stream(["metrics"], {}, selection=selectors.selection(["cpu"]))
    stream.last_ids = {"metrics": 41}
    assert stream.keepalive() == b"event: keep-alive\nid: metrics:41\ndata: \n\n"
    assert Stream(["metrics"], {}).keepalive() == b"event: keep-alive\ndata:\n\n"

"""`/events/?channel=metrics&share=TOKEN`: an anonymous viewer of a share link, against
real web workers and real Redis. It reads only the link's scope whatever it edits in
the query, and its stream ends within a second of the link's revocation or expiry."""

import asyncio
import datetime
import time
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from boards import sharing, store
from boards.tests.test_it_sharing import SERIES, shared_board
from dashboard.live import publish_metrics
from tests.realclients import SSEReader

pytestmark = [pytest.mark.slow, pytest.mark.servers]


@pytest.fixture
def worker(web_workers):
    return web_workers(1)[0]


@pytest.fixture
def shop(subprocess_env, alice):
    publish_metrics([(name, 0.0, None, labels) for name, labels in SERIES])  # the variable's hosts
    return store.save(shared_board(), author=store.Author(name="alice", owner=alice))


@pytest.fixture
def token(shop, alice):
    return sharing.create(shop, user=alice)[1]


def url(base, token, *match, channels=("metrics",), last_event_id=None):
    query = [("channel", c) for c in channels] + [("share", token)] + [("match", m) for m in match]
    if last_event_id:
        query.append(("lastEventId", last_event_id))
    return f"{base}/events/?{urlencode(query)}"


def series_of(stream):
    return [e["data"]["series"] for e in stream.of_type("metric")]


def publish_everything(value):
    publish_metrics([(name, value, None, labels) for name, labels in SERIES])


async def opened(stream):
    assert stream.status == 200, stream.body
    await stream.wait_for(lambda events: stream.of_type("stream-open"), message="stream-open")


async def test_it_carries_only_the_links_scope(worker, token):
    async with SSEReader(url(worker, token)) as stream:
        await opened(stream)
        await asyncio.to_thread(publish_everything, 1.0)
        await asyncio.to_thread(publish_metrics, [("orders", 9.0, None, {})])  # the last
        await stream.wait_for(lambda events: len(series_of(stream)) >= 4, message="the scope's series")
    assert series_of(stream) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}', "orders", "orders"]


async def test_match_only_narrows_and_a_match_outside_is_403(worker, token):
    async with SSEReader(url(worker, token, "cpu")) as stream:
        await opened(stream)
        await asyncio.to_thread(publish_everything, 2.0)
        await asyncio.to_thread(publish_metrics, [("cpu", 3.0, None, {"dc": "eu", "host": "web2"})])
        await stream.wait_for(lambda events: len(series_of(stream)) >= 3, message="cpu of eu")
    # `cpu` alone names db9 too, which the dashboard's variable never reaches.
    assert series_of(stream) == [
        'cpu{dc="eu",host="web1"}',
        'cpu{dc="eu",host="web2"}',
        'cpu{dc="eu",host="web2"}',
    ]
    for outside in ("secret_revenue", "mem", 'cpu{host="db9"}'):
        async with SSEReader(url(worker, token, outside)) as refused:
            assert refused.status == 403, outside
            assert "Outside this share link" in refused.json()["error"]


async def test_resuming_replays_only_the_scope(worker, token):
    async with SSEReader(url(worker, token)) as stream:
        await opened(stream)
        await asyncio.to_thread(publish_metrics, [("orders", 1.0, None, {})])
        await stream.wait_for(lambda events: stream.of_type("metric"), message="orders")
    last_id = stream.of_type("metric")[-1]["id"]
    # Missed while away: everything, the secret among it.
    await asyncio.to_thread(publish_everything, 4.0)
    async with SSEReader(url(worker, token, last_event_id=last_id)) as resumed:
        await opened(resumed)
        await asyncio.to_thread(publish_metrics, [("orders", 5.0, None, {})])
        await resumed.wait_for(
            lambda events: len(series_of(resumed)) >= 4, message="the replay and the live value"
        )
    assert series_of(resumed) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}', "orders", "orders"]
    assert [e["data"]["value"] for e in resumed.of_type("metric")] == [4.0, 4.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("channels", "status"),
    [(("metrics", "user-1"), 403), (("user-1",), 403), ((), 403)],
)
async def test_a_link_reads_no_other_channel(worker, token, channels, status):
    async with SSEReader(url(worker, token, channels=channels)) as stream:
        assert stream.status == status


async def test_an_unknown_or_revoked_token_is_403(worker, shop, alice):
    link, revoked = await asyncio.to_thread(lambda: sharing.create(shop, user=alice))
    await asyncio.to_thread(sharing.revoke, link)
    for bad in (revoked, "x" * 43, ""):
        async with SSEReader(url(worker, bad)) as stream:
            assert stream.status == 403, bad
            assert "not valid" in stream.json()["error"]


async def wait_for_end(stream, timeout):
    deadline = time.monotonic() + timeout
    while not stream._task.done():
        if time.monotonic() > deadline:
            raise AssertionError(f"the stream was still open {timeout}s later")
        await asyncio.sleep(0.01)
    return time.monotonic()


async def test_revoking_ends_the_open_stream_within_a_second(worker, shop, alice):
    link, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice))
    async with SSEReader(url(worker, token)) as stream:
        await opened(stream)
        ending = asyncio.create_task(wait_for_end(stream, 5.0))
        revoked_at = time.monotonic()
        await asyncio.to_thread(sharing.revoke, link)
        ended_at = await ending
    assert ended_at - revoked_at < 1.0
    async with SSEReader(url(worker, token)) as again:
        assert again.status == 403


async def test_an_expiring_link_ends_its_stream_then_is_refused(worker, shop, alice):
    expires = timezone.now() + datetime.timedelta(seconds=2)
    _, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice, expires=expires))
    async with SSEReader(url(worker, token)) as stream:
        await opened(stream)
        ended_at = time.time() + (await wait_for_end(stream, 10.0) - time.monotonic())
    assert ended_at - expires.timestamp() < 1.0
    async with SSEReader(url(worker, token)) as again:
        assert again.status == 403


async def test_past_the_cap_over_every_worker_a_viewer_gets_429(web_workers, token):
    first, second = web_workers(2, env={"SHARE_MAX_VIEWERS": "2"})
    async with SSEReader(url(first, token)) as one, SSEReader(url(first, token)) as two:
        await opened(one)
        await opened(two)
        async with SSEReader(url(first, token)) as third:
            assert third.status == 429
            assert "2 viewers" in third.json()["error"]
        # The other worker learns of the first one's viewers from its report (each second).
        deadline = time.monotonic() + 10
        while True:
            async with SSEReader(url(second, token)) as elsewhere:
                if elsewhere.status == 429:
                    break
                assert elsewhere.status == 200
            assert time.monotonic() < deadline, "the second worker never counted the first one's viewers"
            await asyncio.sleep(0.1)
    # Closed: room again.
    deadline = time.monotonic() + 10
    while True:
        async with SSEReader(url(second, token)) as later:
            if later.status == 200:
                break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

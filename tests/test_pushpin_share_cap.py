"""A share link's viewer cap (SHARE_MAX_VIEWERS) at the Pushpin edge: real Pushpin, two
real workers, real Redis. Pushpin holds the viewers, so no worker keeps a response
open to count; each connect takes a place for SHARE_EDGE_LEASE_SECONDS
(dashboard.connections.aclaim_edge_share), and the cap counts those over every worker.
"""

import asyncio
import subprocess
import time

import pytest

from boards import sharing
from tests import test_pushpin
from tests.realclients import SSEReader
from tests.test_pushpin import WAIT, share_opened, share_url

pytestmark = pytest.mark.slow

CAP = 2
LEASE_SECONDS = 20


@pytest.fixture
def capped_edge(web_workers, tmp_path):
    """Pushpin in front of two workers capping every link at CAP viewers, with places
    held short enough that those of viewers who left come free within the test."""
    from deploy.pushpin import Pushpin
    from deploy.supervisor import Supervisor

    pushpin = Pushpin(tmp_path / "pushpin")
    env = {
        "GRIP_URL": pushpin.grip_url,
        "SHARE_MAX_VIEWERS": str(CAP),
        "SHARE_EDGE_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    urls = web_workers(2, env=env)
    supervisor = Supervisor()
    with open(tmp_path / "pushpin.log", "wb") as log:
        pushpin.start(
            supervisor, [url.removeprefix("http://") for url in urls], stdout=log, stderr=subprocess.STDOUT
        )
    yield pushpin
    supervisor.stop()


# The shared dashboard of tests/test_pushpin.py.
shop = test_pushpin.shop


@pytest.fixture
def publish(manage, capped_edge):
    def run(value):
        code = f"from dashboard.live import publish_metric\npublish_metric('orders', {value!r})"
        result = manage("shell", "-c", code, env={"GRIP_URL": capped_edge.grip_url})
        assert result.returncode == 0, result.stderr

    return run


def orders(stream):
    return [e["data"]["value"] for e in stream.of_type("metric") if e["data"]["name"] == "orders"]


async def test_past_the_cap_the_next_viewer_at_the_edge_gets_429_and_the_others_keep_streaming(
    capped_edge,
    shop,
    alice,
    publish,
):
    _, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice))
    url = share_url(capped_edge, token)
    async with SSEReader(url) as one, SSEReader(url) as two:
        await share_opened(one)
        await share_opened(two)
        async with SSEReader(url) as third:
            assert third.status == 429
            assert f"{CAP} viewers" in third.json()["error"]
        # Those in keep streaming: each value arrives once at both.
        values = []
        for value in (1.0, 2.0, 3.0):
            values.append(value)
            await asyncio.to_thread(publish, value)
            for stream in (one, two):
                await stream.wait_for(lambda events, s=stream: orders(s) == values, WAIT, f"orders {values}")
        async with SSEReader(url) as fourth:
            assert fourth.status == 429
    # Both gone: their places come free when their leases end.
    deadline = time.monotonic() + LEASE_SECONDS + WAIT
    while True:
        async with SSEReader(url) as later:
            if later.status == 200:
                break
            assert later.status == 429
        assert time.monotonic() < deadline, "the places of viewers who left were never freed"
        await asyncio.sleep(0.2)

"""/events/ through Pushpin (GRIP): real pushpin, real daphne workers, real Redis.

Pushpin holds the client connections; the workers only authorise new ones and
publishers (separate OS processes here) push each event once to Pushpin.
"""

import asyncio
import datetime
import os
import random
import signal
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from boards import sharing, store
from boards.tests.test_it_sharing import SERIES, shared_board
from conftest import ROOT
from dashboard.live import publish_metrics
from tests.realclients import EventStream, SSEReader, cookie_header

pytestmark = pytest.mark.slow

WAIT = 20.0


def test_its_ports_are_distinct_so_every_part_of_pushpin_can_bind():
    """One port handed out twice (its HTTP and its ZeroMQ input) stopped Pushpin from
    starting in a CI run: the five are chosen together now."""
    from dataclasses import astuple

    from deploy.pushpin import PushpinPorts
    from deploy.supervisor import free_ports

    assert len(set(free_ports(200))) == 200
    for _ in range(100):
        assert len(set(astuple(PushpinPorts.free()))) == 5
    taken = free_ports(1)[0]
    ports = PushpinPorts.free(http=taken)
    assert ports.http == taken and len(set(astuple(ports))) == 5


@pytest.fixture
def edge(web_workers, tmp_path):
    """Pushpin in front of two daphne workers that publish to it (GRIP_URL with its key)."""
    from deploy.pushpin import Pushpin
    from deploy.supervisor import Supervisor

    pushpin = Pushpin(tmp_path / "pushpin")
    urls = web_workers(2, env={"GRIP_URL": pushpin.grip_url})
    supervisor = Supervisor()
    with open(tmp_path / "pushpin.log", "wb") as log:
        pushpin.start(
            supervisor, [url.removeprefix("http://") for url in urls], stdout=log, stderr=subprocess.STDOUT
        )
    pushpin.workers = web_workers.workers
    yield pushpin
    supervisor.stop()


@pytest.fixture
def publish(manage, edge):
    """Run Python in a separate `manage.py shell` process that publishes through Pushpin."""

    def run(code):
        result = manage("shell", "-c", code, env={"GRIP_URL": edge.grip_url})
        assert result.returncode == 0, result.stderr
        return result

    return run


def push_metrics(publish, values, name="orders"):
    publish(
        f"from dashboard.live import publish_metric\nfor v in {list(values)!r}: publish_metric({name!r}, v)"
    )


def metric_values(stream):
    return [e["data"]["value"] for e in stream.of_type("metric")]


def event_number(event):
    return int(event["id"].split(":")[1])


async def opened(stream):
    await stream.wait_for(lambda e: e["event"] == "stream-open", message="stream-open")


async def test_it_rejects_anonymous_through_pushpin(edge):
    async with EventStream(edge.url, ["metrics"]) as stream:
        assert stream.status == 403, stream.error


async def test_it_rejects_a_user_without_permission_through_pushpin(edge, charlie_cookies):
    async with EventStream(edge.url, ["metrics"], cookies=charlie_cookies) as stream:
        assert stream.status == 403, stream.error


async def test_it_rejects_another_users_channel_through_pushpin(edge, alice_cookies, bob):
    async with EventStream(edge.url, [f"user-{bob.pk}"], cookies=alice_cookies) as stream:
        assert stream.status == 403, stream.error


async def test_it_answers_a_malformed_last_event_id_with_400_through_pushpin(edge, alice_cookies):
    stream = EventStream(edge.url, ["metrics"], cookies=alice_cookies, last_event_id="garbage")
    async with stream:
        assert stream.status == 400, stream.error


def push_latencies(publish, hosts, value):
    points = [("latency", value, None, {"host": host}) for host in hosts]
    publish(f"from dashboard.live import publish_metrics\npublish_metrics({points!r})")


def hosts_of(stream):
    return [e["data"]["labels"]["host"] for e in stream.of_type("metric")]


async def test_it_carries_only_the_selected_series_through_pushpin(edge, alice_cookies, publish):
    selected = EventStream(edge.url, ["metrics"], cookies=alice_cookies, match=['latency{host=~"web.*"}'])
    whole = EventStream(edge.url, ["metrics"], cookies=alice_cookies)
    async with selected, whole:
        await opened(selected)
        await opened(whole)
        for value, hosts in enumerate((["db1", "web1"], ["db2"], ["web2", "db3"])):
            await asyncio.to_thread(push_latencies, publish, hosts, float(value))
        await whole.wait_for(lambda e: len(hosts_of(whole)) == 5, WAIT, "every series on the whole stream")
        await selected.wait_for(lambda e: "web2" in hosts_of(selected), WAIT, "web2 on the selected stream")
        await asyncio.to_thread(push_latencies, publish, ["web3"], 9.0)  # the last: nothing else comes
        await selected.wait_for(lambda e: "web3" in hosts_of(selected), WAIT, "web3 on the selected stream")
    assert hosts_of(selected) == ["web1", "web2", "web3"]
    numbers = [event_number(e) for e in selected.of_type("metric")]
    assert numbers == sorted(set(numbers))


async def test_it_resumes_a_selected_stream_through_pushpin(edge, alice_cookies, publish):
    match = ['latency{host="web1"}']
    async with EventStream(edge.url, ["metrics"], cookies=alice_cookies, match=match) as stream:
        await opened(stream)
        await asyncio.to_thread(push_latencies, publish, ["db1", "web1"], 0.0)
        await stream.wait_for(lambda e: stream.of_type("metric"), WAIT, "the first value")
    last_id = stream.of_type("metric")[-1]["id"]

    for value in (1.0, 2.0):
        await asyncio.to_thread(push_latencies, publish, ["web1", "db1", "db2"], value)
    again = EventStream(edge.url, ["metrics"], cookies=alice_cookies, match=match, last_event_id=last_id)
    async with again:
        await again.wait_for(lambda e: len(again.of_type("metric")) >= 2, WAIT, "the two missed values")
        await asyncio.to_thread(push_latencies, publish, ["db1", "web1"], 3.0)
        await again.wait_for(lambda e: len(again.of_type("metric")) >= 3, WAIT, "the live value after replay")
        await asyncio.to_thread(push_latencies, publish, ["web1"], 4.0)
        await again.wait_for(lambda e: len(again.of_type("metric")) >= 4, WAIT, "the next live value")
    assert [e["data"]["value"] for e in again.of_type("metric")] == [1.0, 2.0, 3.0, 4.0]
    assert set(hosts_of(again)) == {"web1"}


async def test_it_refuses_a_bad_selector_through_pushpin(edge, alice_cookies):
    stream = EventStream(edge.url, ["metrics"], cookies=alice_cookies, match=['{host=~"(a+)+"'])
    async with stream:
        assert stream.status == 400, stream.error


async def test_it_delivers_a_metric_pushed_from_another_process(edge, alice_cookies, publish):
    async with EventStream(edge.url, ["metrics"], cookies=alice_cookies) as stream:
        assert stream.status == 200
        await opened(stream)
        await asyncio.to_thread(push_metrics, publish, [42])
        await stream.wait_for(lambda e: e["event"] == "metric", WAIT, "the metric via Pushpin")
    (metric,) = stream.of_type("metric")
    assert metric["data"]["name"] == "orders"
    assert metric["data"]["value"] == 42
    assert metric["id"].startswith("metrics:")


async def test_it_resumes_with_last_event_id_through_pushpin(edge, alice_cookies, publish):
    cookies = alice_cookies
    async with EventStream(edge.url, ["metrics"], cookies=cookies) as stream:
        await opened(stream)
        await asyncio.to_thread(push_metrics, publish, [0])
        await stream.wait_for(lambda e: e["event"] == "metric", WAIT, "the first metric")
    last_id = stream.of_type("metric")[-1]["id"]

    await asyncio.to_thread(push_metrics, publish, list(range(1, 11)))

    async with EventStream(edge.url, ["metrics"], cookies=cookies, last_event_id=last_id) as again:
        await again.wait_for(lambda e: len(metric_values(again)) >= 10, WAIT, "the ten missed metrics")
        await asyncio.to_thread(push_metrics, publish, [11])
        await again.wait_for(lambda e: 11 in metric_values(again), WAIT, "the live metric after replay")
        await asyncio.sleep(0.5)
    assert metric_values(again) == list(range(1, 12))
    numbers = [event_number(e) for e in again.of_type("metric")]
    assert numbers == sorted(set(numbers))


async def test_it_recovers_an_event_pushpin_never_received_from_storage(edge, alice_cookies, publish):
    """A publish that never reached Pushpin (publisher died in between) is fetched
    by Pushpin's recover request, authorised by the signed es-meta link."""
    async with EventStream(edge.url, ["metrics"], cookies=alice_cookies) as stream:
        await opened(stream)
        await asyncio.to_thread(
            publish,
            "import json\n"
            "from django_eventstream.utils import get_storage\n"
            "from dashboard.live import publish_metric\n"
            "get_storage().append_event('metrics', 'metric', json.dumps({'name': 'orders', 'value': 1}))\n"
            "publish_metric('orders', 2)",
        )
        await stream.wait_for(lambda e: len(metric_values(stream)) >= 2, WAIT, "both metrics")
        await asyncio.sleep(0.5)
    assert metric_values(stream) == [1, 2]


async def test_it_keeps_clients_connected_and_receiving_when_a_worker_dies(edge, alice_cookies, publish):
    cookies = alice_cookies
    streams = [EventStream(edge.url, ["metrics"], cookies=cookies) for _ in range(5)]
    for stream in streams:
        await stream.__aenter__()
    try:
        for stream in streams:
            await opened(stream)
        first = edge.workers[0]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)

        await asyncio.to_thread(push_metrics, publish, [7])
        for stream in streams:
            await stream.wait_for(lambda e: e["event"] == "metric", WAIT, "the metric after the kill")
            assert stream.error is None and not stream.ended.is_set()

        # New viewers still get in: Pushpin fails over to the other worker.
        async with EventStream(edge.url, ["metrics"], cookies=cookies) as late:
            assert late.status == 200
    finally:
        for stream in streams:
            await stream.close()
    assert all(metric_values(stream) == [7] for stream in streams)


async def test_it_disconnects_a_client_whose_permission_was_revoked(edge, alice_cookies, publish):
    async with EventStream(edge.url, ["metrics"], cookies=alice_cookies) as stream:
        await opened(stream)
        # A delivered metric proves Pushpin has taken the stream's channels (the
        # user channel the kick goes to comes in the same instruction), so the
        # kick below cannot arrive before the subscription does.
        await asyncio.to_thread(push_metrics, publish, [1])
        await stream.wait_for(lambda e: e["event"] == "metric", message="the metric before the kick")
        await asyncio.to_thread(
            publish,
            "from django.contrib.auth.models import User\n"
            "from django_eventstream import channel_permission_changed\n"
            "User.objects.get(username='alice').user_permissions.clear()\n"
            "channel_permission_changed(User.objects.get(username='alice'), 'metrics')",
        )
        await asyncio.wait_for(stream.ended.wait(), WAIT)
    # The permission change itself closes the stream at the edge (dashboard.revocation),
    # usually before the library's kick arrives; when the kick wins, its stream-error
    # (a Python repr, not JSON) says forbidden.
    for error in stream.of_type("stream-error"):
        assert "forbidden" in str(error["data"])
    assert metric_values(stream) == [1]


# --- fan-out above Debian's stock limits -----------------------------------------


async def count_stream(host, port, cookie, counts, index, ready):
    """A minimal SSE reader for many connections: counts `metric` ids, keeps them all.

    A connect answered 502 is tried again after a pause, as EventSource does: under a
    connect burst Pushpin's zurl refuses some forwards (its limits are not settable),
    which costs a retry, not an event, since nothing is published before all are in."""
    for _attempt in range(20):
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        writer.write(
            f"GET /events/?channel=metrics HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " in status:
            break
        writer.close()
        if b" 502 " not in status:
            raise AssertionError(f"stream {index}: {status!r}")
        await asyncio.sleep(0.5 + random.random())
    else:
        raise AssertionError(f"stream {index}: still 502 after 20 tries")
    ready.append(index)
    event = None
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"event: "):
                event = line[7:].strip()
            elif line.startswith(b"id: ") and event == b"metric":
                counts[index].append(int(line.split(b":")[-1]))
    finally:
        writer.close()


async def test_it_fans_out_without_loss_above_debians_stock_limits(edge, alice_cookies, subprocess_env):
    """1,200 clients x 10 events/s is 12,000 deliveries/s and 36,000 queued at once:
    Debian's message_rate (2,500/s) and message_hwm (25,000) would drop most of it."""
    clients, events = 1200, 30
    cookie = cookie_header(alice_cookies)
    counts = [[] for _ in range(clients)]
    ready = []
    tasks = []
    for index in range(clients):
        tasks.append(
            asyncio.create_task(count_stream("127.0.0.1", edge.ports.http, cookie, counts, index, ready))
        )
        if index % 100 == 99:
            await asyncio.sleep(0.2)
    deadline = time.monotonic() + 60
    while len(ready) < clients and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert len(ready) == clients
    await asyncio.sleep(1.0)  # let Pushpin finish subscribing the last ones

    code = (
        "import time\nfrom dashboard.live import publish_metric\n"
        f"for v in range({events}):\n    publish_metric('orders', v)\n    time.sleep(0.1)"
    )
    env = {**subprocess_env, "GRIP_URL": edge.grip_url}
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "shell", "-c", code, cwd=ROOT, env=env
    )
    assert await publisher.wait() == 0
    deadline = time.monotonic() + 30
    while any(len(c) < events for c in counts) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    received = sum(len(c) for c in counts)
    duplicates = sum(len(c) - len(set(c)) for c in counts)
    assert duplicates == 0
    assert received == clients * events, f"lost {clients * events - received} of {clients * events}"


async def test_a_recover_the_worker_refuses_ends_the_stream_at_the_edge_at_once(
    edge, alice, alice_cookies, bob_cookies, manage, publish
):
    """While Pushpin recovers a connection (it does, for one, a second after a channel's
    first subscriber joins) it holds back what is published to it, a revocation's close
    included, and it retried a refused recover for half a minute before giving up. Here
    the close never reaches the edge at all (the change is made where GRIP_URL is not
    set) and a recover is forced (an event whose prev-id does not follow): the worker's
    refusal of the recover has to end the stream by itself, and only alice's."""
    async with (
        EventStream(edge.url, ["metrics"], cookies=alice_cookies) as alices,
        EventStream(edge.url, ["metrics"], cookies=bob_cookies) as bobs,
    ):
        for stream in (alices, bobs):
            await opened(stream)
        removed = await asyncio.to_thread(
            manage,
            "shell",
            "-c",
            "from django.contrib.auth.models import Permission, User\n"
            f"u = User.objects.get(pk={alice.pk})\n"
            "u.user_permissions.remove(Permission.objects.get(codename='view_metric'))",
        )
        assert removed.returncode == 0, removed.stderr
        await asyncio.to_thread(
            publish,
            "from django_grip import publish\n"
            "from gripcontrol import HttpStreamFormat\n"
            "publish('events-metrics', HttpStreamFormat('event: probe\\ndata:\\n\\n'), id='b', prev_id='a')",
        )
        await asyncio.wait_for(alices.ended.wait(), 10.0)
        assert not bobs.ended.is_set()
    (error,) = alices.of_type("stream-error")
    assert error["data"]["condition"] == "forbidden"


@pytest.mark.parametrize(
    "change",
    [
        "u.user_permissions.remove(Permission.objects.get(codename='view_metric'))",
        "u.is_active = False; u.save()",
    ],
    ids=["permission removed", "deactivated"],
)
async def test_a_revocation_in_another_process_closes_the_users_streams_at_the_edge(
    edge, alice, bob_cookies, alice_cookies, publish, change
):
    async with (
        EventStream(edge.url, ["metrics", f"user-{alice.pk}"], cookies=alice_cookies) as alices,
        EventStream(edge.url, [f"user-{alice.pk}"], cookies=alice_cookies) as alices_own,
        EventStream(edge.url, ["metrics"], cookies=alice_cookies, match=["cpu"]) as alices_selected,
        EventStream(edge.url, ["metrics"], cookies=bob_cookies) as bobs,
    ):
        for stream in (alices, alices_own, alices_selected, bobs):
            assert stream.status == 200
            await opened(stream)
        started = time.monotonic()
        await asyncio.to_thread(
            publish,
            "from django.contrib.auth.models import Permission, User\n"
            f"u = User.objects.get(pk={alice.pk})\n{change}",
        )
        ended = (alices.ended.wait(), alices_own.ended.wait(), alices_selected.ended.wait())
        await asyncio.wait_for(asyncio.gather(*ended), WAIT)
        elapsed = time.monotonic() - started
        assert not bobs.ended.is_set()
    async with EventStream(edge.url, ["metrics"], cookies=alice_cookies) as again:
        assert again.status == 403
    print(f"closed at the edge {elapsed:.2f}s after the command started (its Django start-up included)")


def sessions_of(user):
    from tests.realclients import session_cookie

    return session_cookie(user), session_cookie(user)


async def test_ending_one_session_closes_only_its_streams_at_the_edge(edge, alice, publish):
    """/account/sessions/ ends one session: its streams Pushpin holds close within a
    second, Pushpin's own requests for them are refused, and the user's other session
    keeps its stream open (not closed and reconnected)."""
    from django.conf import settings

    lost, kept = await asyncio.to_thread(sessions_of, alice)
    async with (
        EventStream(edge.url, ["metrics"], cookies=lost) as gone,
        EventStream(edge.url, ["metrics", f"user-{alice.pk}"], cookies=lost) as gone_too,
        EventStream(edge.url, ["metrics"], cookies=kept) as stays,
    ):
        for stream in (gone, gone_too, stays):
            assert stream.status == 200
            await opened(stream)
        # A delivered metric proves Pushpin has taken each stream's channels.
        await asyncio.to_thread(push_metrics, publish, [1])
        for stream in (gone, gone_too, stays):
            await stream.wait_for(lambda e: e["event"] == "metric", WAIT, "the metric before the end")
        key = lost[settings.SESSION_COOKIE_NAME]
        ended = asyncio.create_task(
            asyncio.wait_for(asyncio.gather(gone.ended.wait(), gone_too.ended.wait()), WAIT)
        )
        started = time.monotonic()
        await asyncio.to_thread(
            publish,
            f"from accounts.models import UserSession\nUserSession.objects.get(session_key={key!r}).end()",
        )
        await ended
        elapsed = time.monotonic() - started
        # The other session's stream is the same connection, still carrying values.
        await asyncio.to_thread(push_metrics, publish, [2])
        await stays.wait_for(lambda e: 2 in metric_values(stays), WAIT, "the metric after the end")
        assert not stays.ended.is_set()
        assert len(stays.of_type("stream-open")) == 1
    async with EventStream(edge.url, ["metrics"], cookies=lost) as again:
        assert again.status == 403
    print(f"closed at the edge {elapsed:.2f}s after the command started (its Django start-up included)")


# --- share links: anonymous viewers held at the edge ---------------------------------
# Pushpin holds a link's viewers; the link's scope decides what reaches them, and its
# revocation or expiry closes them at the edge within a second.


@pytest.fixture
def shop(subprocess_env, alice):
    publish_metrics([(name, 0.0, None, labels) for name, labels in SERIES])  # the variable's hosts
    return store.save(shared_board(), author=store.Author(name="alice", owner=alice))


def share_url(edge, token, *match):
    query = [("channel", "metrics"), ("share", token)] + [("match", m) for m in match]
    return f"{edge.url}/events/?{urlencode(query)}"


def publish_every_series(publish, value):
    points = [(name, value, None, labels) for name, labels in SERIES]
    publish(f"from dashboard.live import publish_metrics\npublish_metrics({points!r})")


def shared_series(stream):
    return [e["data"]["series"] for e in stream.of_type("metric")]


async def share_opened(stream):
    assert stream.status == 200, stream.body
    await stream.wait_for(lambda events: stream.of_type("stream-open"), message="stream-open")


async def wait_for_end(stream, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not stream._task.done():
        assert time.monotonic() < deadline, "the stream is still open"
        await asyncio.sleep(0.01)
    return time.time()


async def test_an_anonymous_viewer_gets_only_the_scope_through_pushpin(edge, shop, alice, publish):
    _, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice))
    async with (
        SSEReader(share_url(edge, token)) as stream,
        SSEReader(share_url(edge, token, "cpu")) as narrowed,
    ):
        await share_opened(stream)
        await share_opened(narrowed)
        await asyncio.to_thread(publish_every_series, publish, 1.0)
        await stream.wait_for(lambda events: len(shared_series(stream)) >= 3, WAIT, "the scope's series")
        await narrowed.wait_for(lambda events: len(shared_series(narrowed)) >= 2, WAIT, "cpu of the scope")
        async with SSEReader(share_url(edge, token, "secret_revenue")) as outside:
            assert outside.status == 403
    assert shared_series(stream) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}', "orders"]
    assert shared_series(narrowed) == ['cpu{dc="eu",host="web1"}', 'cpu{dc="eu",host="web2"}']


async def test_revoking_closes_the_links_streams_at_the_edge_within_a_second(edge, shop, alice, publish):
    link, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice))
    async with SSEReader(share_url(edge, token)) as stream:
        await share_opened(stream)
        # A value delivered proves Pushpin holds the connection on its channels.
        await asyncio.to_thread(publish_every_series, publish, 1.0)
        await stream.wait_for(lambda events: shared_series(stream), WAIT, "a value")
        # Watched from now: the command goes on a moment after the revocation (its second
        # close, Django's exit), and the end must be timed when it happens.
        ending = asyncio.create_task(wait_for_end(stream))
        result = await asyncio.to_thread(
            publish,
            "import time\nfrom boards import sharing\nfrom boards.models import ShareLink\n"
            f"sharing.revoke(ShareLink.objects.select_related('dashboard').get(pk={link.pk}))\n"
            "print('revoked at', time.time())",
        )
        revoked_at = float(result.stdout.split("revoked at")[1])
        ended_at = await ending
    assert ended_at - revoked_at < 1.0
    async with SSEReader(share_url(edge, token)) as again:
        assert again.status == 403


async def test_an_expiring_link_is_closed_at_the_edge_then_refused(edge, shop, alice, publish):
    expires = timezone.now() + datetime.timedelta(seconds=3)
    _, token = await asyncio.to_thread(lambda: sharing.create(shop, user=alice, expires=expires))
    async with SSEReader(share_url(edge, token)) as stream:
        await share_opened(stream)
        ended_at = await wait_for_end(stream)
    assert ended_at - expires.timestamp() < 1.0
    async with SSEReader(share_url(edge, token)) as again:
        assert again.status == 403

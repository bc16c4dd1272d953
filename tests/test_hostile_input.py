"""Hostile clients: whatever they send, the server answers with a clear error, stores
nothing, keeps its log free of tracebacks, and goes on serving everyone else.

The WebSocket barrage runs against a real web worker over real sockets; the
frames come from a seeded generator, so a failure can be replayed exactly.
"""

import asyncio
import contextlib
import json
import random
import time

import httpx
import pytest
import websockets

from dashboard.control import protocol
from tests.realclients import open_socket, session_cookie

SEED = 20260601
CONNECTIONS = 50
FRAMES_PER_CONNECTION = 200  # 50 x 200 = 10,000 generated frames, plus the oversize and flood cases
PACE = 1 / 17  # under the 20 messages/s a connection may send
ANSWERS = ("ack", "error", "pong", "snapshot")
CRASH_MARKERS = ("Traceback", "Exception inside application")


def crashes_in(log_path):
    with open(log_path, encoding="utf-8", errors="replace") as log:
        text = log.read()
    return [marker for marker in CRASH_MARKERS if marker in text], text


# Each generator returns (frame, expected answer). An expected answer is "pong:<id>",
# "snapshot", "ack" or "error:<code>"; frames on one socket are answered in order.


def _malformed_json(rng):
    text = rng.choice(
        [
            '{"type": "ping"',
            "{'type': 'ping'}",
            '{"type": "ping",}',
            "{type: ping}",
            "",
            " ",
            "\ufeff" + '{"type": "ping"}',
            '{"type": "ping"}}',
            '{"type": "ping"} trailing',
            '["unterminated',
            "{" * rng.randint(1, 50),
            '{"type": "ping", "id": ' + "9" * 5000 + "}",  # longer than int() may parse
            '{"type": "\\ud800\\u"}',
            "\x00",
        ]
    )
    if rng.random() < 0.3:
        garbage = "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(1, 40)))
        text = "{" + garbage.replace("}", "")  # never valid: an object that never closes
    return text, "error:bad_json"


def _deep_nesting(rng):
    # Deeper than the JSON parser's recursion limit, yet under the 64 KiB frame limit.
    opener, closer, depth = rng.choice([("[", "]", 2_000), ("[", "]", 30_000), ('{"a":', "}", 5_000)])
    inner = opener * depth + "1" + closer * depth
    return '{"type": "ping", "x": ' + inner + "}", "error:bad_json"


def _shallow_nesting(rng):
    message_id = f"n{rng.randint(0, 10**6)}"
    inner = "[" * 30 + "1" + "]" * 30
    return '{"type": "ping", "id": "' + message_id + '", "x": ' + inner + "}", f"pong:{message_id}"


def _not_an_object(rng):
    return rng.choice(["[]", "1", '"ping"', "null", "true", "1e999", "NaN", '[{"type": "ping"}]']), (
        "error:invalid"
    )


def _wrong_types(rng):
    message = rng.choice(
        [
            {},
            {"type": None},
            {"type": 1},
            {"type": ["ping"]},
            {"type": {"type": "ping"}},
            {"type": True},
            {"type": "ping", "id": {"a": 1}},
            {"type": "ping", "id": [1]},
            {"type": "ping", "id": 1.5},
            {"type": "ping", "id": True},
            {"type": "ping", "id": "x" * 65},
            {"type": "ping", "id": 2**60},
            {"type": "mark_read", "id": "one"},
            {"type": "mark_read", "id": 0},
            {"type": "mark_read", "id": -3},
            {"type": "mark_read", "id": 2.5},
            {"type": "mark_read"},
            {"type": "set_interval"},
            {"type": "set_interval", "seconds": "1"},
            {"type": "set_interval", "seconds": None},
            {"type": "set_interval", "seconds": True},
            {"type": "set_interval", "seconds": [1]},
            {"type": "set_interval", "seconds": 0.1},
            {"type": "set_interval", "seconds": 61},
            {"type": "set_interval", "seconds": -1},
        ]
    )
    return json.dumps(message), "error:invalid"


def _huge_numbers(rng):
    text = rng.choice(
        [
            '{"type": "set_interval", "seconds": 1e308}',
            '{"type": "set_interval", "seconds": 1e999}',
            '{"type": "set_interval", "seconds": -1e999}',
            '{"type": "set_interval", "seconds": NaN}',
            '{"type": "set_interval", "seconds": ' + str(2**64) + "}",
            '{"type": "set_interval", "seconds": 5e-324}',
            '{"type": "mark_read", "id": ' + str(2**53) + "}",
            '{"type": "mark_read", "id": 1e400}',
            '{"type": "ping", "id": ' + str(-(2**63)) + "}",
        ]
    )
    return text, "error:invalid"


def _unknown_type(rng):
    name = rng.choice(
        [
            "PING",
            "ping\x00",
            " ping",
            "ping ",
            "\u202eping",
            "p\u0131ng",
            "🎉",
            "\U0010ffff",
            "\ud800",
            "x" * rng.randint(100, 20_000),
            "__init__",
            "websocket.disconnect",
            "notification.message",
            "presence.update",
            "receive_json",
            "hello",
            "error",
            "",
        ]
    )
    return json.dumps({"type": name, "id": "u"}), "error:unknown_type"


def _unicode_ids(rng):
    message_id = rng.choice(
        ["é", "😀" * 10, "\u202e\u0000", "\ud83d", "\ufeff", "a\nb", "'\";--", "<script>"]
    )
    return json.dumps({"type": "ping", "id": message_id}), f"pong:{message_id}"


def _control_without_permission(rng):
    text = rng.choice(
        [
            '{"type": "set_interval", "seconds": 1}',
            '{"type": "set_interval", "seconds": 0.25, "id": "s"}',
            '{"type": "pause"}',
            '{"type": "resume", "id": 7}',
            '{"type": "ping", "type": "pause"}',  # duplicate keys: the last one wins
        ]
    )
    return text, "error:forbidden"


def _unknown_notification(rng):
    return json.dumps({"type": "mark_read", "id": rng.randint(10**12, 2**53 - 1)}), "error:not_found"


def _binary(rng):
    # Sizes on both sides of the point where a text frame's size is measured in bytes.
    return rng.randbytes(rng.choice([1, rng.randint(2, 200), 20_000, 60_000])), "error:bad_json"


GENERATORS = [
    (_malformed_json, 20),
    (_deep_nesting, 3),
    (_shallow_nesting, 3),
    (_not_an_object, 8),
    (_wrong_types, 20),
    (_huge_numbers, 10),
    (_unknown_type, 14),
    (_unicode_ids, 8),
    (_control_without_permission, 8),
    (_unknown_notification, 2),
    (_binary, 4),
]


def hostile_frames(rng, count):
    makers = [maker for maker, _ in GENERATORS]
    weights = [weight for _, weight in GENERATORS]
    return [rng.choices(makers, weights)[0](rng) for _ in range(count)]


def describe(answer):
    if answer["type"] == "error":
        return f"error:{answer.get('code')}"
    if answer["type"] == "pong":
        return f"pong:{answer.get('id')}"
    return answer["type"]


async def _barrage(base_url, cookies, frames):
    """Send `frames` at a pace under the rate limit; return (expected, answers, close code)."""
    async with open_socket(base_url, cookies) as socket:
        await socket.wait_for(lambda m: m.get("type") == "hello")
        for frame, _ in frames:
            await socket.send(frame)
            await asyncio.sleep(PACE)
        with contextlib.suppress(AssertionError):  # a missing answer shows up in the comparison
            await socket.wait_for(
                lambda m: len([a for a in socket.messages if a.get("type") in ANSWERS]) >= len(frames),
                timeout=30,
            )
        answers = [describe(m) for m in socket.messages if m.get("type") in ANSWERS]
        return [expected for _, expected in frames], answers, socket.close_code


@pytest.fixture
def viewer_cookies(alice):
    return session_cookie(alice)


@pytest.fixture
def worker(web_workers):
    # The barrage opens CONNECTIONS sockets as one user, past the default per-user cap.
    web_workers(1, env={"MAX_CONNECTIONS_PER_USER": str(CONNECTIONS + 10)})
    return web_workers.workers[0]


def _base(worker):
    return f"http://127.0.0.1:{worker.port}"


@pytest.mark.slow
async def test_ten_thousand_hostile_frames_get_their_error_codes_and_crash_nothing(worker, viewer_cookies):
    rng = random.Random(SEED)
    batches = [hostile_frames(rng, FRAMES_PER_CONNECTION) for _ in range(CONNECTIONS)]
    started = time.monotonic()
    results = await asyncio.gather(*(_barrage(_base(worker), viewer_cookies, batch) for batch in batches))
    elapsed = time.monotonic() - started

    for index, (expected, answers, close_code) in enumerate(results):
        mismatches = [
            (position, batches[index][position][0][:80], want, got)
            for position, (want, got) in enumerate(zip(expected, answers, strict=False))
            if want != got
        ]
        assert not mismatches, f"connection {index}: (position, frame, expected, got) {mismatches[:5]}"
        assert len(answers) == len(expected), f"connection {index}: {len(answers)} answers"
        assert close_code in (None, 1000), f"connection {index} was closed with {close_code}"
    assert worker.poll() is None, "the worker died"
    found, log = crashes_in(worker.log_path)
    assert not found, f"the worker logged {found}:\n{log[-3000:]}"
    print(f"{CONNECTIONS * FRAMES_PER_CONNECTION} hostile frames answered in {elapsed:.1f}s")


OVERSIZE_FRAMES = {
    "ascii-over-64k": '{"type": "ping", "pad": "' + "x" * (protocol.MAX_FRAME_BYTES + 1) + '"}',
    # Fewer characters than the limit, more bytes.
    "multibyte-over-64k": '{"type": "ping", "pad": "' + "€" * (protocol.MAX_FRAME_BYTES // 3 + 10) + '"}',
    "one-megabyte": "x" * (1024 * 1024),
    "binary-over-64k": b"\x00" * (protocol.MAX_FRAME_BYTES + 1),
}


@pytest.mark.slow
@pytest.mark.servers
async def test_it_refuses_an_oversize_frame_with_too_large_and_closes_the_socket(worker, viewer_cookies):
    outcomes = {}
    for name, frame in OVERSIZE_FRAMES.items():
        async with open_socket(_base(worker), viewer_cookies, max_size=None) as socket:
            await socket.wait_for(lambda m: m.get("type") == "hello")
            await socket.send(frame)
            error = await socket.wait_for(lambda m: m.get("type") == "error")
            try:
                close_code = await socket.closed(timeout=5)
            except TimeoutError:
                close_code = "still open"
            outcomes[name] = (error["code"], close_code)
    assert outcomes == dict.fromkeys(OVERSIZE_FRAMES, ("too_large", protocol.CLOSE_TOO_LARGE))
    assert worker.poll() is None
    assert crashes_in(worker.log_path)[0] == []


@pytest.mark.slow
@pytest.mark.servers
async def test_a_frame_over_one_mib_is_refused_by_the_server_itself(worker, viewer_cookies):
    # deploy/worker.py caps frames at 1 MiB on both servers; past that the server, not the
    # application (which never sees the frame), ends the socket: uvicorn with the standard
    # 1009, daphne (autobahn fails connections by dropping them) without a close frame, 1006.
    from django.conf import settings

    async with open_socket(_base(worker), viewer_cookies, max_size=None) as socket:
        await socket.wait_for(lambda m: m.get("type") == "hello")
        with contextlib.suppress(websockets.ConnectionClosed):
            await socket.send("x" * (1024 * 1024 + 1))
        assert await socket.closed(timeout=10) == {"uvicorn": 1009, "daphne": 1006}[settings.ASGI_SERVER]
        assert not socket.of_type("error")
    async with open_socket(_base(worker), viewer_cookies) as other:
        assert (await other.command("ping"))["type"] == "pong"
    assert worker.poll() is None
    assert crashes_in(worker.log_path)[0] == []


@pytest.mark.slow
@pytest.mark.servers
async def test_a_flood_is_rate_limited_then_closed_while_others_are_served(worker, viewer_cookies):
    async with (
        open_socket(_base(worker), viewer_cookies) as flooder,
        open_socket(_base(worker), viewer_cookies) as bystander,
    ):
        await flooder.wait_for(lambda m: m.get("type") == "hello")
        await bystander.wait_for(lambda m: m.get("type") == "hello")
        with contextlib.suppress(websockets.ConnectionClosed):
            for number in range(3000):
                await flooder.send({"type": "ping", "id": number})
                await asyncio.sleep(0)
        try:
            close_code = await flooder.closed(timeout=5)
        except TimeoutError:
            close_code = "still open"
        assert close_code == protocol.CLOSE_POLICY_VIOLATION
        codes = [m.get("code") for m in flooder.of_type("error")]
        assert "rate_limited" in codes
        assert len(flooder.of_type("pong")) >= protocol.RateLimiter.BURST - 1  # the burst was served
        assert (await bystander.command("ping"))["type"] == "pong"
    assert crashes_in(worker.log_path)[0] == []


@pytest.mark.slow
async def test_the_worker_keeps_serving_others_during_a_barrage(worker, viewer_cookies):
    rng = random.Random(SEED + 1)
    barrage = asyncio.gather(
        *(_barrage(_base(worker), viewer_cookies, hostile_frames(rng, 60)) for _ in range(20))
    )
    async with open_socket(_base(worker), viewer_cookies) as bystander:
        await bystander.wait_for(lambda m: m.get("type") == "hello")
        round_trips = []
        for _ in range(10):
            started = time.monotonic()
            assert (await bystander.command("ping"))["type"] == "pong"
            round_trips.append(time.monotonic() - started)
            await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=_base(worker)) as client:
        assert (await client.get("/healthz")).status_code == 200
    await barrage
    assert max(round_trips) < 2.0, f"ping round trips under attack: {round_trips}"


# SSE: bad requests are 4xx with a reason, never a 500 and never a stream.

# Under the servers' request-line limits, so the request reaches Django (nginx allows 8 KiB lines).
LONG = "x" * 7_000


BAD_SSE_REQUESTS = [
    ("channel=metrics", {"Last-Event-ID": "garbage"}),
    ("channel=metrics", {"Last-Event-ID": "metrics:abc"}),
    ("channel=metrics", {"Last-Event-ID": "metrics:-5"}),
    ("channel=metrics", {"Last-Event-ID": "metrics:" + "9" * 5000}),
    ("channel=metrics", {"Last-Event-ID": "metrics:1:2:3"}),
    ("channel=metrics", {"Last-Event-ID": ",,,"}),
    ("channel=metrics&lastEventId=%00%ff", {}),
    ("channel=metrics&lastEventId=metrics:1e9", {}),
    ("channel=nope", {}),
    ("channel=", {}),
    ("", {}),
    ("channel=user-abc", {}),
    ("channel=user-" + "9" * 40, {}),
    ("channel=metrics%00", {}),
    ("channel=%ff%fe", {}),
    ("channel=" + "&channel=".join(f"user-{n}" for n in range(50)), {}),
    ("channel=metrics&channel=metrics&" + "&".join(f"channel=c{n}" for n in range(200)), {}),
    ("channel=metrics&pad=" + LONG, {}),
    ("channel=" + LONG, {}),
]


@pytest.mark.slow
async def test_bad_sse_requests_get_a_4xx(worker, viewer_cookies):
    answers = {}
    async with httpx.AsyncClient(base_url=_base(worker), cookies=viewer_cookies, timeout=10) as client:
        for query, headers in BAD_SSE_REQUESTS:
            async with client.stream("GET", f"/events/?{query}", headers=headers) as response:
                answers[(query[:60], str(headers)[:60])] = response.status_code
        # Twisted drops a request line over 16 KiB without answering; nginx, in front in
        # every deployment, answers 414 before that (see test_two_workers). Never a 500.
        try:
            status = (await client.get("/events/?channel=metrics&pad=" + "x" * 20_000)).status_code
        except httpx.RemoteProtocolError:
            status = 400
        answers[("20 KiB request line", "")] = status
        assert (await client.get("/healthz")).status_code == 200
    wrong = {request: status for request, status in answers.items() if not 400 <= status < 500}
    assert not wrong, f"not a 4xx: {wrong}"
    assert crashes_in(worker.log_path)[0] == []


# Publish and notify: the Python API and the commands refuse bad input and store nothing.

BAD_METRICS = [
    ("", 1),
    ("has space", 1),
    ("x" * 65, 1),
    ("ok", float("nan")),
    ("ok", float("inf")),
    ("ok", "42"),
    ("ok", None),
    ("ok", True),
    ("ok", [1]),
    (None, 1),
    ("../etc", 1),
    ("\u00e9t\u00e9", 1),
    ("a\x00b", 1),
    ("cpu\n", 1),  # `$` matched before a trailing newline
    ("cpu\r", 1),
    ("\uff11", 1),  # a Unicode digit
    ("ok", 10**400),  # raised OverflowError, with a traceback
    ("ok", -(10**400)),
]

BAD_TIMESTAMPS = [float("nan"), float("inf"), -1e18, -1, 0, 10**400, "now", 1e18]


def _stored_metric_events():
    from django_eventstream.utils import get_storage

    return get_storage().get_current_id("metrics")


@pytest.mark.parametrize(("name", "value"), BAD_METRICS, ids=lambda value: repr(value)[:20])
def test_publish_metric_refuses_bad_input_and_stores_nothing(transactional_db, redis_url, name, value):
    from dashboard.live import publish_metric
    from dashboard.models import Metric

    metrics_before = Metric.objects.count()
    events_before = _stored_metric_events()
    with pytest.raises(ValueError):
        publish_metric(name, value)
    assert Metric.objects.count() == metrics_before
    assert _stored_metric_events() == events_before


@pytest.mark.parametrize("ts", BAD_TIMESTAMPS, ids=repr)
def test_publish_metric_refuses_an_absurd_timestamp_and_stores_nothing(transactional_db, redis_url, ts):
    from dashboard.live import publish_metric

    events_before = _stored_metric_events()
    with pytest.raises(ValueError, match="timestamp"):
        publish_metric("ok", 1, ts=ts)
    assert _stored_metric_events() == events_before


BAD_LABELS = [
    {"": "x"},
    {"a b": "x"},
    {"host\n": "x"},
    {"\u00e9": "x"},
    {"__name__": "cpu"},
    {"h" * 65: "x"},
    {"host": "x" * 257},
    {"host": "\ud800"},  # a lone surrogate: no UTF-8 form
    {"host": None},
    {"host": ["web1"]},
    {"host": {"a": "b"}},
    {f"l{n}": "v" for n in range(17)},
    "host=web1",
    ["host", "web1"],
    42,
]


@pytest.mark.parametrize("labels", BAD_LABELS, ids=lambda value: repr(value)[:20])
def test_publish_metric_refuses_bad_labels_and_stores_nothing(transactional_db, redis_url, labels):
    from dashboard.live import publish_metric, publish_metrics
    from dashboard.models import Metric

    metrics_before = Metric.objects.count()
    events_before = _stored_metric_events()
    with pytest.raises(ValueError, match="label"):
        publish_metric("ok", 1, labels=labels)
    with pytest.raises(ValueError, match="^point 1: .*label"):
        publish_metrics([("ok", 1, None, {"host": "a"}), ("ok", 1, None, labels)])
    assert Metric.objects.count() == metrics_before
    assert _stored_metric_events() == events_before


def test_publish_metric_takes_a_recent_timestamp(transactional_db, redis_url):
    import time

    from dashboard.live import publish_metric

    now = time.time()
    assert publish_metric("ok", 10**15, ts=now - 60)["ts"] == now - 60
    assert publish_metric("ok", 1, ts=now + 60)["ts"] == now + 60


BAD_NOTIFICATIONS = [
    ({"to": "nobody", "title": "hi"}, "unknown user"),
    ({"to": 42, "title": "hi"}, "to must be"),
    ({"to": "alice", "title": ""}, "title"),
    ({"to": "alice", "title": "x" * 121}, "title"),
    ({"to": "alice", "title": None}, "title"),
    ({"to": "alice", "title": "hi", "level": "panic"}, "level"),
    ({"to": "alice", "title": "hi", "link": "javascript:alert(1)"}, "link"),
    ({"to": "alice", "title": "hi", "link": "//evil.example/"}, "link"),
    ({"to": "alice", "title": "hi", "body": 5}, "body"),
]


@pytest.mark.parametrize(("kwargs", "reason"), BAD_NOTIFICATIONS, ids=lambda value: repr(value)[:30])
def test_notify_refuses_bad_input_and_stores_nothing(alice, redis_url, kwargs, reason):
    from notifications.models import Notification
    from notifications.services import notify

    with pytest.raises(ValueError, match=reason):
        notify(**kwargs)
    assert Notification.objects.count() == 0


@pytest.mark.slow  # a Django start-up per case
@pytest.mark.parametrize(
    "args",
    [
        ["notify", "--user", "nobody", "hi"],
        ["notify", "--user", "alice", "--level", "panic", "hi"],
        ["notify", "--group", "no-such-group", "hi"],
        ["notify", "--user", "alice", "--link", "javascript:alert(1)", "hi"],
        ["notify", "--user", "alice", "--all", "hi"],
        ["push_metric", "bad name", "1"],
        ["push_metric", "ok", "nan"],
        ["push_metric", "ok", "forty-two"],
        ["push_metric", "ok", "1", "--label", "no-equals-sign"],
        ["push_metric", "ok", "1", "--label", "bad name=x"],
        ["push_metric", "ok", "1", "--label", "host=" + "x" * 300],
    ],
    ids=" ".join,
)
def test_the_commands_refuse_bad_input_in_one_line_and_store_nothing(alice, manage, args):
    from dashboard.models import Metric
    from notifications.models import Notification

    metrics_before = Metric.objects.count()
    events_before = _stored_metric_events()
    result = manage(*args)
    assert result.returncode != 0
    assert "Unknown command" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "the command must say what is wrong"
    assert Notification.objects.count() == 0
    assert Metric.objects.count() == metrics_before
    assert _stored_metric_events() == events_before


def _own_channel_variants(user_id):
    """Names that spell user-<id> another way: each used to be a channel of its own."""
    return [
        f"user-0{user_id}",
        f"user-00{user_id}",
        "user-" + "".join(chr(0xFF10 + int(d)) for d in str(user_id)),  # fullwidth digits
        "user-" + "".join(chr(0x0660 + int(d)) for d in str(user_id)),  # Arabic-Indic digits
        f"user-{user_id}\n",
        f"user-{user_id}\r",
        f"user-{user_id} ",
        "user-0",
    ]


@pytest.mark.slow
async def test_channel_names_match_exactly_and_reading_creates_no_redis_keys(worker, alice, viewer_cookies):
    from urllib.parse import quote

    from django.conf import settings

    from dashboard.redis import get_sync_client

    redis = get_sync_client()
    pattern = f"{settings.REDIS_PREFIX}:*"
    async with httpx.AsyncClient(base_url=_base(worker), cookies=viewer_cookies, timeout=10) as client:
        # The real name works (and, read only, writes nothing either).
        async with client.stream("GET", f"/events/?channel=user-{alice.pk}") as response:
            assert response.status_code == 200
        keys_before = set(redis.scan_iter(match=pattern, count=10_000))
        answers = {}
        for name in _own_channel_variants(alice.pk):
            async with client.stream("GET", f"/events/?channel={quote(name)}") as response:
                answers[name] = response.status_code
    assert answers == dict.fromkeys(_own_channel_variants(alice.pk), 400)
    created = set(redis.scan_iter(match=pattern, count=10_000)) - keys_before
    assert not [k for k in created if b":events:" in k], created


def _append_many(count):
    from dashboard.storage import DashboardRedisStorage

    storage = DashboardRedisStorage()
    first = storage.append_event("metrics", "metric", '{"name":"x","value":0,"ts":0}')
    with storage.redis.pipeline(transaction=False) as pipe:
        for number in range(1, count):
            keys, args = storage._append_args("metrics", "metric", f'{{"name":"x","value":{number},"ts":0}}')
            storage._script(storage.redis)(keys=keys, args=args, client=pipe)
        pipe.execute()
    return first.id, storage.get_current_id("metrics")


@pytest.mark.slow
async def test_last_event_id_replays_a_bounded_window_then_resets(worker, viewer_cookies):
    from dashboard.stream.stream import REPLAY_WINDOW
    from tests.realclients import SSEReader, events_url

    first, current = await asyncio.to_thread(_append_many, REPLAY_WINDOW + 100)
    base = _base(worker)
    for last_id in (0, first):  # the whole retention: a reset, not thousands of events
        async with SSEReader(
            events_url(base, "metrics", last_event_id=f"metrics:{last_id}"), viewer_cookies
        ) as s:
            events = await s.wait_for(lambda events: s.of_type("stream-reset"), message="stream-reset")
            assert s.of_type("metric") == []
            assert [e["event"] for e in events] == ["stream-open", "stream-reset"]
            assert events[-1]["id"] == f"metrics:{current}"
    # A short disconnect is replayed, every event of it.
    async with SSEReader(
        events_url(base, "metrics", last_event_id=f"metrics:{current - 10}"), viewer_cookies
    ) as s:
        await s.wait_for(lambda events: len(s.of_type("metric")) >= 10, message="the ten missed events")
        assert s.of_type("stream-reset") == []
        assert [e["id"] for e in s.of_type("metric")] == [
            f"metrics:{n}" for n in range(current - 9, current + 1)
        ]

"""Property: whatever a client sends, the consumer never raises, answers every frame
with one well-formed message, or closes with the documented code."""

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.control import protocol
from dashboard.tests.wsclient import communicator_for

ANSWERS = {"ack", "error", "pong", "snapshot"}
BROADCASTS = {"presence", "interval_changed", "sampling_state", "notification", "unread"}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Real command names, names of server messages and handlers, and anything else.
command_types = st.sampled_from([*protocol.COMMANDS, "hello", "presence.update", "websocket.close"])
command_types |= st.text(max_size=12)
command_like = st.fixed_dictionaries(
    {"type": command_types | json_values},
    optional={"id": json_values | st.text(max_size=70), "seconds": json_values},
)
frames = st.one_of(
    command_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


def well_formed(message):
    if message["type"] == "error":
        return message["code"] in protocol.ERROR_CODES and isinstance(message["message"], str)
    return message["type"] in ANSWERS


def sent_id(frame):
    """The id the server must echo, when the frame carries a valid one."""
    try:
        content = json.loads(frame)
        return protocol._message_id(content) if isinstance(content, dict) else None
    except (ValueError, TypeError, RecursionError, protocol.ProtocolError):
        return None


async def exchange(user, batch):
    communicator = communicator_for(user)
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    answers = []
    closed_with = None
    for frame in batch:
        key = "bytes" if isinstance(frame, bytes) else "text"
        await communicator.send_input({"type": "websocket.receive", key: frame})
        while True:
            output = await communicator.receive_output(timeout=5)
            if output["type"] == "websocket.close":
                closed_with = output.get("code")
                break
            message = json.loads(output["text"])
            if message["type"] not in BROADCASTS:
                answers.append((frame, message))
                break
        if closed_with is not None:
            break
    # receive_nothing, not a timed-out receive_output: a timeout would cancel the consumer.
    while closed_with is None and not await communicator.receive_nothing(timeout=0.05):
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            closed_with = output.get("code")
    await communicator.disconnect()  # re-raises anything the consumer raised
    return answers, closed_with


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_url")
def test_arbitrary_frames_never_hurt_the_consumer(staff):
    loop = asyncio.new_event_loop()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(frames, min_size=1, max_size=6))
    def check(batch):
        answers, closed_with = loop.run_until_complete(exchange(staff, batch))
        assert closed_with is None, f"closed with {closed_with}"
        assert len(answers) == len(batch)
        for frame, message in answers:
            assert well_formed(message), message
            assert message.get("code") != protocol.UNAVAILABLE, message
            expected_id = sent_id(frame) if isinstance(frame, str) else None
            if expected_id is not None:
                assert message.get("id") == expected_id, (frame, message)

    try:
        check()
    finally:
        loop.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_url")
def test_oversize_frames_always_close_with_too_large(staff):
    loop = asyncio.new_event_loop()

    @settings(max_examples=10, deadline=None)
    @given(st.text(min_size=1, max_size=8).map(lambda s: s * (protocol.MAX_FRAME_BYTES // len(s) + 1)))
    def check(frame):
        answers, closed_with = loop.run_until_complete(exchange(staff, [frame]))
        assert closed_with == protocol.CLOSE_TOO_LARGE
        assert [m["code"] for _, m in answers] == ["too_large"]

    try:
        check()
    finally:
        loop.close()

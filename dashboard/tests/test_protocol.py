"""The protocol rules on their own: no socket, no Redis, no database."""

import json

import pytest

from dashboard.access import CONTROL_PERMISSION, VIEW_PERMISSION
from dashboard.control import consumers, events, protocol
from dashboard.control.consumers import DashboardConsumer
from dashboard.control.protocol import ProtocolError, RateLimiter


def parse_text(text):
    return protocol.parse(protocol.decode(text))


def refusal(text):
    with pytest.raises(ProtocolError) as caught:
        parse_text(text)
    return caught.value


@pytest.mark.parametrize("text", ["{", "not json", "", "[1,", '{"type": "ping"} trailing'])
def test_it_refuses_text_that_is_not_json(text):
    assert refusal(text).code == "bad_json"


def test_it_refuses_json_too_deep_to_decode_as_bad_json():
    assert refusal("[" * 50_000 + "]" * 50_000).code == "bad_json"


def test_it_refuses_integers_too_long_to_convert_as_bad_json():
    assert refusal('{"type": "ping", "id": ' + "9" * 5000 + "}").code == "bad_json"


@pytest.mark.parametrize("text", ["[]", "1", '"ping"', "null", "true"])
def test_it_refuses_a_message_that_is_not_an_object(text):
    assert refusal(text).code == "invalid"


@pytest.mark.parametrize("text", ["{}", '{"type": 1}', '{"type": null}', '{"type": ["ping"]}'])
def test_it_refuses_a_message_without_a_string_type(text):
    assert refusal(text).code == "invalid"


def test_it_refuses_an_unknown_type_and_keeps_the_id():
    error = refusal('{"type": "reboot", "id": 7}')
    assert (error.code, error.message_id) == ("unknown_type", 7)


def test_it_does_not_echo_a_long_unknown_type_whole():
    error = refusal(json.dumps({"type": "x" * 10_000}))
    assert error.code == "unknown_type"
    assert len(error.message) < 100


@pytest.mark.parametrize("message_id", [True, 1.5, [1], {"a": 1}, "x" * 65, 2**53])
def test_it_refuses_an_id_it_could_not_echo(message_id):
    error = refusal(json.dumps({"type": "ping", "id": message_id}))
    assert error.code == "invalid"
    assert error.message_id is None


@pytest.mark.parametrize("message_id", ["abc", "", 0, -3, 2**53 - 1, "x" * 64])
def test_it_accepts_string_and_integer_ids(message_id):
    assert parse_text(json.dumps({"type": "ping", "id": message_id})).id == message_id


@pytest.mark.parametrize("seconds", [0.25, 1, 2.5, 60])
def test_it_accepts_intervals_in_range(seconds):
    command = parse_text(json.dumps({"type": "set_interval", "seconds": seconds}))
    assert command.args == {"seconds": float(seconds)}
    assert command.spec.permission == CONTROL_PERMISSION


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "set_interval"}',
        '{"type": "set_interval", "seconds": "5"}',
        '{"type": "set_interval", "seconds": true}',
        '{"type": "set_interval", "seconds": null}',
        '{"type": "set_interval", "seconds": 0.1}',
        '{"type": "set_interval", "seconds": 61}',
        '{"type": "set_interval", "seconds": NaN}',
        '{"type": "set_interval", "seconds": Infinity}',
        '{"type": "set_interval", "seconds": -1}',
    ],
)
def test_it_refuses_bad_intervals_as_invalid(text):
    error = refusal(text)
    assert error.code == "invalid"
    assert "seconds" in error.message


@pytest.mark.parametrize("target", [5, "all"])
def test_mark_read_takes_an_id_or_all(target):
    command = parse_text(json.dumps({"type": "mark_read", "id": target}))
    assert command.args == {"target": target}
    assert command.id == target
    assert command.spec.permission is None


@pytest.mark.parametrize("target", [None, 0, -1, "5", "everything", True, 1.0])
def test_mark_read_refuses_other_targets(target):
    assert refusal(json.dumps({"type": "mark_read", "id": target})).code == "invalid"


@pytest.mark.parametrize("command_type", ["ping", "pause", "resume", "snapshot"])
def test_commands_without_arguments_ignore_extra_fields(command_type):
    assert parse_text(json.dumps({"type": command_type, "extra": [1, 2]})).args == {}


def test_only_sampling_commands_need_control_and_snapshot_needs_view():
    needs = {spec.name: spec.permission for spec in protocol.COMMANDS.values()}
    assert {name for name, permission in needs.items() if permission == CONTROL_PERMISSION} == {
        "set_interval",
        "pause",
        "resume",
    }
    assert {name for name, permission in needs.items() if permission == VIEW_PERMISSION} == {"snapshot"}


def test_every_command_has_its_handler_on_the_consumer():
    missing = [
        spec.handler
        for spec in protocol.COMMANDS.values()
        if not callable(getattr(DashboardConsumer, spec.handler, None))
    ]
    assert missing == []


def test_every_consumer_command_method_is_a_defined_command():
    methods = {name for name in vars(DashboardConsumer) if name.startswith("command_")}
    assert methods == {spec.handler for spec in protocol.COMMANDS.values()}


def test_every_channel_layer_event_has_its_handler_and_is_dispatched_on_open_sockets():
    for event_type in events.EVENTS:
        handler = events.handler_name(event_type)
        assert callable(getattr(DashboardConsumer, handler, None)), f"{event_type} has no {handler}"
        assert handler in consumers.OPEN_SOCKET_HANDLERS


def test_every_event_builder_makes_the_type_it_is_registered_for():
    from dashboard.collector.sampling import SamplingState

    examples = {
        "presence.update": ([],),
        "sampling.changed": ("interval", SamplingState(), "staff"),
        "notification.message": ({"id": 1},),
        "notification.unread": (0,),
        "access.revoked": (),
        "layer.reconnected": (),
        "alert.changed": ({"id": 1}, "acknowledged", "oncall"),
    }
    assert set(examples) == set(events.EVENTS)
    for event_type, build in events.EVENTS.items():
        assert build(*examples[event_type])["type"] == event_type


def test_it_measures_frames_in_bytes_not_characters():
    assert not protocol.is_too_large("a" * protocol.MAX_FRAME_BYTES)
    assert protocol.is_too_large("a" * (protocol.MAX_FRAME_BYTES + 1))
    # 3 bytes each in UTF-8: fewer characters than the limit, more bytes.
    assert protocol.is_too_large("€" * (protocol.MAX_FRAME_BYTES // 3 + 1))
    assert protocol.is_too_large(b"\0" * (protocol.MAX_FRAME_BYTES + 1))
    assert not protocol.is_too_large(b"\0" * 10)


def test_excerpt_truncates_long_input():
    assert len(protocol.excerpt("x" * 100_000)) <= protocol.LOG_EXCERPT + 1
    assert protocol.excerpt("short") == "'short'"


def test_server_messages_echo_the_id_only_when_given():
    assert protocol.ack(None) == {"type": "ack"}
    assert protocol.ack("a", interval=2.0) == {"type": "ack", "interval": 2.0, "id": "a"}
    assert protocol.error("invalid", "bad", 3) == {
        "type": "error",
        "code": "invalid",
        "message": "bad",
        "id": 3,
    }


def test_snapshot_drops_values_json_cannot_carry():
    message = protocol.snapshot({"cpu": 1.5, "bad": float("nan"), "flag": True}, 10.0, None)
    assert message["values"] == {"cpu": 1.5}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limiter_allows_a_burst_then_refuses():
    limiter = RateLimiter(clock=FakeClock())
    allowed = [limiter.allow() for _ in range(50)]
    assert allowed.count(True) == RateLimiter.BURST
    assert not limiter.exhausted


def test_rate_limiter_allows_a_steady_twenty_per_second():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(20 * 30):
        clock.now += 1 / 20
        assert limiter.allow()


def test_rate_limiter_gives_up_on_a_sustained_flood():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(40 * 10):  # 40 messages per second for ten seconds
        clock.now += 1 / 40
        limiter.allow()
        if limiter.exhausted:
            break
    assert limiter.exhausted


def test_rate_limiter_forgives_a_client_that_slows_down():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(50):
        limiter.allow()
    assert limiter.strikes == 10
    clock.now += 5  # the bucket is full again
    assert limiter.allow()
    assert limiter.strikes == 0

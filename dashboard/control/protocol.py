"""The `/ws/dashboard/` protocol: parsing and validating client messages, building server ones.

Kept apart from the consumer so the rules can be read (and tested) on their own:
the consumer only decides *what to do* with a `Command` this module has already
checked. Nothing here touches the network, Redis or the database, and nothing
here raises on client input except `ProtocolError`, which carries the code and
the message the client receives. The full description, with an example per
message, is docs/protocol.md.
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.models import MAX_SILENCE_MINUTES, MIN_SILENCE_MINUTES
from dashboard.access import ALERT_PERMISSION, CONTROL_PERMISSION, VIEW_PERMISSION
from dashboard.collector.sampling import validate_interval
from dashboard.series import parse_series_id

PROTOCOL_VERSION = 1

# Larger frames are refused with `too_large` and the socket closed (CLOSE_TOO_LARGE).
MAX_FRAME_BYTES = 64 * 1024
# A client id is echoed in the answer, so it must stay small.
MAX_ID_LENGTH = 64
MAX_SAFE_INTEGER = 2**53 - 1
# Logs quote at most this much of a bad message.
LOG_EXCERPT = 200

# Error codes: stable, clients branch on them.
BAD_JSON = "bad_json"
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"
ERROR_CODES = (BAD_JSON, UNKNOWN_TYPE, INVALID, FORBIDDEN, NOT_FOUND, TOO_LARGE, RATE_LIMITED, UNAVAILABLE)

# Close codes. The private-use range (4000-4999) mirrors the standard meanings:
# 4401 ~ HTTP 401, 4008 ~ 1008 policy violation, 4009 ~ 1009 message too big.
# Not 1008/1009 themselves: daphne's WebSocket layer (autobahn) lets an
# application send only 1000 and 3000-4999 and raises on anything else, leaving
# the socket open (daphne issue #374); browsers apply the same rule to close().
CLOSE_UNAUTHENTICATED = 4401
CLOSE_POLICY_VIOLATION = 4008
CLOSE_TOO_LARGE = 4009
# The socket was accepted but could not be set up (Redis or the database away): 1011's meaning.
CLOSE_SETUP_FAILED = 4011
# The user's access changed (logout, password, deactivation, permissions, groups):
# the page reconnects and gets what the user may have now, or is refused.
CLOSE_REVOKED = 4403
# The worker is restarting (the meaning of the standard 1012): reconnect at once, another worker answers.
CLOSE_RESTART = 4012


class ProtocolError(Exception):
    """A client message the server refuses; becomes an `error` message."""

    def __init__(self, code, message, message_id=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_id = message_id


@dataclass(frozen=True)
class Command:
    """A client message that passed `parse`: its type, echoed id and parsed arguments."""

    type: str
    id: str | int | None = None
    args: dict = field(default_factory=dict)

    @property
    def spec(self):
        return COMMANDS[self.type]


@dataclass(frozen=True)
class CommandSpec:
    """One WebSocket command: its name, how its arguments are read (a function of the
    decoded message returning the args dict, raising ValueError with the client's
    message), the permission it needs (None: any signed-in user) and, derived from
    the name, the consumer method that runs it."""

    name: str
    arguments: Callable[[dict], dict]
    permission: str | None = None

    @property
    def handler(self):
        return f"command_{self.name}"


def _no_arguments(content):
    return {}


def _set_interval_arguments(content):
    if "seconds" not in content:
        raise ValueError("set_interval needs `seconds`")
    try:
        return {"seconds": validate_interval(content["seconds"])}
    except ValueError as exc:
        raise ValueError(f"`seconds`: {exc}")


def _mark_read_arguments(content):
    # `id` names the notification to mark (or "all"); it is also echoed like any id.
    target = content.get("id")
    if target == "all":
        return {"target": "all"}
    if isinstance(target, int) and not isinstance(target, bool) and 0 < target <= MAX_SAFE_INTEGER:
        return {"target": target}
    raise ValueError('mark_read needs `id`: a notification id (a positive integer) or "all"')


def _rule_argument(content, command):
    rule = content.get("rule")
    if isinstance(rule, int) and not isinstance(rule, bool) and 0 < rule <= MAX_SAFE_INTEGER:
        return rule
    raise ValueError(f"{command} needs `rule`: an alert rule id (a positive integer)")


def _series_argument(content, command):
    """The optional `series`: one series' alert of the rule (without it, every series)."""
    series = content.get("series")
    if series is None:
        return None
    if not isinstance(series, str):
        raise ValueError(f"{command}: `series` must be a series id (text)")
    try:
        parse_series_id(series)
        return series
    except ValueError as exc:
        raise ValueError(f"{command}: `series`: {exc}") from None


def _ack_alert_arguments(content):
    return {"rule": _rule_argument(content, "ack_alert"), "series": _series_argument(content, "ack_alert")}


def _unsilence_alert_arguments(content):
    return {
        "rule": _rule_argument(content, "unsilence_alert"),
        "series": _series_argument(content, "unsilence_alert"),
    }


def _silence_alert_arguments(content):
    rule = _rule_argument(content, "silence_alert")
    series = _series_argument(content, "silence_alert")
    minutes = content.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValueError("silence_alert needs `minutes`: a whole number of minutes")
    if not MIN_SILENCE_MINUTES <= minutes <= MAX_SILENCE_MINUTES:
        raise ValueError(f"`minutes` must be from {MIN_SILENCE_MINUTES} to {MAX_SILENCE_MINUTES}")
    return {"rule": rule, "minutes": minutes, "series": series}


# Every command, once. The consumer runs `spec.handler` after `dashboard.access`
# allowed `spec.permission`; dashboard/tests/test_protocol.py fails if a handler is missing.
COMMANDS = {
    spec.name: spec
    for spec in (
        CommandSpec("ping", _no_arguments),
        CommandSpec("set_interval", _set_interval_arguments, CONTROL_PERMISSION),
        CommandSpec("pause", _no_arguments, CONTROL_PERMISSION),
        CommandSpec("resume", _no_arguments, CONTROL_PERMISSION),
        CommandSpec("snapshot", _no_arguments, VIEW_PERMISSION),
        CommandSpec("mark_read", _mark_read_arguments),
        CommandSpec("ack_alert", _ack_alert_arguments, ALERT_PERMISSION),
        CommandSpec("silence_alert", _silence_alert_arguments, ALERT_PERMISSION),
        CommandSpec("unsilence_alert", _unsilence_alert_arguments, ALERT_PERMISSION),
    )
}


def is_too_large(frame):
    """Whether a text or binary frame is over MAX_FRAME_BYTES on the wire."""
    if isinstance(frame, bytes):
        return len(frame) > MAX_FRAME_BYTES
    if len(frame) * 4 <= MAX_FRAME_BYTES:
        return False  # even at 4 bytes a character it fits: no need to encode it
    return len(frame) > MAX_FRAME_BYTES or len(frame.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES


def decode(text):
    """JSON text to a Python value, or ProtocolError(bad_json)."""
    try:
        return json.loads(text)
    # ValueError covers JSONDecodeError and integers too long to convert;
    # RecursionError a deeply nested array.
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_JSON, "the message is not valid JSON")


def _message_id(content):
    """The client's `id` if it is one we can echo, else ProtocolError(invalid)."""
    message_id = content.get("id")
    if message_id is None:
        return None
    if isinstance(message_id, str) and len(message_id) <= MAX_ID_LENGTH:
        return message_id
    if (
        isinstance(message_id, int)
        and not isinstance(message_id, bool)
        and abs(message_id) <= MAX_SAFE_INTEGER
    ):
        return message_id
    raise ProtocolError(INVALID, f"`id` must be a string of at most {MAX_ID_LENGTH} characters or an integer")


def parse(content):
    """A decoded client message to a Command, or ProtocolError naming what is wrong."""
    if not isinstance(content, dict):
        raise ProtocolError(INVALID, "a message must be a JSON object")
    message_id = _message_id(content)
    message_type = content.get("type")
    if not isinstance(message_type, str):
        raise ProtocolError(INVALID, "a message needs a string `type`", message_id)
    spec = COMMANDS.get(message_type)
    if spec is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {excerpt(message_type, 40)}", message_id)
    try:
        return Command(type=message_type, id=message_id, args=spec.arguments(content))
    except ValueError as exc:
        raise ProtocolError(INVALID, str(exc), message_id)


def excerpt(value, limit=LOG_EXCERPT):
    """A short repr for logs and messages: bad input is never echoed whole."""
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "…"


def server_time():
    return round(time.time(), 3)


# Server messages. `id` appears only when the client sent one.


def _with_id(message, message_id):
    if message_id is not None:
        message["id"] = message_id
    return message


def ack(message_id, **details):
    return _with_id({"type": "ack", **details}, message_id)


def error(code, message, message_id=None):
    return _with_id({"type": "error", "code": code, "message": message}, message_id)


def pong(message_id):
    return _with_id({"type": "pong", "server_time": server_time()}, message_id)


def hello(user, sampling, can_control, online, notifications, alerts=(), can_manage_alerts=False):
    return {
        "type": "hello",
        "user": {"id": user.pk, "username": user.get_username()},
        "protocol": PROTOCOL_VERSION,
        "server_time": server_time(),
        "interval": sampling.interval,
        "paused": sampling.paused,
        "can_control": can_control,
        "can_manage_alerts": can_manage_alerts,
        "online": online,
        "notifications": notifications,
        "alerts": list(alerts),
    }


def alert_state(rule, change, by, series=None):
    """A rule (`series`: one series' alert of it, else null) fired, resolved, was
    acknowledged, silenced or unsilenced (`by` is null for the collector)."""
    return {"type": "alert_state", "rule": rule, "change": change, "by": by, "series": series}


def interval_changed(interval, by):
    return {"type": "interval_changed", "interval": interval, "by": by}


def sampling_state(interval, paused, by):
    return {"type": "sampling_state", "interval": interval, "paused": paused, "by": by}


def presence(online):
    return {"type": "presence", "online": online, "count": len(online)}


def snapshot(values, ts, message_id):
    finite = {name: value for name, value in values.items() if _is_finite_number(value)}
    return _with_id({"type": "snapshot", "values": finite, "ts": ts}, message_id)


def notification(payload, unread):
    return {"type": "notification", "notification": payload, "unread": unread}


def unread(count):
    return {"type": "unread", "count": count}


def _is_finite_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class RateLimiter:
    """A token bucket per connection: RATE messages per second, bursts up to BURST.

    A message over the limit is refused (`rate_limited`) rather than queued. The
    strikes count refused messages since the bucket was last full again; at
    MAX_STRIKES the client is not slowing down and the socket is closed (CLOSE_POLICY_VIOLATION).
    """

    RATE = 20.0
    BURST = 40.0
    MAX_STRIKES = 20

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.tokens = self.BURST
        self.updated = clock()
        self.strikes = 0

    def allow(self):
        now = self.clock()
        self.tokens = min(self.BURST, self.tokens + (now - self.updated) * self.RATE)
        self.updated = now
        if self.tokens >= self.BURST:
            self.strikes = 0
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.strikes += 1
        return False

    @property
    def exhausted(self):
        return self.strikes >= self.MAX_STRIKES

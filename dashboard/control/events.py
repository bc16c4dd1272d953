"""The channel-layer events that reach dashboard sockets, each defined once.

Any process may send these (a worker's consumer, presence, `notify` from a shell
or a command); every `DashboardConsumer` in a group receives them and turns them
into a server message (docs/protocol.md). An event's `type` names the consumer
method that handles it, Channels-style (`presence.update` -> `presence_update`);
`EVENTS` lists every type, the consumer's dispatch is derived from it, and
dashboard/tests/test_protocol.py fails if one has no handler.

Build an event with the function named after it and send it with
`channel_layer.group_send(group, event)`.
"""

from channels.consumer import get_handler_name

EVENTS = {}


def event(event_type):
    """Register a builder for the `event_type` event; its output is what group_send sends."""

    def register(build):
        EVENTS[event_type] = build
        return build

    return register


def handler_name(event_type):
    return get_handler_name({"type": event_type})


@event("presence.update")
def presence_update(online):
    """Who is online now, the full list (dashboard.control.presence)."""
    return {"type": "presence.update", "online": online}


@event("sampling.changed")
def sampling_changed(change, state, by):
    """The collector's interval (`change="interval"`) or paused flag (`"paused"`) was set."""
    return {
        "type": "sampling.changed",
        "change": change,
        "interval": state.interval,
        "paused": state.paused,
        "by": by,
    }


@event("notification.message")
def notification_message(payload, message=None):
    """A new notification (its `as_dict()`) for the sockets of its recipients; `message`
    (`Notification.message`) lets each socket say it in its viewer's language."""
    return {"type": "notification.message", "notification": payload, "message": message}


@event("alert.changed")
def alert_changed(state, change, by, series=None):
    """An alert rule (or `series`, the id of one series' alert of it) fired, resolved, or
    was acknowledged, silenced or unsilenced (`by`: who, None for the collector);
    `state` is the rule's `as_state()`."""
    return {"type": "alert.changed", "state": state, "change": change, "by": by, "series": series}


@event("notification.unread")
def notification_unread(count):
    """A user's unread count changed (marked read in another tab or on another worker)."""
    return {"type": "notification.unread", "count": count}


@event("access.revoked")
def access_revoked(session=None):
    """The user's access changed (dashboard.revocation): their sockets close, to reconnect
    afresh; with `session` (a session tag) only that session's sockets close."""
    event = {"type": "access.revoked"}
    if session is not None:
        event["session"] = session
    return event


@event("layer.reconnected")
def layer_reconnected():
    """Never sent through Redis: this worker's channel layer (dashboard.control.layer) puts
    it in the queue of each of its sockets once it has subscribed again after losing Redis,
    so each reads the notifications it may have missed."""
    return {"type": "layer.reconnected"}

"""The `/ws/dashboard/` consumer: commands, presence and notifications on one socket per tab.

Thin on purpose: connect/disconnect manage groups, presence and the `hello`;
`dashboard.control.protocol` decides whether a client message is acceptable; each
command and each channel-layer event has one small handler named after it. What
the hello carries is read in `dashboard.control.hello`, the `snapshot` in
`dashboard.control.snapshot`, and this worker's open sockets are listed in
`dashboard.control.sockets`. Database work happens only through
database_sync_to_async (`dashboard.control.database`, `_change_alert`,
`_fetch_mark_read`), which is why `dispatch` can skip Channels' per-message
connection cleanup.
The protocol itself is described in docs/protocol.md.
"""

import contextlib
import logging
from functools import partial

from autobahn.exception import Disconnected as AutobahnDisconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError
from uvicorn.protocols.utils import ClientDisconnected as UvicornClientDisconnected

from alerts import actions as alert_actions
from audit.services import record as audit_record
from dashboard import access, connections, revocation
from dashboard.collector import sampling
from dashboard.control import events, hello, presence, protocol, sockets
from dashboard.control.database import in_database_pool
from dashboard.control.protocol import ProtocolError
from dashboard.control.scope import language_from_scope, last_notification_from
from dashboard.control.snapshot import latest_values
from dashboard.groups import DASHBOARD_GROUP, user_group_name
from dashboard.loops import dispatch_in_arrival_order
from notifications import services as notification_services
from notifications.messages import localize, localize_rule

logger = logging.getLogger(__name__)


# Channels runs `aclose_old_connections` (a hop to the worker's one thread-sensitive
# thread) before every handler. On group broadcasts that is a large share of a
# worker's CPU (docs/performance.md, "Design choices and their measurements"), and
# in a connect storm it queues every handshake behind the
# others' database work, so no handler here pays it: database work goes through
# database_sync_to_async, which cleans up connections on its own thread anyway.
LIFE_CYCLE_HANDLERS = frozenset({"websocket_connect", "websocket_disconnect"})
# Handlers that only make sense on an accepted socket: client frames and every
# channel-layer event (dashboard.control.events defines them).
OPEN_SOCKET_HANDLERS = frozenset({"websocket_receive", *map(events.handler_name, events.EVENTS)})

# What each server raises when the application sends on a socket that has closed
# underneath it: daphne (autobahn) while the close handshake runs, uvicorn once
# the connection is gone.
SOCKET_GONE = (AutobahnDisconnected, UvicornClientDisconnected)

# Where a group event keeps what it was encoded to, per audience (send_shared).
SHARED_ENCODINGS = "_encoded"


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    accepted = False
    closing = False

    async def __call__(self, scope, receive, send):
        """Channels' AsyncConsumer.__call__, dispatching through `dispatch_in_arrival_order`:
        its own loop creates a task and an asyncio.wait for every message, a large share
        of a broadcast's CPU per socket (docs/performance.md)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = partial(self.channel_layer.receive, self.channel_name)
        self.base_send = self._unless_gone(send)
        with contextlib.suppress(StopConsumer):
            await dispatch_in_arrival_order([receive, self.channel_receive], self.dispatch)

    def _unless_gone(self, send):
        """The server's `send`, for a socket that may have just closed.

        A broadcast can reach this consumer after the socket closed (we closed it,
        or the client left) and before the disconnect that cleans up is handled:
        there is nobody to read it, so it is dropped quietly on either server."""

        async def send_unless_gone(message):
            if self.closing and message["type"] == "websocket.send":
                return
            try:
                await send(message)
            except SOCKET_GONE as exc:
                self.closing = True
                logger.debug("dropped a %s for a socket that has closed: %r", message["type"], exc)

        return send_unless_gone

    async def dispatch(self, message):
        handler_name = get_handler_name(message)
        if handler_name in OPEN_SOCKET_HANDLERS:
            if not self.accepted:
                return  # a group event queued while a refused or closing socket left its groups
            await getattr(self, handler_name)(message)
        elif handler_name in LIFE_CYCLE_HANDLERS:
            await getattr(self, handler_name)(message)
        else:
            await super().dispatch(message)

    # Connection life cycle

    async def connect(self):
        # Authentication is the one thing decided before the handshake completes;
        # everything else runs after accept(), so a connect storm does not hold
        # sockets past daphne's handshake timeout while it waits on the database.
        self.user = self.scope.get("user")
        session = self.scope.get("session")
        # Ending this session (not another of the user's) closes this socket.
        self.session_tag = revocation.session_tag(session.session_key if session is not None else None)
        self.joined = []
        self.present = False
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        if settings.MFA_REQUIRED != "off":
            # Under MFA_REQUIRED a user who has not enrolled a second factor is not fully
            # signed in: no socket, as no stream (dashboard.access.second_factor_due).
            try:
                due = await hello.second_factor_due(self.user)
            except (DatabaseError, OSError) as exc:
                logger.warning("refusing a dashboard socket: could not check its second factor: %s", exc)
                await self.close(code=protocol.CLOSE_SETUP_FAILED)
                return
            if due:
                await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
                return
        self.limiter = protocol.RateLimiter()
        self.language = language_from_scope(self.scope)
        self.claimed = connections.claim("ws", self.user.pk)
        # A revocation drops this worker's remembered access answers (the user's sockets
        # themselves are closed through their group, dashboard.revocation).
        revocation.listen()
        await self.accept()
        self.accepted = True
        connections.opened("ws")
        if not self.claimed:
            limit = settings.MAX_CONNECTIONS_PER_USER
            await self._send_error(protocol.RATE_LIMITED, f"too many open sockets: at most {limit} per user")
            await self._leave()
            await self._close(protocol.CLOSE_POLICY_VIOLATION)
            return
        sockets.opened(self)
        try:
            async with sockets.connect_slot():
                await self._join()
        except (RedisError, OSError, DatabaseError) as exc:
            logger.warning("closing a dashboard socket it could not set up: %s", exc)
            await self._leave()
            await self._close(protocol.CLOSE_SETUP_FAILED)

    async def _join(self):
        # Client messages and group events wait in this consumer's queue until
        # connect() returns, so `hello` is always the first message sent.
        self.permissions, notification_groups = await hello.socket_access(self.user)
        # Notification groups before the hello state, so nothing falls into the gap.
        for group in [DASHBOARD_GROUP, *notification_groups]:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)
        self.present = True
        # Not inside the gather: if something else failed first, a join still
        # running would outlive _leave() and keep the user online for good.
        online = await self._join_presence()
        since_id = last_notification_from(self.scope["query_string"])
        state = await hello.hello_state(self.user, since_id, self.language)
        notifications = state.notifications
        self.unread = notifications["unread"]
        self.delivered = {n["id"] for n in notifications["recent"] + notifications["missed"]}
        # Newer than this is what a catch-up after a lost subscription reads again.
        self.seen_up_to = max(self.delivered, default=0)
        await self.send_json(
            protocol.hello(
                self.user,
                state.sampling,
                self.can_control,
                self._visible(online),
                notifications,
                state.alerts,
                self.can_manage_alerts,
            )
        )

    @property
    def can_control(self):
        return access.CONTROL_PERMISSION in self.permissions

    @property
    def can_view_metrics(self):
        return access.VIEW_PERMISSION in self.permissions

    @property
    def can_manage_alerts(self):
        return access.ALERT_PERMISSION in self.permissions

    @property
    def client_address(self):
        client = self.scope.get("client") or ("",)
        return client[0] or ""

    async def _join_presence(self):
        await presence.tracker().join(self.user.pk, self.user.get_username())
        return await presence.online()

    async def disconnect(self, code):
        await self._leave()

    async def _leave(self):
        # Every step is attempted even if one fails: a group left behind would
        # receive every broadcast for the life of the worker.
        for group in self.joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.exception("could not leave group %s", group)
        self.joined = []
        if self.present:
            self.present = False
            try:
                await presence.tracker().leave(self.user.pk)
            except Exception as exc:  # the entry expires by itself
                logger.warning("could not remove %s from presence: %s", self.user.pk, exc)
        if self.accepted:
            self.accepted = False
            connections.closed("ws")
        if getattr(self, "claimed", False):
            self.claimed = False
            connections.release("ws", self.user.pk)

    @database_sync_to_async
    def _change_alert(self, action, *args, series=None):
        try:
            state = action(*args, self.user, self.client_address, series=series)
        except alert_actions.RuleNotFound as exc:
            raise ProtocolError(protocol.NOT_FOUND, str(exc))
        except (alert_actions.NotFiring, ValueError) as exc:
            raise ProtocolError(protocol.INVALID, str(exc))
        alert_actions.bump_version_quietly()
        return state

    @database_sync_to_async
    def _fetch_mark_read(self, target):
        try:
            return notification_services.mark_read(self.user, target)
        except notification_services.NotificationNotFound:
            raise ProtocolError(protocol.NOT_FOUND, f"you have no notification {target}")

    # Client messages

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            await self._receive_frame(text_data, bytes_data)
        except Exception:
            # Never let one message take the socket (or the worker's log) down.
            logger.exception("unexpected failure handling a dashboard message")
            await self._send_error(protocol.UNAVAILABLE, "the server could not handle this message")

    async def _receive_frame(self, text_data, bytes_data):
        if self.closing:
            return
        frame = text_data if text_data is not None else (bytes_data or b"")
        if protocol.is_too_large(frame):
            logger.info("closing socket of user %s: a %d-character frame", self.user.pk, len(frame))
            await self._send_error(
                protocol.TOO_LARGE, f"messages are limited to {protocol.MAX_FRAME_BYTES} bytes"
            )
            await self._close(protocol.CLOSE_TOO_LARGE)
            return
        if not self.limiter.allow():
            await self._refuse_flood()
            return
        if text_data is None:
            await self._send_error(protocol.BAD_JSON, "binary frames are not supported: send JSON as text")
            return
        try:
            command = protocol.parse(protocol.decode(text_data))
        except ProtocolError as exc:
            logger.debug(
                "bad message from user %s: %s %s", self.user.pk, exc.code, protocol.excerpt(text_data)
            )
            await self._send_error(exc.code, exc.message, exc.message_id)
            return
        await self._run(command)

    async def _refuse_flood(self):
        if self.limiter.exhausted:
            logger.info("closing socket of user %s: too many messages", self.user.pk)
            await self._send_error(protocol.RATE_LIMITED, "too many messages; closing")
            await self._close(protocol.CLOSE_POLICY_VIOLATION)
        else:
            per_second = int(protocol.RateLimiter.RATE)
            await self._send_error(protocol.RATE_LIMITED, f"more than {per_second} messages per second")

    async def _run(self, command):
        spec = command.spec
        try:
            refusal = access.command_refusal(spec.name, spec.permission, self.permissions)
            if refusal:
                raise ProtocolError(protocol.FORBIDDEN, refusal)
            await getattr(self, spec.handler)(command)
        except ProtocolError as exc:
            await self._send_error(exc.code, exc.message, command.id)
        except (RedisError, OSError, DatabaseError) as exc:
            logger.warning("could not run %s for user %s: %s", command.type, self.user.pk, exc)
            await self._send_error(protocol.UNAVAILABLE, "the server cannot do that right now", command.id)

    async def command_ping(self, command):
        await self.send_json(protocol.pong(command.id))

    async def command_set_interval(self, command):
        before = await sampling.aget_state()
        state = await sampling.aset_interval(command.args["seconds"])
        await self._audit("set_interval", {"interval": before.interval}, {"interval": state.interval})
        await self._announce_sampling("interval", state)
        await self.send_json(protocol.ack(command.id, interval=state.interval))

    async def command_pause(self, command):
        await self._set_paused(command, True)

    async def command_resume(self, command):
        await self._set_paused(command, False)

    async def _set_paused(self, command, paused):
        before = await sampling.aget_state()
        state = await sampling.aset_paused(paused)
        await self._audit(command.type, {"paused": before.paused}, {"paused": state.paused})
        await self._announce_sampling("paused", state)
        await self.send_json(protocol.ack(command.id, paused=state.paused))

    async def _audit(self, action, before, after):
        # After the change (Redis is its record): a database away loses the entry, not the action.
        try:
            entry = partial(audit_record, actor=self.user.get_username(), address=self.client_address)
            await in_database_pool(entry, action, "sampling", before, after)
        except DatabaseError as exc:
            logger.warning("could not write the audit entry for %s: %s", action, exc)

    async def command_ack_alert(self, command):
        args = command.args
        state = await self._change_alert(alert_actions.acknowledge, args["rule"], series=args["series"])
        await self._announce_alert(state, "acknowledged", args["series"])
        await self.send_json(protocol.ack(command.id, rule=localize_rule(state, self.language)))

    async def command_silence_alert(self, command):
        args = command.args
        state = await self._change_alert(
            alert_actions.silence, args["rule"], args["minutes"], series=args["series"]
        )
        await self._announce_alert(state, "silenced", args["series"])
        await self.send_json(protocol.ack(command.id, rule=localize_rule(state, self.language)))

    async def command_unsilence_alert(self, command):
        args = command.args
        state = await self._change_alert(alert_actions.unsilence, args["rule"], series=args["series"])
        await self._announce_alert(state, "unsilenced", args["series"])
        await self.send_json(protocol.ack(command.id, rule=localize_rule(state, self.language)))

    async def _announce_alert(self, state, change, series=None):
        await self.channel_layer.group_send(
            DASHBOARD_GROUP, events.alert_changed(state, change, self.user.get_username(), series)
        )

    async def command_snapshot(self, command):
        values, ts = await latest_values()
        await self.send_json(protocol.snapshot(values, ts, command.id))

    async def command_mark_read(self, command):
        unread = await self._fetch_mark_read(command.args["target"])
        await self.send_json(protocol.ack(command.id, unread=unread))
        # Every tab of this user, on every worker, shows the new count.
        await self.channel_layer.group_send(user_group_name(self.user.pk), events.notification_unread(unread))

    async def _announce_sampling(self, change, state):
        await self.channel_layer.group_send(
            DASHBOARD_GROUP, events.sampling_changed(change, state, self.user.get_username())
        )

    # Channel-layer events

    async def send_shared(self, event, audience, build):
        """Send `build()`, the message every socket of `audience` gets for `event`, JSON
        encoded once per worker: a group event is one object for all this worker's
        sockets (dashboard.control.layer), and the encoding is kept on it."""
        encoded = event.setdefault(SHARED_ENCODINGS, {})
        text = encoded.get(audience)
        if text is None:
            text = encoded[audience] = await self.encode_json(build())
        await self.send(text_data=text)

    async def presence_update(self, event):
        if self.can_view_metrics:
            await self.send_shared(event, "viewers", lambda: protocol.presence(event["online"]))
        else:
            await self.send_json(protocol.presence(self._visible(event["online"])))

    def _visible(self, online):
        """Who else is online is for those who may view the dashboard's metrics; anyone
        else sees only themselves (no list of usernames for a user with no permission)."""
        if self.can_view_metrics:
            return online
        return [person for person in online if person["id"] == self.user.pk]

    async def sampling_changed(self, event):
        if event["change"] == "interval":
            message = partial(protocol.interval_changed, event["interval"], event["by"])
        else:
            message = partial(protocol.sampling_state, event["interval"], event["paused"], event["by"])
        await self.send_shared(event, "everyone", message)

    async def notification_message(self, event):
        notification = localize(event["notification"], event.get("message"), self.language)
        if notification.get("id") in self.delivered:
            return  # already in this socket's hello
        self.delivered.add(notification.get("id"))
        self.unread += 1
        await self.send_json(protocol.notification(notification, self.unread))

    async def layer_reconnected(self, event):
        """This worker was away from Redis (dashboard.control.layer): whatever was pushed
        meanwhile never came, so read it from the database, now that the groups are
        subscribed again; a re-push that does arrive later is dropped as delivered."""
        try:
            # Straight from the database, not the shared hello answers: their version key
            # may not have moved while Redis was away.
            state = await in_database_pool(
                notification_services.hello_state, self.user, self.seen_up_to, self.language
            )
        except DatabaseError as exc:
            logger.warning("could not catch up notifications for user %s: %s", self.user.pk, exc)
            return
        self.unread = state["unread"]
        for notification in state["missed"]:
            if notification["id"] not in self.delivered:
                self.delivered.add(notification["id"])
                await self.send_json(protocol.notification(notification, self.unread))
        self.seen_up_to = max(self.delivered, default=0)
        await self.send_json(protocol.unread(self.unread))

    async def alert_changed(self, event):
        def message():
            state = localize_rule(event["state"], self.language)
            return protocol.alert_state(state, event["change"], event["by"], event.get("series"))

        await self.send_shared(event, self.language, message)

    async def access_revoked(self, event):
        if event.get("session") is not None:
            # One session ended: this socket's, or another's that leaves this one be.
            if event["session"] == self.session_tag:
                await self._close(protocol.CLOSE_REVOKED)
            return
        # What this worker remembers about the user is stale too: the reconnect must ask again.
        access.cache.forget_user(self.user.pk)
        await self._close(protocol.CLOSE_REVOKED)

    async def notification_unread(self, event):
        self.unread = event["count"]
        await self.send_json(protocol.unread(event["count"]))

    # Sending

    async def _send_error(self, code, message, message_id=None):
        if not self.closing:
            await self.send_json(protocol.error(code, message, message_id))

    async def _close(self, code):
        self.closing = True
        await self.close(code=code)

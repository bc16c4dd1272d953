"""The channel layer: channels_redis' pub/sub layer, telling this worker's sockets when
it has been away from Redis.

Pub/sub keeps nothing: whatever was published to a group while a worker's
subscription was down (Redis restarting, a network blip) never reaches its
sockets. redis-py subscribes again by itself when the connection comes back; this
layer then puts a `layer.reconnected` message in the queue of every socket of the
worker, after the subscriptions are back, so each socket can read from the
database what it may have missed (see DashboardConsumer.layer_reconnected).

It also logs a lost connection once per outage as a warning, where channels_redis
logs a traceback every second for as long as Redis is away; and it decodes a group
message once per worker rather than once per socket.
"""

import asyncio
import logging

from channels_redis import pubsub
from redis.asyncio.client import PubSub

from dashboard.control import events

logger = logging.getLogger(__name__)


class ResubscribingPubSub(PubSub):
    def __init__(self, *args, on_resubscribed, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_resubscribed = on_resubscribed

    async def on_connect(self, connection):
        # redis-py calls this on every reconnect (not on the first connect, which has
        # nothing to restore) and subscribes again here.
        await super().on_connect(connection)
        if self.channels:
            self.on_resubscribed()


class ShardConnection(pubsub.RedisSingleShardConnection):
    down = False

    def _ensure_redis(self):
        if self._redis is None:
            super()._ensure_redis()
            self._pubsub = ResubscribingPubSub(
                self._redis.connection_pool, on_resubscribed=self._resubscribed
            )

    def _resubscribed(self):
        logger.info("channel layer subscribed again after losing Redis")
        self.down = False
        layer = self.channel_layer
        message = layer.channel_layer.serialize(events.layer_reconnected())
        for queue in layer.channels.values():
            queue.put_nowait(message)

    def _receive_message(self, message):
        """A group message is decoded once and the same event handed to every socket of
        the group on this worker, which then encodes what it sends once for all of them
        (DashboardConsumer.send_shared): a broadcast costs each socket its send, not a
        decoding and an encoding of its own. Handlers only read an event."""
        if message is None:
            return
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        layer = self.channel_layer
        if name in layer.channels or name not in layer.groups:
            return super()._receive_message(message)
        queues = [layer.channels[member] for member in layer.groups[name] if member in layer.channels]
        if queues:
            event = layer.channel_layer.deserialize(message["data"])
            for queue in queues:
                queue.put_nowait(event)

    async def _do_receiving(self):
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                if not self.down:
                    logger.warning("channel layer lost Redis (%s); retrying every second", exc)
                self.down = True
                await asyncio.sleep(1)


class LoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs):
        super().__init__(hosts, *args, **kwargs)
        self._shards = [ShardConnection(host, self) for host in pubsub.decode_hosts(hosts)]


class ResyncingPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):
    """CHANNEL_LAYERS' backend: RedisPubSubChannelLayer with the loop layer above."""

    def deserialize(self, message):
        # A group event this worker already decoded for every socket (ShardConnection).
        if isinstance(message, dict):
            return message
        return super().deserialize(message)

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            pubsub._wrap_close(self, loop)
        return layer

"""This worker's sockets: how many may be setting up at once, and which are open, so a
stopping worker can close them (registered with dashboard.draining)."""

import asyncio
import logging
import weakref

from dashboard import draining
from dashboard.control import protocol
from dashboard.loops import PerLoop

logger = logging.getLogger(__name__)

# Sockets that may be setting up at once on one worker: each setup holds a few
# Redis connections, and redis.asyncio's pool raises rather than queues past its
# size, which in a connect storm would close sockets that could have waited.
SETUP_SLOTS = 100
connect_slot = PerLoop(lambda: asyncio.Semaphore(SETUP_SLOTS))

# This worker's accepted sockets (consumers), so a stopping worker can close them.
_open_sockets = weakref.WeakSet()


def opened(consumer):
    _open_sockets.add(consumer)


async def close_all_sockets(code=protocol.CLOSE_RESTART):
    """Close every accepted socket of this worker with `code`; returns how many."""
    sockets = [consumer for consumer in _open_sockets if consumer.accepted and not consumer.closing]
    for consumer in sockets:
        try:
            await consumer._close(code)
        except Exception as exc:  # already gone: nothing to hand over
            logger.debug("could not close a socket while draining: %s", exc)
    return len(sockets)


draining.on_drain("sockets closed", close_all_sockets)

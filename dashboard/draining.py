"""A worker that is asked to stop hands its streams and sockets to the others first.

deploy/worker.py calls `drain()` on the worker's event loop when SIGTERM arrives,
after the server has stopped accepting connections and before it closes what is
left: every SSE stream ends with a short `retry:` so the browser's EventSource
reconnects at once (to another worker, through nginx) and resumes by
`Last-Event-ID`; every control socket closes with `CLOSE_RESTART`, which the page
answers by reconnecting at once. Nothing is published by a worker's streams, so
ending them loses no event: the client resumes from the last id it saw.
"""

import asyncio
import logging
import time

from dashboard import connections

logger = logging.getLogger(__name__)

_draining = False


def is_draining():
    return _draining


async def drain(timeout):
    """End this worker's streams and sockets; wait (at most `timeout` s) until they are gone."""
    global _draining
    _draining = True
    from dashboard.control.sockets import close_all_sockets
    from dashboard.stream.hub import end_all_streams

    streams = end_all_streams()
    sockets = await close_all_sockets()
    logger.info("draining: ended %d SSE streams, closed %d sockets", streams, sockets)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if connections.local_count("sse") == 0 and connections.local_count("ws") == 0:
            return True
        await asyncio.sleep(0.05)
    logger.warning(
        "draining: %d streams and %d sockets still open after %.0f s",
        connections.local_count("sse"),
        connections.local_count("ws"),
        timeout,
    )
    return False

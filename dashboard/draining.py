"""A worker that is asked to stop hands its streams and sockets to the others first.

deploy/worker.py calls `drain()` on the worker's event loop when SIGTERM arrives,
after the server has stopped accepting connections and before it closes what is
left. Each transport registers, with `on_drain`, the step that hands its clients
over: every SSE stream ends with a short `retry:` so the browser's EventSource
reconnects at once (to another worker, through nginx) and resumes by
`Last-Event-ID`; every control socket closes with `CLOSE_RESTART`, which the page
answers by reconnecting at once. Nothing is published by a worker's streams, so
ending them loses no event: the client resumes from the last id it saw.
"""

import asyncio
import inspect
import logging
import time

from dashboard import connections

logger = logging.getLogger(__name__)

_draining = False
_steps = []


def is_draining():
    return _draining


def on_drain(what, step):
    """Run `step()` (a function or a coroutine function returning how many clients it
    sent away) when this worker drains; `what` names them in the log."""
    if all(registered is not step for _, registered in _steps):
        _steps.append((what, step))
    return step


async def drain(timeout):
    """Run every registered step; wait (at most `timeout` s) until the streams and
    sockets are gone."""
    global _draining
    _draining = True
    done = []
    for what, step in _steps:
        count = step()
        if inspect.isawaitable(count):
            count = await count
        done.append(f"{what}: {count}")
    logger.info("draining: %s", ", ".join(done) or "nothing registered")
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

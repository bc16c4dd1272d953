"""Database work for the sockets, off the event loop: on a pooled thread, and shared by
every socket that asks for the same answer at the same moment."""

import asyncio

from channels.db import database_sync_to_async

# The answers being computed, per cache and identity: a socket that asks for one
# meanwhile awaits it rather than starting another.
_in_flight = {}


async def in_database_pool(function, *args):
    """Run database work on a pooled thread, not the worker's one thread-sensitive thread:
    that thread authenticates new sockets (channels' AuthMiddleware), and a handshake
    must not queue behind other sockets' hello queries. Django closes the connection
    afterwards (CONN_MAX_AGE is 0), so pooled threads keep none open."""
    return await database_sync_to_async(function, thread_sensitive=False)(*args)


async def shared_answer(cache, identity, function, *args):
    """cache's answer for identity, else function(*args) on the database pool, computed
    once however many sockets ask at the same moment (a connect storm asks thousands)."""
    answer = cache.get(identity)
    if answer is not None:
        return answer
    in_flight = _in_flight.setdefault(id(cache), {})
    pending = in_flight.get(identity)
    if pending is None:
        pending = in_flight[identity] = asyncio.ensure_future(in_database_pool(function, *args))

        def settle(future):
            in_flight.pop(identity, None)
            if not future.cancelled() and future.exception() is None:
                cache.put(identity, future.result())

        pending.add_done_callback(settle)
    # Shielded: one socket going away must not cancel the others' shared answer.
    return await asyncio.shield(pending)

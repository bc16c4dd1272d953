"""What an open stream costs the worker: no database connection, no thread of its own."""

import asyncio

import httpx
import psutil
import pytest
from django.db import connection

from dashboard.live import publish_frame
from tests.realclients import events_url

pytestmark = pytest.mark.slow

STREAMS = 200
# The worker's own few (auth lookups finishing, the collector-less idle pool).
HANDFUL = 5


def database_connections_of(process):
    """Connections the worker holds to the test database (PostgreSQL) or open handles on its file (SQLite)."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                )
                return cursor.fetchone()[0]
        finally:
            connection.close()  # this runs in a helper thread: leave no session behind
    return sum(1 for f in psutil.Process(process.pid).open_files() if f.path.startswith(str(name)))


async def open_streams(worker, cookies, count):
    client = httpx.AsyncClient(
        cookies=cookies,
        timeout=httpx.Timeout(30.0, read=None),
        limits=httpx.Limits(max_connections=count + 10, max_keepalive_connections=0),
    )
    url = events_url(worker, "metrics")
    semaphore = asyncio.Semaphore(50)

    async def one():
        async with semaphore:
            response = await client.send(client.build_request("GET", url), stream=True)
            assert response.status_code == 200
            lines = response.aiter_lines()
            async for line in lines:  # wait for stream-open: the view has returned
                if line.startswith("event: stream-open"):
                    break
            return response, lines

    return client, await asyncio.gather(*(one() for _ in range(count)))


async def test_open_streams_hold_no_database_connection_or_thread_each(web_workers, alice_cookies):
    # Many streams of one user: past the default per-user cap.
    [worker] = web_workers(1, env={"MAX_CONNECTIONS_PER_USER": "1000"})
    process = web_workers.workers[0]
    threads_before = psutil.Process(process.pid).num_threads()

    client, streams = await open_streams(worker, alice_cookies, STREAMS)
    try:
        await asyncio.sleep(1.0)
        held = await asyncio.to_thread(database_connections_of, process)
        threads = psutil.Process(process.pid).num_threads()
        # And they are live streams, not idle sockets: one event reaches all of them.
        publish_frame(1, 0.0, {})

        async def frame_arrives(lines):
            async for line in lines:
                if line.startswith("event: frame"):
                    return True

        arrived = await asyncio.wait_for(asyncio.gather(*(frame_arrives(lines) for _, lines in streams)), 30)
    finally:
        for response, _ in streams:
            await response.aclose()
        await client.aclose()

    assert all(arrived)
    assert held <= HANDFUL, f"{STREAMS} open streams hold {held} database connections"
    assert threads - threads_before <= HANDFUL * 4, (
        f"{STREAMS} streams added {threads - threads_before} threads"
    )

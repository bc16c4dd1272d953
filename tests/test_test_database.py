"""The suite's own test database: what conftest.py does around Django's."""

import re
import threading
import time

import psycopg
import pytest
from django.contrib.auth.models import User
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import connection
from django.test import TransactionTestCase

from conftest import database_url_for_subprocesses


def wait_for(condition, within=10.0):
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)


def test_it_flushes_again_when_a_writer_deadlocks_the_truncate(transactional_db, alice):
    """A writer left running (the stack's collector) holds the table the flush's
    TRUNCATE locks last, then asks for the one it locked first."""
    if connection.vendor != "postgresql":
        pytest.skip("the deadlock is PostgreSQL's")
    (truncate,) = sql_flush(no_style(), connection)  # what `flush` runs: one TRUNCATE
    tables = re.findall(r'"([^"]+)"', truncate)
    first, last = tables[0], tables[-1]
    holding_last = threading.Event()
    writer = {}

    def truncate_is_waiting(conn, table):
        row = conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = %s AND l.mode = 'AccessExclusiveLock' AND NOT l.granted",
            [table],
        ).fetchone()
        return row[0] > 0

    def write():
        try:
            with psycopg.connect(database_url_for_subprocesses()) as conn:
                conn.execute(f'LOCK TABLE "{last}" IN ROW EXCLUSIVE MODE')
                holding_last.set()
                wait_for(lambda: truncate_is_waiting(conn, last))
                # The TRUNCATE waited first, so PostgreSQL ends it, not this writer.
                conn.execute(f'LOCK TABLE "{first}" IN ROW EXCLUSIVE MODE')
                conn.commit()
                writer["committed"] = True
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            writer["error"] = exc

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert holding_last.wait(10)
        TransactionTestCase()._fixture_teardown()
    finally:
        thread.join(30)
    assert writer == {"committed": True}
    assert not User.objects.exists()

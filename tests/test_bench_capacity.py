"""The capacity model (bench.capacity) and the Redis commands the stream bench records for it."""

import os
import signal

import pytest
import redis

from bench.measure import RedisCalls, calls_between
from bench.run import redis_calls_result
from deploy.supervisor import free_port, start_redis


@pytest.fixture
def own_redis():
    """A redis-server of the test's own: no other client's commands in its counts."""
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(5)


def test_it_counts_the_commands_between_two_readings_and_not_its_own(own_redis):
    calls = RedisCalls(own_redis)
    before = calls.reading()
    client = redis.Redis.from_url(own_redis, protocol=2)
    client.set("a", 1)
    client.set("b", 2)
    client.get("a")
    client.publish("channel", "x")
    client.close()
    between = calls_between(before, calls.reading())
    calls.close()
    # A new connection's CLIENT SETINFO calls depend on redis-py's version: real, but not the point.
    assert {name: n for name, n in between.items() if not name.startswith("client")} == {
        "get": 1,
        "publish": 1,
        "set": 2,
    }


def test_it_reports_redis_commands_per_connection_and_per_event():
    result = redis_calls_result({"get": 2000, "eval": 1000}, {"publish": 50, "xadd": 50}, 1000, 50)
    assert result["per_connection"] == 3
    assert result["per_event"] == 2
    assert redis_calls_result({}, {}, 0, 0)["per_connection"] is None

"""The registry of the selections streams are held on at the edge, against real Redis."""

import asyncio
import json

import pytest

from dashboard import edge_selections, selectors
from dashboard.redis import get_sync_client


@pytest.fixture
def registry(redis_url, monkeypatch):
    client = get_sync_client()
    client.delete(*edge_selections.registry_keys())
    yield edge_selections.Registry()
    client.delete(*edge_selections.registry_keys())


def register(*texts):
    return asyncio.run(edge_selections.aregister(selectors.selection(texts)))


def names(active):
    return sorted(str(selection) for _, selection in active)


def test_a_publisher_sees_a_selection_as_soon_as_it_is_registered(registry):
    assert registry.active() == []
    register('cpu{host="web1"}')
    # No waiting for a cache to expire: the version moved on, the copy is read again.
    assert names(registry.active()) == ['cpu{host="web1"}']
    register("mem", 'cpu{host="web1"}')
    assert names(registry.active()) == ['cpu{host="web1"}', 'cpu{host="web1"}, mem']


def test_registering_again_reads_nothing_new(registry):
    register("cpu")
    registry.active()
    version = get_sync_client().get(edge_selections.registry_keys()[3])
    register("cpu")
    assert get_sync_client().get(edge_selections.registry_keys()[3]) == version


def test_a_chain_starts_where_no_stream_is_and_follows_on_after(registry):
    register("cpu")
    ((name, _),) = registry.active()
    assert edge_selections.chain(name, 10) == edge_selections.CHAIN_START
    assert edge_selections.chain(name, 12) == "10"
    # A publisher that lost a race names the newer id: the break makes Pushpin recover.
    assert edge_selections.chain(name, 11) == "12"
    assert edge_selections.chain(name, 13) == "12"
    assert register("cpu") == 13  # where a new stream's chain starts


def test_selections_nobody_registers_are_forgotten(registry, monkeypatch):
    import time

    now = time.time()
    monkeypatch.setattr(edge_selections.time, "time", lambda: now - edge_selections.KEPT_SECONDS - 1)
    register("old")
    monkeypatch.setattr(edge_selections.time, "time", lambda: now)
    register("new")
    seen, texts, chains, _ = edge_selections.registry_keys()
    client = get_sync_client()
    assert [d.decode() for d in client.zrange(seen, 0, -1)] == [
        edge_selections.digest(selectors.selection(["new"]))
    ]
    assert json.loads(client.hget(texts, edge_selections.digest(selectors.selection(["new"])))) == ["new"]


def test_at_most_max_selections_are_kept_the_least_recent_forgotten(registry, monkeypatch):
    monkeypatch.setattr(edge_selections, "MAX_SELECTIONS", 3)
    for i in range(5):
        register(f"m{i}")
    assert names(registry.active()) == ["m2", "m3", "m4"]

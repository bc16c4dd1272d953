import asyncio
import json

import pytest
from django.conf import settings
from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import get_storage

from dashboard.redis import get_sync_client
from dashboard.storage import DashboardRedisStorage, event_key, parse_published, pubsub_channel


@pytest.fixture
def storage(redis_url):
    return DashboardRedisStorage()


def test_it_is_the_configured_eventstream_storage():
    assert isinstance(get_storage(), DashboardRedisStorage)


def test_it_gives_consecutive_ids_and_returns_events_in_order(storage):
    first = storage.append_event("metrics", "frame", '{"seq":1}')
    second = storage.append_event("metrics", "frame", '{"seq":2}')
    assert second.id == first.id + 1
    assert storage.get_current_id("metrics") == second.id
    events = storage.get_events("metrics", first.id - 1)
    assert [(e.id, e.type, e.data) for e in events] == [
        (first.id, "frame", '{"seq":1}'),
        (second.id, "frame", '{"seq":2}'),
    ]
    assert storage.get_events("metrics", second.id) == []


def test_it_keeps_channels_apart(storage):
    frame = storage.append_event("metrics", "frame", "{}")
    start = storage.get_current_id("user-1")
    note = storage.append_event("user-1", "note", "{}")
    assert note.id == start + 1
    assert storage.get_current_id("user-1") == note.id
    assert storage.get_current_id("metrics") == frame.id
    assert [e.type for e in storage.get_events("user-1", 0)] == ["note"]


def test_it_keeps_events_under_the_installation_prefix_for_the_retention_time(storage):
    event = storage.append_event("metrics", "frame", "{}")
    ttl = get_sync_client().ttl(event_key("metrics", event.id))
    assert event_key("metrics", event.id).startswith(f"{settings.REDIS_PREFIX}:")
    assert settings.METRICS_RETENTION_HOURS * 3600 - 5 <= ttl <= settings.METRICS_RETENTION_HOURS * 3600


def test_it_raises_when_retention_dropped_the_next_event(storage):
    first = storage.append_event("metrics", "frame", "{}")
    second = storage.append_event("metrics", "frame", "{}")
    get_sync_client().delete(event_key("metrics", second.id))
    with pytest.raises(EventDoesNotExist) as raised:
        storage.get_events("metrics", first.id)
    assert raised.value.current_id == second.id


def test_it_raises_for_an_id_it_never_gave(storage):
    event = storage.append_event("metrics", "frame", "{}")
    with pytest.raises(EventDoesNotExist):
        storage.get_events("metrics", event.id + 50)


def test_it_reads_long_ranges_in_batches(storage):
    for seq in range(1200):
        storage.append_event("metrics", "frame", json.dumps({"seq": seq}))
    events = storage.get_events("metrics", 0, limit=1100)
    assert [json.loads(e.data)["seq"] for e in events] == list(range(1100))


def test_it_publishes_each_event_with_its_id(storage):
    pubsub = get_sync_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(pubsub_channel())
    pubsub.get_message(timeout=1)
    event = storage.append_event("metrics", "metric", '{"name":"x"}')
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert json.loads(message["data"]) == {
        "channel": "metrics",
        "id": str(event.id),
        "type": "metric",
        "data": '{"name":"x"}',
    }


def test_the_async_variants_agree(storage):
    first = storage.append_event("metrics", "frame", "{}")
    storage.append_event("metrics", "frame", "{}")

    async def scenario():
        return await storage.aget_current_id("metrics"), await storage.aget_events("metrics", first.id)

    current, events = asyncio.run(scenario())
    assert current == first.id + 1
    assert [e.id for e in events] == [current]
    assert storage.get_events("metrics", first.id) == events


def test_ids_keep_rising_when_redis_loses_everything(storage):
    """An emptied Redis must not reuse old ids: a client resuming from one of them
    would otherwise skip the new events that got the same numbers."""
    old = storage.append_event("metrics", "frame", "{}")
    get_sync_client().delete(*get_sync_client().keys(f"{settings.REDIS_PREFIX}:events:*"))
    new = storage.append_event("metrics", "frame", "{}")
    assert new.id > old.id
    with pytest.raises(EventDoesNotExist):
        storage.get_events("metrics", old.id)


def test_a_channel_without_events_starts_right_before_its_first_event(storage):
    """A stream opened before any event must see the first one as the next id, not
    as a gap (a gap sends every open stream, and Pushpin, to storage at once)."""
    storage.append_event("user-1", "note", "{}")  # some other channel has events
    start = storage.get_current_id("metrics")
    assert start > 0
    assert storage.get_current_id("metrics") == start
    assert storage.get_events("metrics", 0) == []
    assert storage.append_event("metrics", "frame", "{}").id == start + 1
    assert [e.id for e in storage.get_events("metrics", start)] == [start + 1]


def test_reading_a_channel_creates_no_state(storage):
    """A read (a stream's start, a history or snapshot read) never writes: otherwise
    each channel name a client may read is keys in Redis that nothing expires."""
    from dashboard.storage import epoch_key

    client = storage.redis
    before = set(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=10_000))
    for channel in ("metrics", "user-1", "user-2"):
        assert storage.get_current_id(channel) == int(client.get(epoch_key()))
        assert storage.get_events(channel, 0) == []
    # One key per Redis lifetime at most, never one per channel read.
    assert set(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=10_000)) - before <= {
        epoch_key().encode()
    }
    storage.append_event("user-9", "note", "{}")
    after_write = set(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=10_000))
    for channel in ("metrics", "user-1", "user-2"):
        storage.get_current_id(channel)
        storage.get_events(channel, 0)
    # Nothing new (the write's per-second rate key may have expired meanwhile).
    assert set(client.scan_iter(match=f"{settings.REDIS_PREFIX}:*", count=10_000)) <= after_write
    assert not any(b"user-1" in k or b"user-2" in k or b":metrics:" in k for k in after_write - before)


def test_a_batch_is_stored_as_events_and_published_as_one_message_per_chunk(storage):
    """Stored event by event (history and catch-up read them one by one); published as
    one message per chunk, which every subscriber reads back as the same events."""
    pubsub = get_sync_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(pubsub_channel())
    pubsub.get_message(timeout=1)
    before = storage.append_event("metrics", "frame", "{}")
    batch = storage.append_events("metrics", "metric", [json.dumps({"n": n}) for n in range(7)], chunk=3)
    after = storage.append_event("metrics", "frame", "{}")
    assert [e.id for e in batch] == list(range(before.id + 1, before.id + 8))
    assert after.id == before.id + 8
    stored = storage.get_events("metrics", before.id, limit=7)
    assert [(e.id, e.type, json.loads(e.data)) for e in stored] == [
        (before.id + 1 + n, "metric", {"n": n}) for n in range(7)
    ]
    ttl = get_sync_client().ttl(event_key("metrics", batch[-1].id))
    assert ttl > settings.METRICS_RETENTION_HOURS * 3600 - 5
    messages = [pubsub.get_message(timeout=2) for _ in range(5)]
    pubsub.close()
    assert [len(parse_published(m["data"])) for m in messages] == [1, 3, 3, 1, 1]
    published = [event for m in messages for event in parse_published(m["data"])]
    assert [(e.id, e.type, e.data) for e in published] == [
        (before.id, "frame", "{}"),
        *[(before.id + 1 + n, "metric", json.dumps({"n": n})) for n in range(7)],
        (after.id, "frame", "{}"),
    ]
    assert json.loads(messages[1]["data"]) == {
        "channel": "metrics",
        "id": str(before.id + 1),
        "type": "metric",
        "batch": ['{"n": 0}', '{"n": 1}', '{"n": 2}'],
    }


class CountingClient:
    """The storage's Redis client, counting MGETs (the round trips a backward read makes)."""

    def __init__(self, client):
        self.client, self.mgets = client, 0

    def mget(self, keys):
        self.mgets += 1
        return self.client.mget(keys)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_it_reads_back_newest_first_in_batches_only_as_far_as_asked(storage, monkeypatch):
    published = [storage.append_event("metrics", "frame", json.dumps({"seq": seq})) for seq in range(1200)]
    last = published[-1].id
    counting = CountingClient(get_sync_client())
    monkeypatch.setattr(DashboardRedisStorage, "redis", counting)

    assert [json.loads(e.data)["seq"] for e in storage.read_back("metrics", last)] == list(
        range(1199, -1, -1)
    )
    assert counting.mgets == 3  # 500 ids each; the third reaches the id before the first event

    counting.mgets = 0
    reader = storage.read_back("metrics", last)
    assert [next(reader).id for _ in range(500)] == list(range(last, last - 500, -1))
    assert counting.mgets == 1, "a caller stopping within the first batch costs one read"

    floor = published[1100].id
    assert [e.id for e in storage.read_back("metrics", last, floor_id=floor)] == list(range(last, floor, -1))


def test_reading_back_ends_at_the_first_event_retention_dropped(storage):
    first, second, third = (storage.append_event("metrics", "frame", "{}") for _ in range(3))
    get_sync_client().delete(event_key("metrics", second.id))
    assert [e.id for e in storage.read_back("metrics", third.id)] == [third.id]
    assert asyncio.run(storage.alatest_events("metrics", 10)) == storage.get_events("metrics", second.id)


def test_the_latest_events_are_the_newest_ids_newest_first_without_seeding_a_channel(storage):
    published = [storage.append_event("metrics", "frame", json.dumps({"seq": seq})) for seq in range(5)]
    latest = asyncio.run(storage.alatest_events("metrics", 3))
    assert [(e.id, json.loads(e.data)["seq"]) for e in latest] == [(published[i].id, i) for i in (4, 3, 2)]
    assert [e.id for e in asyncio.run(storage.alatest_events("metrics", 10))] == [
        e.id for e in reversed(published)
    ]
    assert asyncio.run(storage.alatest_events("user-7", 3)) == []
    assert not list(storage.redis.scan_iter(match=f"{settings.REDIS_PREFIX}:*user-7*"))


def test_the_oldest_kept_id_is_where_expiry_stopped(storage):
    published = [storage.append_event("metrics", "frame", "{}") for _ in range(10)]
    current = published[-1].id
    assert storage.oldest_kept_id("metrics", 0, current) == published[0].id
    get_sync_client().delete(*[event_key("metrics", e.id) for e in published[:6]])
    assert storage.oldest_kept_id("metrics", 0, current) == published[6].id
    assert storage.oldest_kept_id("metrics", published[7].id, current) == published[8].id
    get_sync_client().delete(*[event_key("metrics", e.id) for e in published[6:]])
    assert storage.oldest_kept_id("metrics", 0, current) is None

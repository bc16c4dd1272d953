"""/events/ remembers access answers for a few seconds, and forgets them in time."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async

from dashboard.access import ACCESS_CACHE_SECONDS, AccessCache
from tests.realclients import SSEReader, events_url


def test_it_answers_from_the_cache_until_the_window_ends():
    cache = AccessCache(seconds=0.2)
    cache.put("key", (True, []))
    assert cache.get("key") == (True, [])
    time.sleep(0.25)
    assert cache.get("key") is None


def test_it_never_grows_past_its_bound():
    cache = AccessCache(seconds=60, max_entries=3)
    for index in range(10):
        cache.put(index, (True, []))
    assert len(cache.entries) <= 3
    assert cache.get(9) == (True, [])


@pytest.fixture
def worker(web_workers):
    return web_workers(1)[0]


def revoke_view_permission(user):
    from django.contrib.auth.models import Permission

    user.user_permissions.remove(Permission.objects.get(codename="view_metric"))


def deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])


async def status_of(url, cookies):
    async with SSEReader(url, cookies) as stream:
        return stream.status


@pytest.mark.slow
@pytest.mark.parametrize("change", [revoke_view_permission, deactivate])
async def test_a_lost_permission_refuses_the_next_connect_once_the_cache_window_passes(
    worker, alice, alice_cookies, change
):
    url = events_url(worker, "metrics")
    assert await status_of(url, alice_cookies) == 200

    await database_sync_to_async(change)(alice)
    await asyncio.sleep(ACCESS_CACHE_SECONDS + 0.5)

    assert await status_of(url, alice_cookies) == 403


@pytest.mark.slow
async def test_a_new_login_is_not_answered_from_another_sessions_entry(
    worker, alice_cookies, charlie_cookies
):
    url = events_url(worker, "metrics")
    assert await status_of(url, alice_cookies) == 200
    assert await status_of(url, charlie_cookies) == 403

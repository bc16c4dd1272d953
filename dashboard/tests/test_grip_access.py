"""Connects Pushpin forwards reuse a recent access answer per session, as direct streams do."""

from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import get_user
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject

from dashboard import grip
from dashboard.sse import AccessCache
from tests.realclients import session_cookie


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(grip, "access_cache", AccessCache(seconds=60))


def connect_request(cookies=None):
    """A GET /events/ with the session and lazy user the middleware would attach."""
    request = RequestFactory().get("/events/?channel=metrics")
    store = import_module(settings.SESSION_ENGINE).SessionStore
    request.session = store((cookies or {}).get(settings.SESSION_COOKIE_NAME))
    request.user = SimpleLazyObject(lambda: get_user(request))
    return request


def test_a_storm_of_connects_from_one_session_queries_the_database_once(alice, django_assert_num_queries):
    cookies = session_cookie(alice)
    user, forbidden = grip.session_user_access(connect_request(cookies), ["metrics"])
    assert (user.pk, forbidden) == (alice.pk, [])

    with django_assert_num_queries(0):
        for _ in range(20):
            user, forbidden = grip.session_user_access(connect_request(cookies), ["metrics"])
    assert (user.pk, forbidden) == (alice.pk, [])


def test_each_session_gets_its_own_answer(alice, charlie):
    grip.session_user_access(connect_request(session_cookie(alice)), ["metrics"])

    user, forbidden = grip.session_user_access(connect_request(session_cookie(charlie)), ["metrics"])

    assert (user.pk, forbidden) == (charlie.pk, ["metrics"])


def test_it_gives_anonymous_requests_nothing(db):
    assert grip.session_user_access(connect_request(), ["metrics"]) == (None, [])

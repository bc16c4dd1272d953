"""A stream Pushpin holds belongs to a session: its connect and every request Pushpin
makes for it subscribe it to that session's own channel, so ending the session closes
it and no other stream of the user's; Pushpin's requests for an ended session are
refused. Through `config.asgi.application`, signed as Pushpin signs."""

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from dashboard import revocation
from dashboard.tests.test_grip_connects import connect, follow, grip_on, next_link, stream_error_ending  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def channels_of(response):
    return [part.split(";")[0].strip() for part in response["headers"]["grip-channel"].split(",")]


def tag_of(cookies):
    return revocation.session_tag(cookies[settings.SESSION_COOKIE_NAME])


def with_param(path, name, value):
    link = urlsplit(path)
    query = {key: values[0] for key, values in parse_qs(link.query).items()}
    query[name] = value
    return f"{link.path}?{urlencode(query)}"


async def test_the_connect_and_each_next_link_hold_the_stream_on_its_session(alice_cookies, redis_url):
    connected = await connect(alice_cookies)
    assert connected["status"] == 200
    own = f"session-{tag_of(alice_cookies)}"
    assert own in channels_of(connected)
    path = next_link(connected)
    assert "es-session=" in path and alice_cookies[settings.SESSION_COOKIE_NAME] not in path
    followed = await follow(path)
    assert followed["status"] == 200 and own in channels_of(followed)
    assert "es-session=" in next_link(followed)


async def test_a_forged_or_borrowed_session_note_ends_the_stream(alice_cookies, bob_cookies, redis_url):
    path = next_link(await connect(alice_cookies))
    forged = with_param(path, "es-session", "not-signed-by-us")
    assert stream_error_ending(await follow(forged))["condition"] == "bad-request"
    # bob's signed note in alice's link: it names another user.
    bobs = parse_qs(urlsplit(next_link(await connect(bob_cookies))).query)["es-session"][0]
    assert (
        stream_error_ending(await follow(with_param(path, "es-session", bobs)))["condition"] == "bad-request"
    )


def end_session(user, cookies):
    with transaction.atomic():
        revocation.revoke_session(user.pk, cookies[settings.SESSION_COOKIE_NAME])


async def test_pushpins_requests_for_an_ended_session_are_refused(alice, alice_cookies, redis_url):
    from tests.realclients import session_cookie

    other = await sync_to_async(session_cookie)(alice)
    ended_path = next_link(await connect(alice_cookies))
    kept_path = next_link(await connect(other))
    await sync_to_async(end_session)(alice, alice_cookies)
    error = stream_error_ending(await follow(ended_path))
    assert error == {"condition": "forbidden", "text": "This session has ended; sign in again"}
    assert (await follow(kept_path))["status"] == 200

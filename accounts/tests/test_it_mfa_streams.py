"""MFA_REQUIRED covers the live transports: a user it covers who has not enrolled a
second factor reads no `/events/` stream and opens no WebSocket, on a real worker."""

import asyncio
import time

import pytest
from allauth.mfa import signals
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from asgiref.sync import sync_to_async

from tests.realclients import EventStream, SSEReader, events_url, session_cookie, try_socket

pytestmark = pytest.mark.slow


def enrol_totp(user):
    """As allauth's enrolment does: the authenticator, then its signal."""
    authenticator = TOTP.activate(user, generate_totp_secret()).instance
    signals.authenticator_added.send(
        sender=Authenticator, request=None, user=user, authenticator=authenticator
    )


async def stream_status_becomes(url, cookies, status, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with EventStream(url, ["metrics"], cookies) as stream:
            if stream.status == status:
                return True
        await asyncio.sleep(0.05)
    return False


async def test_no_stream_nor_socket_before_the_second_factor(web_workers, alice, bob, settings):
    settings.MFA_REQUIRED = "all"  # this process enrols: it tells the workers, as a worker would
    (url,) = web_workers(1, env={"MFA_REQUIRED": "all"})
    await sync_to_async(enrol_totp)(bob)
    alices = await sync_to_async(session_cookie)(alice)
    bobs = await sync_to_async(session_cookie)(bob)

    async with SSEReader(events_url(url, "metrics"), alices) as stream:
        assert stream.status == 403
        assert "second factor" in stream.body.decode()
    async with EventStream(url, [f"user-{alice.pk}"], alices) as own:
        assert own.status == 403, "not even the user's own channel"
    assert await try_socket(url, alices) == ("refused", 403)

    # bob enrolled: the same worker serves him.
    async with EventStream(url, ["metrics"], bobs) as stream:
        assert stream.status == 200
    outcome, hello = await try_socket(url, bobs)
    assert outcome == "hello" and hello["user"]["username"] == "bob"

    # Once alice enrols (on any worker), her sessions get both.
    await sync_to_async(enrol_totp)(alice)
    # (The worker hears it through Redis, a moment after this process said it.)
    assert await stream_status_becomes(url, alices, 200)
    assert (await try_socket(url, alices))[0] == "hello"


async def test_mfa_required_for_staff_leaves_other_users_streams_be(web_workers, alice):
    (url,) = web_workers(1, env={"MFA_REQUIRED": "staff"})
    cookies = await sync_to_async(session_cookie)(alice)
    async with EventStream(url, ["metrics"], cookies) as stream:
        assert stream.status == 200
    assert (await try_socket(url, cookies))[0] == "hello"

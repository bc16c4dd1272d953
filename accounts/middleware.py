"""Keeps each signed-in session's "last seen" and address current for `/account/sessions/`.

A write at most once a minute per session and process (remembered here, so the
other requests of that minute cost no query); a session signed in before its
row existed gets one on its next request."""

import logging
import time
from datetime import timedelta

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import DatabaseError
from django.shortcuts import redirect
from django.utils import timezone

from accounts.models import UserSession
from accounts.signals import client_address, user_agent_of
from dashboard.access import second_factor_due

logger = logging.getLogger(__name__)

TOUCH_EVERY_SECONDS = 60
REMEMBERED_MAX = 50000
_touched = {}


class SessionActivityMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        # Before the view: a view may close the database connection (/healthz does).
        due = activity_due(request, request.session.get(SESSION_KEY) if hasattr(request, "session") else None)
        if due:
            note_activity(*due)
        return self.get_response(request)

    async def _acall(self, request):
        user_id = await request.session.aget(SESSION_KEY) if hasattr(request, "session") else None
        due = activity_due(request, user_id)
        if due:
            await sync_to_async(note_activity)(*due)
        return await self.get_response(request)


def activity_due(request, user_id):
    """(session key, user id, agent, address) when this session's row is due a write."""
    session_key = request.session.session_key if user_id is not None else None
    if not session_key:
        return None
    last = _touched.get(session_key)
    if last is not None and time.monotonic() - last < TOUCH_EVERY_SECONDS:
        return None
    return session_key, user_id, user_agent_of(request), client_address(request)


def note_activity(session_key, user_id, user_agent, address):
    if len(_touched) >= REMEMBERED_MAX:
        _touched.clear()
    _touched[session_key] = time.monotonic()
    try:
        _write(session_key, user_id, user_agent, address)
    except DatabaseError as exc:
        # A page that works without the database (/healthz saying it is down) still answers.
        logger.warning("could not note the activity of a session: %s", exc)


def _write(session_key, user_id, user_agent, address):
    now = timezone.now()
    user_id = get_user_model()._meta.pk.to_python(user_id)
    updated = UserSession.objects.filter(
        session_key=session_key, user_id=user_id, last_seen__lt=now - timedelta(seconds=TOUCH_EVERY_SECONDS)
    ).update(last_seen=now, address=address)
    if not updated:
        UserSession.objects.get_or_create(
            session_key=session_key,
            defaults={"user_id": user_id, "user_agent": user_agent, "address": address},
        )


def forget(session_key):
    _touched.pop(session_key, None)


# Enrolment itself (and the password or code it may ask again first), signing out, the
# language switch, and what serves no page.
MFA_EXEMPT_PREFIXES = (
    "/accounts/2fa/",
    "/accounts/reauthenticate/",
    "/accounts/logout/",
    "/i18n/",
    "/static/",
    "/healthz",
    "/metrics",
)


class MFARequiredMiddleware:
    """MFA_REQUIRED (`staff` or `all`): a signed-in user it covers who has no second
    factor yet is sent to enrol (an authenticator app or a passkey) from any page but
    enrolment itself, signing out and the language switch. Streams and sockets refuse
    such a user too (dashboard.access.second_factor_due)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        if settings.MFA_REQUIRED != "off" and mfa_enrolment_due(request):
            return redirect("mfa_index")
        return self.get_response(request)

    async def _acall(self, request):
        # Off (the default), this costs one comparison per request and no thread hop.
        if settings.MFA_REQUIRED != "off" and await sync_to_async(mfa_enrolment_due)(request):
            return redirect("mfa_index")
        return await self.get_response(request)


def mfa_enrolment_due(request):
    if request.path_info.startswith(MFA_EXEMPT_PREFIXES):
        return False
    return second_factor_due(getattr(request, "user", None))

"""Who is signed in where: one row per session of a signed-in user.

Django's sessions are keyed blobs with no user; this row (written at sign-in,
touched by SessionActivityMiddleware) is what `/account/sessions/` lists. The
session itself stays the authority: a row whose session is gone or expired is
not listed, and is deleted when its user next looks.
"""

from importlib import import_module

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import models
from django.utils import timezone

from accounts.browsers import describe_browser


class UserSessionQuerySet(models.QuerySet):
    def live_of(self, user):
        """The user's sessions that still exist, newest activity first; the rest are deleted."""
        rows = list(self.filter(user=user))
        alive = set(
            Session.objects.filter(
                session_key__in=[row.session_key for row in rows], expire_date__gt=timezone.now()
            ).values_list("session_key", flat=True)
        )
        gone = [row.pk for row in rows if row.session_key not in alive]
        if gone:
            self.filter(pk__in=gone).delete()
        return sorted(
            (row for row in rows if row.session_key in alive), key=lambda r: r.last_seen, reverse=True
        )


class UserSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    user_agent = models.CharField(max_length=300, blank=True)
    address = models.CharField(max_length=64, blank=True)
    signed_in_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)

    objects = UserSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self):
        return f"{self.user} · {self.browser} · {self.address}"

    @property
    def browser(self):
        return describe_browser(self.user_agent)

    def end(self):
        """Sign this session out everywhere: the session is deleted (cache and database,
        so no worker accepts it again) and its open streams and sockets are closed on
        every worker (dashboard.revocation.revoke_session); the user's other sessions
        keep theirs."""
        from audit.services import record
        from dashboard.revocation import revoke_session

        import_module(settings.SESSION_ENGINE).SessionStore(self.session_key).delete()
        self.delete()
        revoke_session(self.user_id, self.session_key)
        record("session_ended", f"{self.user.get_username()}: {self.browser}, {self.address or '-'}")

    @classmethod
    def end_all_but(cls, user, kept_session_key):
        """End every session of `user` except `kept_session_key`; how many were ended."""
        others = [row for row in cls.objects.live_of(user) if row.session_key != kept_session_key]
        for row in others:
            row.end()
        return len(others)

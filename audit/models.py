from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntryQuerySet(models.QuerySet):
    def prune(self, now=None):
        """Delete what is older than AUDIT_RETENTION_DAYS; returns how many went."""
        cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
        deleted, _ = self.filter(at__lt=cutoff).delete()
        return deleted


class AuditEntry(models.Model):
    """Who did what to which thing, when, from where, and what it looked like before and after.

    The actor is stored by name, not as a key, so an entry outlives its user."""

    actor = models.CharField(max_length=150, blank=True, help_text="Empty: the system itself.")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    address = models.CharField(max_length=64, blank=True, help_text="The client's address, when known.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.actor or 'system'} {self.action} {self.target}".strip()

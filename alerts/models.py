"""Alert rules and their history. The tables keep the names they had when these
models lived in `notifications` (see migrations/0001_initial.py): moving the models
moved no data."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from notifications.models import Level

# A maintenance window (`silence_alert`, the admin) lasts from a minute to a week.
MIN_SILENCE_MINUTES = 1
MAX_SILENCE_MINUTES = 10080


class Comparison(models.TextChoices):
    ABOVE = "above", _("above")
    BELOW = "below", _("below")


class AlertRule(models.Model):
    """Notify when a metric stays out of range for `sustain_seconds`, and again when it is back.

    `firing` and the timestamps are persisted so a restarted collector neither
    re-fires a rule that is already firing nor forgets a cooldown."""

    name = models.CharField(max_length=80, blank=True, help_text="Defaults to the metric's label.")
    metric = models.ForeignKey("dashboard.Metric", on_delete=models.CASCADE, related_name="alert_rules")
    comparison = models.CharField(max_length=5, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.FloatField()
    sustain_seconds = models.PositiveIntegerField(
        default=60, help_text="How long the value must stay out of range (and then back in range)."
    )
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.WARNING)
    recipient_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Leave empty to notify everyone.",
    )
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="After a resolve, do not fire again for this long."
    )
    repeat_minutes = models.PositiveIntegerField(
        default=60,
        help_text="While firing and not acknowledged, notify again this often; 0: never.",
    )
    enabled = models.BooleanField(default=True)
    firing = models.BooleanField(default=False, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Acknowledging a firing stops its repeats; the next firing needs its own.
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    silenced_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Maintenance window: the rule notifies nobody until then (it still shows firing).",
    )
    silenced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        db_table = "notifications_alertrule"
        ordering = ["metric__key", "id"]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self):
        return self.name or f"{self.metric.display_label} {self.comparison} {self.threshold:g}"

    def is_breached_by(self, value):
        if self.comparison == Comparison.BELOW:
            return value < self.threshold
        return value > self.threshold

    def is_silenced(self, now=None):
        return self.silenced_until is not None and self.silenced_until > (now or timezone.now())

    @property
    def is_acknowledged(self):
        return self.firing and self.acknowledged_at is not None

    def _name_params(self):
        metric = self.metric.display_label
        return {"metric": metric, "comparison": self.comparison, "threshold": self.threshold}

    def as_state(self, now=None):
        """What every open page is told about the rule (who acknowledged, silenced until when)."""
        silenced = self.is_silenced(now)
        return {
            "id": self.pk,
            "name": self.display_name,
            # An unnamed rule's name in parts, so each page says it in its own language.
            "name_params": None if self.name else self._name_params(),
            "metric": self.metric.key,
            "level": self.level,
            "firing": self.firing,
            "acknowledged_by": _username(self.acknowledged_by) if self.is_acknowledged else None,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.is_acknowledged else None,
            "silenced_until": self.silenced_until.isoformat() if silenced else None,
            "silenced_by": _username(self.silenced_by) if silenced else None,
        }


def _username(user):
    return user.get_username() if user is not None else None


class AlertEvent(models.Model):
    """The alert history: when a rule fired, repeated, resolved, was acknowledged or silenced, by whom."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        REPEATED = "repeated", "Repeated"
        RESOLVED = "resolved", "Resolved"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        SILENCED = "silenced", "Silenced"
        UNSILENCED = "unsilenced", "Unsilenced"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    # By name as well as by key, so the history outlives the user.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "notifications_alertevent"
        ordering = ["-at", "-id"]

    def __str__(self):
        return f"{self.rule} {self.kind}"

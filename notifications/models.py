from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, URLValidator
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TITLE_MAX_LENGTH = 120
# Bodies travel in every push and hello; a notification is not a document.
BODY_MAX_LENGTH = 2000
LINK_MAX_LENGTH = 500


class Level(models.TextChoices):
    INFO = "info", _("Info")
    SUCCESS = "success", _("Success")
    WARNING = "warning", _("Warning")
    ERROR = "error", _("Error")


_absolute_url = URLValidator(schemes=["http", "https"])


def validate_link(value):
    """An http(s) URL or a path on this site. Anything else (javascript:, data:,
    protocol-relative //host) would let a notification send people elsewhere."""
    if not value:
        return
    if value.startswith("/") and not value.startswith("//"):
        if any(ch.isspace() or ord(ch) < 32 for ch in value) or "\\" in value:
            raise ValidationError("link must not contain spaces or control characters", code="invalid")
        return
    try:
        _absolute_url(value)
    except ValidationError:
        raise ValidationError(
            "link must be an http(s) URL or a path starting with /", code="invalid"
        ) from None


class NotificationQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Addressed to the user, to one of their groups, or to everyone."""
        if user is None or not user.is_authenticated:
            return self.none()
        return self.filter(
            Q(recipient_user=user)
            | Q(recipient_group__in=user.groups.all())
            | Q(recipient_user__isnull=True, recipient_group__isnull=True)
        )

    def unread_for(self, user):
        return self.visible_to(user).exclude(reads__user=user)

    def with_read_state(self, user):
        """Annotate `is_read` for this one user (read state is per user)."""
        return self.annotate(
            is_read=Exists(NotificationRead.objects.filter(notification=OuterRef("pk"), user=user))
        )


# Channel-layer groups whose members receive notifications: one per user, one per
# auth group, one for everyone.
EVERYONE_GROUP = "notify.all"


def user_group_name(user_id):
    return f"notify.user.{user_id}"


def auth_group_name(group_id):
    return f"notify.group.{group_id}"


class Notification(models.Model):
    """A message for one user, one group, or everyone (both recipients empty)."""

    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    body = models.TextField(blank=True, validators=[MaxLengthValidator(BODY_MAX_LENGTH)])
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    link = models.CharField(max_length=LINK_MAX_LENGTH, blank=True, validators=[validate_link])
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set once the live push went out; a row left unset (Redis was away at commit
    # time) is pushed again by the collector, so open tabs still get it.
    pushed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set for the notifications the product writes itself (alert rules): each viewer's
    # page renders these again in its own language (notifications/messages.py).
    message_id = models.CharField(max_length=40, blank=True, editable=False)
    message_params = models.JSONField(default=dict, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications_sent",
    )
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="Leave both recipients empty to send to everyone.",
    )
    recipient_group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications"
    )

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(recipient_user__isnull=True) | Q(recipient_group__isnull=True),
                name="notification_one_audience",
                violation_error_message="Address a notification to a user or a group, not both.",
            )
        ]

    def __str__(self):
        return self.title

    def clean(self):
        if self.recipient_user_id and self.recipient_group_id:
            raise ValidationError("Address a notification to a user or a group, not both.")

    @property
    def audience(self):
        if self.recipient_user_id:
            return "user"
        if self.recipient_group_id:
            return "group"
        return "all"

    @property
    def channel_group(self):
        """The channel-layer group whose members are this notification's recipients."""
        if self.recipient_user_id:
            return user_group_name(self.recipient_user_id)
        if self.recipient_group_id:
            return auth_group_name(self.recipient_group_id)
        return EVERYONE_GROUP

    def is_addressed_to(self, user):
        return Notification.objects.visible_to(user).filter(pk=self.pk).exists()

    def as_dict(self, read=None, language=None):
        """The notification as pages receive it; with `language`, a product-written one
        (alert rules) is rendered in that language."""
        data = {
            "id": self.pk,
            "title": self.title,
            "body": self.body,
            "level": self.level,
            "link": self.link or None,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by.get_username() if self.created_by_id else None,
        }
        if read is not None:
            data["read"] = read
        if language and self.message_id:
            from notifications.messages import localize

            data = localize(data, self.message, language)
        return data

    @property
    def message(self):
        return {"id": self.message_id, "params": self.message_params} if self.message_id else None


class NotificationRead(models.Model):
    """That one user has read one notification; a broadcast has one row per reader."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="reads")
    read_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "notification"], name="notification_read_once")
        ]

    def __str__(self):
        return f"{self.user} read #{self.notification_id}"


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
    enabled = models.BooleanField(default=True)
    firing = models.BooleanField(default=False, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_resolved_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
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

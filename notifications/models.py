from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, URLValidator, validate_email
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dashboard.groups import EVERYONE_GROUP, auth_group_name, user_group_name
from dashboard.sealing import Sealer
from notifications.messages import localize

# Apprise URLs carry tokens and passwords. The purpose must never change: it derives
# the key that reads what is stored.
SECRETS = Sealer("livedash delivery channel secrets", what="secret")

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


def user_or_group_fields(related_name, help_text):
    """A user and a group, both optional: the one a row is for, or neither (everyone)."""
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name=related_name,
        help_text=help_text,
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name=related_name
    )
    return user, group


def user_or_group_constraint(prefix, name, message):
    """The database's half of `ForUserOrGroup.clean`: never a user and a group at once."""
    return models.CheckConstraint(
        condition=Q(**{f"{prefix}_user__isnull": True}) | Q(**{f"{prefix}_group__isnull": True}),
        name=name,
        violation_error_message=message,
    )


class ForUserOrGroup:
    """For one user, one group, or everyone: a notification's recipients, a delivery
    channel's owner. `prefix` names the pair of fields (`<prefix>_user`, `<prefix>_group`,
    from `user_or_group_fields`); `both_message` is what a row with both is told."""

    prefix = ""
    both_message = ""

    @property
    def audience(self):
        if getattr(self, f"{self.prefix}_user_id"):
            return "user"
        if getattr(self, f"{self.prefix}_group_id"):
            return "group"
        return "all"

    @property
    def audience_display(self):
        audience = self.audience
        if audience == "user":
            return getattr(self, f"{self.prefix}_user").get_username()
        if audience == "group":
            return f"group {getattr(self, f'{self.prefix}_group').name}"
        return "everyone"

    def clean(self):
        super().clean()
        if getattr(self, f"{self.prefix}_user_id") and getattr(self, f"{self.prefix}_group_id"):
            raise ValidationError(self.both_message)


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


NOTIFICATION_FOR_BOTH = "Address a notification to a user or a group, not both."


class Notification(ForUserOrGroup, models.Model):
    """A message for one user, one group, or everyone (both recipients empty)."""

    prefix = "recipient"
    both_message = NOTIFICATION_FOR_BOTH

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
    recipient_user, recipient_group = user_or_group_fields(
        "notifications", "Leave both recipients empty to send to everyone."
    )

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            user_or_group_constraint("recipient", "notification_one_audience", NOTIFICATION_FOR_BOTH)
        ]

    def __str__(self):
        return self.title

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


# Levels in increasing urgency; a channel with a minimum level receives that one and above.
LEVEL_RANK = {Level.INFO: 0, Level.SUCCESS: 1, Level.WARNING: 2, Level.ERROR: 3}


def mask_apprise_url(url):
    """The URL as apprise shows it with its secrets masked; `ValueError` (naming only
    the scheme, never the URL's secrets) unless apprise can send to it."""
    import apprise

    scheme = url.split("://", 1)[0][:20] if "://" in url else ""
    if not scheme:
        raise ValueError("an apprise URL looks like service://..., e.g. ntfy://host/topic")
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValueError(f"apprise cannot send to this {scheme}:// URL (unknown service or malformed)")
    return plugin.url(privacy=True)[:500]


def validate_webhook_url(value):
    """http(s) with a host. Loopback and private addresses are valid on purpose:
    receivers on the same host or network are the common case."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{value!r} is not an http(s) URL", code="invalid")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValidationError("the URL must not contain spaces or control characters", code="invalid")
    try:
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        raise ValidationError(f"{value!r} has a malformed port", code="invalid") from None


class DeliveryChannelQuerySet(models.QuerySet):
    def owned_by(self, user):
        """The channels a user manages from the page: their own."""
        return self.filter(owner_user=user)

    def for_notification(self, notification):
        """The active channels whose owner is addressed by the notification, at its level.

        A channel receives what its owner sees: a user's channel what is addressed
        to that user, to one of their groups or to everyone; a group's channel what
        is addressed to the group or to everyone; an everyone channel the broadcasts."""
        active_users = Q(owner_user__is_active=True)
        if notification.recipient_user_id:
            audience = Q(owner_user_id=notification.recipient_user_id) & active_users
        elif notification.recipient_group_id:
            audience = Q(owner_group_id=notification.recipient_group_id) | (
                Q(owner_user__groups=notification.recipient_group_id) & active_users
            )
        else:
            audience = Q(owner_user__isnull=True) | active_users
        return (
            self.filter(audience, paused=False, min_level__in=levels_at_least_or_below(notification.level))
            .distinct()
            .order_by("pk")
        )


def levels_at_least_or_below(level):
    """The minimum levels a notification of `level` passes: its own and every lower one."""
    return [name for name, rank in LEVEL_RANK.items() if rank <= LEVEL_RANK.get(level, 0)]


CHANNEL_FOR_BOTH = "A channel belongs to a user or a group, not both."


class DeliveryChannel(ForUserOrGroup, models.Model):
    """Where a user's, a group's or everyone's notifications also go: an e-mail
    address, a webhook, or an apprise URL (Slack, Telegram, Discord, ntfy, Matrix,
    Teams, ...). Owner: a user, a group, or neither (everyone).

    An apprise URL carries its service's secrets: it is kept sealed (encrypted,
    dashboard/sealing.py) in `sealed_target`, and `target` holds the URL with
    its secrets masked (apprise's own privacy form), which is all anyone sees again."""

    prefix = "owner"
    both_message = CHANNEL_FOR_BOTH

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"
        APPRISE = "apprise", "Apprise"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(
        max_length=500,
        help_text="E-mail address, http(s) URL, or apprise URL (stored encrypted, shown masked)",
    )
    sealed_target = models.TextField(blank=True, editable=False)
    owner_user, owner_group = user_or_group_fields(
        "delivery_channels", "Leave both owners empty for a channel that gets what everyone is sent."
    )
    min_level = models.CharField(
        max_length=10,
        choices=Level.choices,
        default=Level.INFO,
        help_text="Send this level and above (info < success < warning < error).",
    )
    secret = models.CharField(
        max_length=200, blank=True, help_text="Webhooks: the key of the X-Livedash-Signature HMAC."
    )
    paused = models.BooleanField(default=False, help_text="A paused channel is sent nothing new.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = DeliveryChannelQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]
        constraints = [
            user_or_group_constraint("owner", "delivery_channel_one_owner", CHANNEL_FOR_BOTH),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.target}"

    def clean(self):
        super().clean()
        self.target = (self.target or "").strip()
        if self.kind == self.Kind.EMAIL:
            try:
                validate_email(self.target)
            except ValidationError:
                raise ValidationError({"target": f"{self.target!r} is not an e-mail address"}) from None
        elif self.kind == self.Kind.WEBHOOK:
            try:
                validate_webhook_url(self.target)
            except ValidationError as exc:
                raise ValidationError({"target": exc.messages}) from None
            if not self.secret:
                raise ValidationError({"secret": "A webhook needs a secret to sign its requests."})
        elif self.kind == self.Kind.APPRISE:
            self._take_apprise_url()

    def _take_apprise_url(self):
        """Seal a newly entered apprise URL and keep only its masked form in `target`.
        A target equal to the masked form already stored is the same URL, unchanged."""
        if self.sealed_target:
            try:
                if self.target == mask_apprise_url(SECRETS.unseal(self.sealed_target)):
                    return
            except ValueError:
                pass  # unreadable or no longer valid: whatever was entered replaces it
        try:
            masked = mask_apprise_url(self.target)
        except ValueError as exc:
            raise ValidationError({"target": str(exc)}) from None
        self.sealed_target, self.target = SECRETS.seal(self.target), masked

    @property
    def apprise_url(self):
        """The full apprise URL, secrets and all (for the sender only)."""
        return SECRETS.unseal(self.sealed_target)

    def as_dict(self):
        return {
            "id": self.pk,
            "kind": self.kind,
            "target": self.target,
            "min_level": self.min_level,
            "paused": self.paused,
        }


class Delivery(models.Model):
    """One notification on its way to one channel: retried until it is delivered,
    or until it has failed for longer than the retry window."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(DeliveryChannel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Failed attempts are retried until then; a retry from the admin extends it.
    retry_until = models.DateTimeField()
    # A sender that claimed the row owns it until then; past it (the sender died
    # mid-send) another sender may claim it again.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="delivery_once_per_channel")
        ]
        indexes = [
            models.Index(fields=["state", "channel", "id"], name="delivery_queue"),
        ]

    def __str__(self):
        return f"#{self.notification_id} to {self.channel}"

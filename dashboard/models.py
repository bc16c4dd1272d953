from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from dashboard.series import METRIC_NAME_MAX_LENGTH as KEY_MAX_LENGTH
from dashboard.series import STORAGE_KEY_MAX_LENGTH


class Metric(models.Model):
    """A metric the dashboard charts. Host and app metrics are created by the
    collector; a custom metric is registered on its first publish."""

    class Source(models.TextChoices):
        SYSTEM = "system", "System"
        APP = "app", "App"
        CUSTOM = "custom", "Custom"

    key = models.SlugField(
        max_length=KEY_MAX_LENGTH, unique=True, validators=[MaxLengthValidator(KEY_MAX_LENGTH)]
    )
    label = models.CharField(max_length=100, blank=True)
    unit = models.CharField(max_length=20, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CUSTOM)
    enabled = models.BooleanField(default=True)
    warning_threshold = models.FloatField(
        "warning at", null=True, blank=True, help_text="Values at or above this are shown as a warning."
    )
    critical_threshold = models.FloatField(
        "critical at", null=True, blank=True, help_text="Values at or above this are shown as critical."
    )
    display_order = models.IntegerField(default=100, help_text="Charts are shown in ascending order.")

    class Meta:
        ordering = ["display_order", "key"]

    def __str__(self):
        return self.label or self.key

    def clean(self):
        super().clean()
        warning, critical = self.warning_threshold, self.critical_threshold
        if warning is not None and critical is not None and warning > critical:
            # The page checks critical first, so warning above critical would never show.
            raise ValidationError(
                {"warning_threshold": "The warning threshold must not be above the critical threshold."}
            )

    @property
    def display_label(self):
        return self.label or self.key


class Theme(models.TextChoices):
    SYSTEM = "system", _("System")
    LIGHT = "light", _("Light")
    DARK = "dark", _("Dark")


class UserPreference(models.Model):
    """Per-user display choices, stored server-side so they follow the user to any browser."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    theme = models.CharField(max_length=10, choices=Theme.choices, default=Theme.SYSTEM)

    def __str__(self):
        return f"{self.user} preferences"

    @classmethod
    def theme_for(cls, user):
        if user is None or not user.is_authenticated:
            return Theme.SYSTEM
        theme = cls.objects.filter(user=user).values_list("theme", flat=True).first()
        return theme or Theme.SYSTEM


class Series(models.Model):
    """A series (a metric name plus labels) that has history: its storage key, which
    the rollups are keyed by, beside its id. Ids run to kilobytes, past what a btree
    entry may hold, so rows reference the short fixed key (`series.storage_key`) and
    the id is stored once, here. An unlabelled series' key is its id, its name.
    Written by the rollup writer for each series it meets first."""

    key = models.CharField(max_length=STORAGE_KEY_MAX_LENGTH, unique=True)
    series_id = models.TextField()
    name = models.CharField(max_length=KEY_MAX_LENGTH, db_index=True)
    labels = models.JSONField(default=dict)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self):
        return self.series_id


class MetricRollup(models.Model):
    """One series' values within one time bucket of one tier: count, sum, min and max,
    so buckets merge exactly (late values, catch-up) and coarser views are sums of finer
    rows. `tier` is the tier's step in seconds; `bucket` the bucket's start, unix seconds
    (UTC, aligned to the epoch: no time zone, no DST). Written by the collector process
    (dashboard/rollups.py), read by the history endpoint."""

    # The series' storage key (`Series.key`; for an unlabelled series its name).
    key = models.CharField(max_length=STORAGE_KEY_MAX_LENGTH)
    tier = models.PositiveIntegerField()
    bucket = models.BigIntegerField()
    count = models.PositiveIntegerField()
    sum = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()

    class Meta:
        constraints = [
            # Tier and bucket first: the history query and pruning both read one tier's
            # time range across every metric, so that is the range the index serves.
            models.UniqueConstraint(fields=["tier", "bucket", "key"], name="metricrollup_tier_bucket_key"),
        ]
        indexes = [
            # History with `match` reads a few series' rows of a time range: by key first,
            # it reads those rows only, not every series' rows of the range.
            models.Index(fields=["key", "tier", "bucket"], name="metricrollup_key_tier_bucket"),
        ]

    def __str__(self):
        return f"{self.key}@{self.tier}s:{self.bucket}"


class RollupCursor(models.Model):
    """How far the rollups have read the event store: the last event id folded in,
    committed in the same transaction as the buckets it produced, so an outage or a
    restart neither loses nor double-counts an event."""

    channel = models.CharField(max_length=100, primary_key=True)
    last_event_id = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.channel}@{self.last_event_id}"

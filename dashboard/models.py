from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import models

KEY_MAX_LENGTH = 64


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
        null=True, blank=True, help_text="Values at or above this are shown as a warning."
    )
    critical_threshold = models.FloatField(
        null=True, blank=True, help_text="Values at or above this are shown as critical."
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

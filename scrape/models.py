"""Scrape targets: Prometheus text endpoints the collector reads (scrape/scraper.py).

Configuration (URL, job, interval, labels, the bearer token, enabled) is edited in the
admin and audited; the outcome of the last scrape (when, how long, how many samples,
the error) is runtime state written with `QuerySet.update()`, so it is not audited.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from dashboard import series
from dashboard.sealing import Sealer

# The purpose must never change: it derives the key that reads what is stored.
TOKENS = Sealer("livedash scrape target bearer tokens", what="bearer token")

# The labels every scraped series gets from its target; a target's own labels may not
# set them (they would silently lose against these).
TARGET_LABELS = ("job", "instance")
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 3600
DEFAULT_PORTS = {"http": 80, "https": 443}


def validate_target_url(value):
    """An http(s) URL with a host; anything else is refused with a message saying why."""
    URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// URL.")(value)
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValidationError("Put credentials in the bearer token, not in the URL.")
    if parts.fragment:
        raise ValidationError("A scrape URL has no #fragment.")


def validate_target_labels(value):
    """A JSON object of label names to text, as a series' labels, without job and instance."""
    if not isinstance(value, dict):
        raise ValidationError('Labels must be a JSON object of names to text, e.g. {"env": "prod"}.')
    for name in TARGET_LABELS:
        if name in value:
            raise ValidationError(
                f"The label {name!r} is set by livedash for every target; use another name."
            )
    try:
        checked = series.validate_labels(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if len(checked) + len(TARGET_LABELS) > series.MAX_LABELS:
        raise ValidationError(
            f"At most {series.MAX_LABELS - len(TARGET_LABELS)} labels (job and instance are added to them)."
        )


def instance_of(url):
    """The `instance` label of a target: its host and port, as Prometheus names it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
    return f"{host}:{port}"


class ScrapeTarget(models.Model):
    job = models.CharField(
        max_length=100,
        help_text="The `job` label of every series scraped from it, e.g. the service's name.",
    )
    url = models.CharField(
        "URL",
        max_length=2000,
        validators=[validate_target_url],
        help_text="The Prometheus text endpoint, e.g. http://10.0.0.5:9100/metrics.",
    )
    interval = models.PositiveIntegerField(
        "interval (seconds)",
        default=15,
        validators=[MinValueValidator(MIN_INTERVAL_SECONDS), MaxValueValidator(MAX_INTERVAL_SECONDS)],
    )
    labels = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_target_labels],
        help_text='Added to every series of this target, e.g. {"env": "prod"}.',
    )
    # Encrypted (dashboard/sealing.py); the admin takes a new one but never shows it back.
    sealed_bearer_token = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    last_scrape_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What the last scrape published as `up`: None before the first one.
    last_up = models.BooleanField(null=True, editable=False)
    last_duration_seconds = models.FloatField(null=True, blank=True, editable=False)
    last_samples = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Samples published by the last scrape."
    )
    last_error = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["job", "url"]
        constraints = [models.UniqueConstraint(fields=["job", "url"], name="scrapetarget_job_url")]

    def __str__(self):
        return f"{self.job} {self.url}"

    @property
    def instance(self):
        return instance_of(self.url)

    @property
    def has_bearer_token(self):
        return bool(self.sealed_bearer_token)

    def set_bearer_token(self, token):
        """Store `token` sealed; an empty one removes it."""
        self.sealed_bearer_token = TOKENS.seal(token) if token else ""

    def bearer_token(self):
        """The token in clear for the scrape; `ValueError` when it cannot be unsealed."""
        return TOKENS.unseal(self.sealed_bearer_token) if self.sealed_bearer_token else ""

    def series_labels(self):
        """The labels every series of this target carries: its own, `job` and `instance`."""
        return {**self.labels, "job": self.job, "instance": self.instance}

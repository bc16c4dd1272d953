"""Alert rules and their history. The tables keep the names they had when these
models lived in `notifications` (see migrations/0001_initial.py): moving the models
moved no data."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dashboard import selectors
from dashboard import series as series_ids
from notifications.models import Level

# A maintenance window (`silence_alert`, the admin) lasts from a minute to a week.
MIN_SILENCE_MINUTES = 1
MAX_SILENCE_MINUTES = 10080


class Comparison(models.TextChoices):
    ABOVE = "above", _("above")
    BELOW = "below", _("below")


# Longest selector text a rule keeps (a selector naming a few hosts fits easily).
MATCH_MAX_LENGTH = 1000


class AlertRule(models.Model):
    """Notify when a series stays out of range for `sustain_seconds`, and again when it is back.

    `match` is a selector: every series it matches has its own alert (a `SeriesAlert`:
    firing or not, acknowledged, silenced). `firing` on the rule says whether any of
    them fires, and the rule's acknowledgement and silence cover all of them.
    `metric` is the chart the rule's threshold line is drawn on, and the label and
    unit its messages use: a selector naming one metric links it by itself.

    The states and timestamps are persisted so a restarted collector neither
    re-fires an alert that is already firing nor forgets a cooldown."""

    name = models.CharField(max_length=80, blank=True, help_text="Defaults to the metric's label.")
    match = models.CharField(
        max_length=MATCH_MAX_LENGTH,
        blank=True,
        help_text='A series selector: cpu, cpu{host=~"web.*"}; empty: the metric\'s series.',
    )
    metric = models.ForeignKey(
        "dashboard.Metric",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="The chart showing the threshold; empty: the selector's metric.",
    )
    comparison = models.CharField(max_length=5, choices=Comparison.choices, default=Comparison.ABOVE)
    threshold = models.FloatField()
    sustain_seconds = models.PositiveIntegerField(
        default=60, help_text="How long the value must stay out of range (and then back in range)."
    )
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.WARNING)
    # Grouping, as Alertmanager does it (alerts/grouping.py).
    group_by = models.JSONField(
        default=list,
        blank=True,
        help_text='Labels whose values split alerts into groups, e.g. ["cluster"]; none: one group.',
    )
    group_wait = models.PositiveIntegerField(
        default=30, help_text="Seconds a new group waits, so alerts firing together go out as one message."
    )
    group_interval = models.PositiveIntegerField(
        default=300, help_text="Seconds between two messages of one group about new or resolved alerts."
    )
    recipient_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Leave this and the user empty to notify everyone.",
    )
    recipient_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="Notify this user alone (instead of a group).",
    )
    # The file (ALERT_RULES_DIR) a provisioned rule follows; empty for rules made here or by the API.
    provisioned_from = models.CharField(max_length=500, blank=True, editable=False)
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="After a resolve, do not fire again for this long."
    )
    repeat_minutes = models.PositiveIntegerField(
        default=240,
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
        ordering = ["match", "id"]

    def __str__(self):
        return self.display_name

    def save(self, *args, **kwargs):
        # A rule made the old way (a metric, no selector) watches that metric's series;
        # one made with a selector naming a metric is drawn on that metric's chart.
        if not self.match and self.metric_id is not None:
            self.match = self.metric.key
        if self.metric_id is None and self.match:
            from dashboard.models import Metric

            self.metric = Metric.objects.filter(key=metric_name_of(self.match)).first()
        super().save(*args, **kwargs)

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.recipient_group_id and self.recipient_user_id:
            raise ValidationError("Notify a user or a group, not both.")
        try:
            validate_group_by(self.group_by)
        except ValueError as exc:
            raise ValidationError({"group_by": str(exc)}) from None
        if not self.match and self.metric_id is None:
            raise ValidationError({"match": "Give a selector or a metric."})
        if self.match:
            try:
                selectors.parse(self.match)
            except ValueError as exc:
                raise ValidationError({"match": str(exc)}) from None

    @property
    def recipients(self):
        """Who `notify()` tells: the user, the group, or everyone (None)."""
        return self.recipient_user or self.recipient_group

    @property
    def selector(self):
        return selectors.parse(self.match)

    @property
    def metric_label(self):
        return self.metric.display_label if self.metric_id else metric_name_of(self.match) or self.match

    @property
    def unit(self):
        return self.metric.unit if self.metric_id else ""

    @property
    def display_name(self):
        return self.name or f"{self.metric_label} {self.comparison} {self.threshold:g}"

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
        return {"metric": self.metric_label, "comparison": self.comparison, "threshold": self.threshold}

    def as_state(self, now=None, series=None):
        """What every open page is told about the rule (who acknowledged, silenced until
        when) and about each of its series that fires or is silenced (`series`: those
        `SeriesAlert`s, read from the database when None)."""
        now = now or timezone.now()
        silenced = self.is_silenced(now)
        if series is None:
            series = self.series_alerts.filter(
                models.Q(firing=True) | models.Q(silenced_until__gt=now)
            ).select_related("acknowledged_by", "silenced_by")
        # Read once for every series (their next escalation step).
        steps = list(self.escalation_steps.select_related("channel"))
        return {
            "id": self.pk,
            "name": self.display_name,
            # An unnamed rule's name in parts, so each page says it in its own language.
            "name_params": None if self.name else self._name_params(),
            "metric": self.metric.key if self.metric_id else metric_name_of(self.match),
            "match": self.match,
            "series": [alert.as_state(now, steps) for alert in series],
            "level": self.level,
            "firing": self.firing,
            "acknowledged_by": _username(self.acknowledged_by) if self.is_acknowledged else None,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.is_acknowledged else None,
            "silenced_until": self.silenced_until.isoformat() if silenced else None,
            "silenced_by": _username(self.silenced_by) if silenced else None,
        }


def validate_group_by(labels):
    """A list of distinct label names; `ValueError` otherwise."""
    if not isinstance(labels, list):
        raise ValueError("group_by must be a list of label names")
    for label in labels:
        series_ids.validate_label_name(label)
    if len(set(labels)) != len(labels):
        raise ValueError("group_by names a label twice")
    return labels


def metric_name_of(match):
    """The metric name a selector asks for with `name{...}` or `__name__="..."`, else ""."""
    try:
        return selectors.parse(match).metric_name or ""
    except ValueError:
        return ""


def _username(user):
    return user.get_username() if user is not None else None


def labels_text(labels):
    """`host="web1", disk="/"`: how messages, the history and the audit name a series."""
    return ", ".join(f'{label}="{value}"' for label, value in sorted(labels.items()))


class SeriesAlert(models.Model):
    """One series' alert under a rule: firing or not, its acknowledgement and silence.
    A row exists once the series fired, or was silenced ahead of time."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="series_alerts")
    # The id can run to kilobytes; `key` (dashboard.series.storage_key) is the short unique one.
    series = models.TextField()
    key = models.CharField(max_length=series_ids.STORAGE_KEY_MAX_LENGTH)
    labels = models.JSONField(default=dict)
    firing = models.BooleanField(default=False)
    value = models.FloatField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    silenced_until = models.DateTimeField(null=True, blank=True)
    silenced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rule", "key"], name="one_alert_per_rule_and_series")]
        ordering = ["rule", "series"]

    def __str__(self):
        return f"{self.rule}: {self.series}"

    def is_silenced(self, now=None):
        return self.silenced_until is not None and self.silenced_until > (now or timezone.now())

    def next_escalation(self, now=None, steps=None):
        """{"channel", "at"} of the step that will be taken next, or None (not firing,
        acknowledged, or every step taken)."""
        if not self.firing or self.acknowledged_at is not None or self.last_fired_at is None:
            return None
        now = now or timezone.now()
        steps = self.rule.escalation_steps.select_related("channel") if steps is None else steps
        for step in steps:
            at = self.last_fired_at + timedelta(minutes=step.delay_minutes)
            if at > now:
                return {"channel": str(step.channel), "at": at.isoformat()}
        return None

    def as_state(self, now=None, steps=None):
        silenced = self.is_silenced(now)
        acknowledged = self.firing and self.acknowledged_at is not None
        return {
            "next_escalation": self.next_escalation(now, steps),
            "series": self.series,
            "labels": self.labels,
            "firing": self.firing,
            "value": self.value,
            "acknowledged_by": _username(self.acknowledged_by) if acknowledged else None,
            "acknowledged_at": self.acknowledged_at.isoformat() if acknowledged else None,
            "silenced_until": self.silenced_until.isoformat() if silenced else None,
            "silenced_by": _username(self.silenced_by) if silenced else None,
        }


class EscalationStep(models.Model):
    """When a series' alert is still unacknowledged `delay_minutes` after it fired, its
    message goes to `channel` too (the on-call person's phone, say). An acknowledgement
    stops the steps not yet taken."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="escalation_steps")
    delay_minutes = models.PositiveIntegerField()
    channel = models.ForeignKey("notifications.DeliveryChannel", on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["rule", "delay_minutes", "id"]

    def __str__(self):
        return f"after {self.delay_minutes} min: {self.channel}"


class AlertEvent(models.Model):
    """The alert history: when a rule fired, repeated, resolved, was acknowledged or silenced, by whom."""

    class Kind(models.TextChoices):
        FIRED = "fired", "Fired"
        REPEATED = "repeated", "Repeated"
        RESOLVED = "resolved", "Resolved"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        SILENCED = "silenced", "Silenced"
        UNSILENCED = "unsilenced", "Unsilenced"
        ESCALATED = "escalated", "Escalated"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    # The series' id; empty for what concerns the whole rule.
    series = models.TextField(blank=True)
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


class Annotation(models.Model):
    """A marker (or, with `end`, a band) on the charts: a deploy, an incident, a window.
    `match` (a selector) names the charts it belongs on; empty: every chart."""

    time = models.DateTimeField(db_index=True)
    end = models.DateTimeField(null=True, blank=True)
    text = models.CharField(max_length=1000)
    tags = models.JSONField(default=list, blank=True)
    match = models.CharField(max_length=MATCH_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Who made it: a user (the admin) or an API token, by name so it outlives them.
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["time", "id"]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M} {self.text[:60]}"

    def as_json(self):
        return {
            "id": self.pk,
            "time": self.time.timestamp(),
            "end": self.end.timestamp() if self.end else None,
            "text": self.text,
            "tags": self.tags,
            "match": self.match or None,
            "created_by": self.created_by,
        }


def time_zone(name):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


# Occurrences of one window an answer lists at most (a window every minute over a day fits).
MAX_OCCURRENCES = 2000


def parse_cron(expression):
    """A five-field cron expression (minute hour day month weekday, or an alias such as
    @daily) parsed by croniter; ValueError naming the problem."""
    from croniter import croniter

    text = " ".join(expression.split())
    fields = text.split(" ")
    if not text.startswith("@") and len(fields) != 5:
        raise ValueError(
            f"a cron expression has five fields (minute hour day month weekday), not {len(fields)}"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"not a cron expression: {expression!r}")
    return text


class MaintenanceWindow(models.Model):
    """A time when alerts of the series it matches are recorded but not sent: once
    (`starts_at` for `duration_minutes`) or recurring, by an RFC 5545 `rrule` or a
    `cron` expression, counted in `timezone`'s wall clock, so "daily at 02:00" stays at
    02:00 across daylight-saving changes. When it ends, what still fires is sent at once."""

    name = models.CharField(max_length=100)
    match = models.CharField(
        max_length=MATCH_MAX_LENGTH, blank=True, help_text="The series it covers; empty: every series."
    )
    starts_at = models.DateTimeField(help_text="The (first) start: a recurring window starts no earlier.")
    duration_minutes = models.PositiveIntegerField(default=60)
    rrule = models.CharField(
        max_length=500, blank=True, help_text="RFC 5545 recurrence, e.g. FREQ=WEEKLY;BYDAY=SU; empty: once."
    )
    cron = models.CharField(
        max_length=200,
        blank=True,
        help_text="Or cron, e.g. 30 1 * * 0 (Sundays at 01:30); empty: once.",
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="e.g. Europe/Madrid")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        errors = {}
        if self.duration_minutes is not None and self.duration_minutes < 1:
            errors["duration_minutes"] = "a window lasts at least a minute"
        try:
            time_zone(self.timezone)
        except ValueError as exc:
            errors["timezone"] = str(exc)
        if self.match:
            try:
                selectors.parse(self.match)
            except ValueError as exc:
                errors["match"] = str(exc)
        if self.rrule and self.cron:
            errors["cron"] = "give an RRULE or a cron expression, not both"
        elif self.cron:
            try:
                self.cron = parse_cron(self.cron)
            except ValueError as exc:
                errors["cron"] = str(exc)
        if "timezone" not in errors and "cron" not in errors and self.starts_at is not None:
            if self.rrule:
                try:
                    self._recurrence()
                except (ValueError, TypeError) as exc:
                    errors["rrule"] = f"not an RFC 5545 recurrence: {exc}"
            elif self.cron and self._next_local(self._local(self.starts_at), inclusive=True) is None:
                errors["cron"] = f"{self.cron!r} never happens"
        if errors:
            raise ValidationError(errors)

    @property
    def zone(self):
        return time_zone(self.timezone)

    @property
    def recurring(self):
        return bool(self.rrule or self.cron)

    @property
    def length(self):
        return timedelta(minutes=self.duration_minutes)

    def _local(self, moment):
        # Naive local wall-clock times: each occurrence is placed in the zone afterwards,
        # with the offset of its own date (DST before or after the change).
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _aware(self, local):
        return local.replace(tzinfo=self.zone).astimezone(UTC)

    def _recurrence(self):
        from dateutil.rrule import rrulestr

        return rrulestr(self.rrule, dtstart=self._local(self.starts_at))

    def _cron(self, local):
        from croniter import croniter

        return croniter(self.cron, local)

    def _previous_local(self, local):
        """The latest start at or before the wall-clock time `local`, or None."""
        if self.rrule:
            return self._recurrence().before(local, inc=True)
        from croniter import CroniterBadDateError

        # croniter's previous is strictly before its base; cron counts whole minutes.
        try:
            last = self._cron(local + timedelta(seconds=1)).get_prev(datetime)
        except CroniterBadDateError:
            return None
        return last if last >= self._local(self.starts_at) else None

    def _next_local(self, local, inclusive=False):
        """The first start after (or at) the wall-clock time `local`, or None."""
        if self.rrule:
            return self._recurrence().after(local, inc=inclusive)
        from croniter import CroniterBadDateError

        first = self._local(self.starts_at)
        if local < first:
            local, inclusive = first, True
        # croniter's next is strictly after its base.
        base = local - timedelta(seconds=1) if inclusive else local
        try:
            return self._cron(base).get_next(datetime)
        except CroniterBadDateError:
            return None

    def covers(self, moment, name=None, labels=None):
        """Whether the window is on at `moment` (aware) for the series (None: any)."""
        if not self.enabled or self.occurrence_at(moment) is None:
            return False
        return self.matches(name, labels)

    def matches(self, name, labels=None):
        """Whether the window covers the series (`name` None: any series)."""
        if not self.match or name is None:
            return True
        try:
            return selectors.parse(self.match).matches(name, labels or {})
        except ValueError:
            return False

    @property
    def metric_name(self):
        """The metric its selector names; None for every series or a selector naming none."""
        if not self.match:
            return None
        try:
            return selectors.parse(self.match).metric_name
        except ValueError:
            return None

    def occurrence_at(self, moment):
        """(start, end) of the occurrence on at `moment` (aware, UTC), or None. The last
        answer is kept: the evaluator asks once per series at the same moment."""
        key = (moment, self.starts_at, self.duration_minutes, self.rrule, self.cron, self.timezone)
        remembered = getattr(self, "_occurrence_memo", None)
        if remembered is not None and remembered[0] == key:
            return remembered[1]
        found = self._occurrence_at(moment)
        self._occurrence_memo = (key, found)
        return found

    def _occurrence_at(self, moment):
        if not self.recurring:
            end = self.starts_at + self.length
            return (self.starts_at, end) if self.starts_at <= moment < end else None
        last = self._previous_local(self._local(moment))
        if last is None:
            return None
        began = self._aware(last)
        return (began, began + self.length) if began <= moment < began + self.length else None

    def occurrences(self, start, end):
        """(start, end) of each occurrence overlapping [start, end] (aware), oldest first,
        at most MAX_OCCURRENCES of them."""
        if not self.recurring:
            finish = self.starts_at + self.length
            return [(self.starts_at, finish)] if self.starts_at <= end and finish >= start else []
        found = []
        # Wall-clock bounds, widened by a day for the offset changes between them.
        local = self._next_local(self._local(start - self.length) - timedelta(days=1), inclusive=True)
        last = self._local(end) + timedelta(days=1)
        while local is not None and local <= last and len(found) < MAX_OCCURRENCES:
            began = self._aware(local)
            if began <= end and began + self.length >= start:
                found.append((began, began + self.length))
            local = self._next_local(local)
        return found

"""Maintenance windows as JSON, for the API (api/maintenance_windows.py) and for
the annotations they appear as.

    {"name", "match"?: SELECTOR, "start": unix seconds, "duration": seconds,
     "rrule"?: RFC 5545 | "cron"?: five fields, "timezone"?, "enabled"?}

`duration` is kept in whole minutes (rounded up). The answer adds `id` and `active`:
the occurrence on now, `{"start", "end"}`, or null.
"""

import math
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.utils import timezone

from alerts.models import MATCH_MAX_LENGTH, MaintenanceWindow

KEYS = {"name", "match", "start", "duration", "rrule", "cron", "timezone", "enabled"}
REQUIRED = ("name", "start", "duration")
# A window lasts at most this long (a month of upgrades is a silence, not a window).
MAX_DURATION_SECONDS = 31 * 86400
NAME_MAX_LENGTH = MaintenanceWindow._meta.get_field("name").max_length
TAG = "maintenance"


def as_json(window, now=None):
    on = window.occurrence_at(now or timezone.now()) if window.enabled else None
    return {
        "id": window.pk,
        "name": window.name,
        "match": window.match,
        "start": window.starts_at.timestamp(),
        "duration": window.duration_minutes * 60,
        "rrule": window.rrule,
        "cron": window.cron,
        "timezone": window.timezone,
        "enabled": window.enabled,
        "active": {"start": on[0].timestamp(), "end": on[1].timestamp()} if on else None,
    }


def _text(data, key, maximum, required=False):
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > maximum or (required and not value.strip()):
        needed = "non-empty text" if required else "text"
        raise ValueError(f"{key} must be {needed} of at most {maximum} characters")
    return value.strip()


def from_json(data):
    """An unsaved window from `data`; ValueError naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError("a maintenance window is a JSON object")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(unknown)}")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing keys: {', '.join(missing)}")
    start = data["start"]
    if isinstance(start, bool) or not isinstance(start, int | float) or not math.isfinite(start):
        raise ValueError("start must be unix seconds (a number)")
    try:
        starts_at = datetime.fromtimestamp(start, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("start is out of range") from None
    duration = data["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not math.isfinite(duration):
        raise ValueError("duration must be a number of seconds")
    if not 0 < duration <= MAX_DURATION_SECONDS:
        raise ValueError(f"duration must be more than 0 and at most {MAX_DURATION_SECONDS} seconds")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be true or false")
    window = MaintenanceWindow(
        name=_text(data, "name", NAME_MAX_LENGTH, required=True),
        match=_text(data, "match", MATCH_MAX_LENGTH),
        starts_at=starts_at,
        duration_minutes=math.ceil(duration / 60),
        rrule=_text(data, "rrule", MaintenanceWindow._meta.get_field("rrule").max_length),
        cron=_text(data, "cron", MaintenanceWindow._meta.get_field("cron").max_length),
        timezone=_text(data, "timezone", 64) or "UTC",
        enabled=enabled,
    )
    try:
        window.full_clean()
    except ValidationError as exc:
        raise ValueError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    return window


def annotations(start, end, metric_names=()):
    """Each enabled window's occurrences overlapping [start, end] (aware) as annotations
    (the API's shape, `id` "maintenance:<window>:<start>"), for the charts of
    `metric_names` (empty: every chart), as `Annotation`s are chosen."""
    found = []
    for window in MaintenanceWindow.objects.filter(enabled=True).order_by("id"):
        if metric_names and window.match:
            own = window.metric_name
            if own is not None and own not in metric_names:
                continue
        for began, ends in window.occurrences(start, end):
            found.append(
                {
                    "id": f"{TAG}:{window.pk}:{int(began.timestamp())}",
                    "time": began.timestamp(),
                    "end": ends.timestamp(),
                    "text": f"Maintenance: {window.name}",
                    "tags": [TAG],
                    "match": window.match or None,
                    "created_by": None,
                }
            )
    return found


def active(now=None):
    """(window, its occurrence's end) of every window on now, soonest end first."""
    now = now or timezone.now()
    found = []
    for window in MaintenanceWindow.objects.filter(enabled=True):
        on = window.occurrence_at(now)
        if on is not None:
            found.append((window, on[1]))
    return sorted(found, key=lambda pair: pair[1])

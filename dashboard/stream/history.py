"""`/api/metrics/history/?minutes=N`: the charts' backfill, read from event storage.

The answer ends exactly at `last_event_id`; the page then opens
`/events/?channel=metrics&lastEventId=<last_event_id>` and the stream resumes
right after it, so the seam between history and live has no gap and no duplicate.
"""

import json
import time

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_eventstream.utils import make_id

from dashboard import access
from dashboard.access import VIEW_PERMISSION
from dashboard.frames import split_series
from dashboard.models import Metric
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.channels import METRICS_CHANNEL

DEFAULT_WINDOW = 15
MAX_WINDOW = 24 * 60


def parse_window(raw):
    if raw is None or raw == "":
        return DEFAULT_WINDOW
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WINDOW:
        raise ValueError(f"minutes must be a whole number from 1 to {MAX_WINDOW}, got {raw[:20]!r}")
    return int(raw)


def metric_definitions():
    return [
        {
            "key": m.key,
            "label": m.display_label,
            "unit": m.unit,
            "source": m.source,
            "warning": m.warning_threshold,
            "critical": m.critical_threshold,
            "order": m.display_order,
        }
        for m in Metric.objects.filter(enabled=True)
    ]


def events_since(storage, since_ts, last_id):
    """(type, data) of the stored `metrics` events with ts >= since_ts up to last_id,
    oldest first: read backwards, stopping at the first event older than the window."""
    collected = []
    for event in storage.read_back(METRICS_CHANNEL, last_id):
        data = json.loads(event.data)
        if data.get("ts", 0) < since_ts:
            break
        collected.append((event.type, data))
    return collected[::-1]


@require_GET
@never_cache
def metrics_history(request):
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"error": "Log in to read metric history"}, status=403)
    if not access.can_view_metrics(user):
        return JsonResponse({"error": f"Permission {VIEW_PERMISSION} required"}, status=403)
    try:
        window = parse_window(request.GET.get("minutes"))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    storage = DashboardRedisStorage()
    # Fix the end first: everything up to it comes from here, everything after
    # from the stream that resumes at it.
    last_id = storage.get_current_id(METRICS_CHANNEL)
    frames, points = split_series(events_since(storage, time.time() - window * 60, last_id))
    return JsonResponse(
        {
            "metrics": metric_definitions(),
            "frames": frames,
            "points": points,
            "last_event_id": make_id({METRICS_CHANNEL: last_id}),
            "window": window,
        }
    )

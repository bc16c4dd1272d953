import redis
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard.access import can_control_sampling, can_view_metrics
from dashboard.live import STREAM_EVENT_TYPES
from dashboard.redis import get_sync_client
from dashboard.stream.channels import METRICS_CHANNEL

INTERVAL_CHOICES = [0.25, 0.5, 1, 2, 5, 10, 30, 60]


@require_GET
@login_required
def index(request):
    user = request.user
    can_view = can_view_metrics(user)
    can_control = can_control_sampling(user)
    page_config = {
        "user": {"id": user.pk, "username": user.get_username()},
        "canViewMetrics": can_view,
        "canControl": can_control,
        # stream.js opens one EventSource for these channels and re-emits these events.
        "stream": {
            "url": reverse("events"),
            "channels": [METRICS_CHANNEL] if can_view else [],
            "events": list(STREAM_EVENT_TYPES),
        },
        "metricsChannel": METRICS_CHANNEL,
        "historyUrl": reverse("metrics-history"),
        "socketPath": "/ws/dashboard/",
    }
    context = {
        "can_view_metrics": can_view,
        "can_control": can_control,
        "interval_choices": INTERVAL_CHOICES,
        "page_config": page_config,
    }
    return render(request, "dashboard/index.html", context)


def _database_answers():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        return False
    finally:
        # A failed connection must not be reused by the next request on this thread.
        connection.close_if_unusable_or_obsolete()


def _redis_answers():
    try:
        return bool(get_sync_client().ping())
    except (redis.RedisError, OSError):
        return False


@require_GET
@never_cache
def healthz(request):
    checks = {"database": _database_answers(), "redis": _redis_answers()}
    healthy = all(checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        **{k: "ok" if v else "down" for k, v in checks.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)

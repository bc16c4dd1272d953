from datetime import timedelta

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from alerts import windows
from api.auth import token_required
from dashboard import telemetry
from dashboard.access import can_control_sampling, can_view_metrics
from dashboard.collector.collector import collector_host
from dashboard.live import STREAM_EVENT_TYPES
from dashboard.models import Metric, Theme, UserPreference
from dashboard.redis import get_sync_client, sentinel_in_use, sentinel_primary
from dashboard.stream.channels import METRICS_CHANNEL
from notifications.views import can_add_channels

INTERVAL_CHOICES = [0.25, 0.5, 1, 2, 5, 10, 30, 60]
# A banner's end this near is told by its time alone; later ones with the date.
LATER_TODAY = timedelta(hours=20)


def maintenance_banner(user):
    """A line for each maintenance window on now that covers a chart this user sees:
    every series, or a selector naming an enabled metric (or naming none)."""
    if not can_view_metrics(user):
        return []
    shown = None
    lines = []
    for window, until in windows.active():
        name = window.metric_name
        if name is not None:
            if shown is None:
                shown = set(Metric.objects.filter(enabled=True).values_list("key", flat=True))
            if name not in shown:
                continue
        # The time is rewritten by the page in the browser's zone (alerts.js); UTC until then.
        moment = format_html(
            '<time datetime="{}" data-ts="{}">{} UTC</time>',
            until.isoformat(),
            until.timestamp(),
            until.strftime("%H:%M" if until - timezone.now() < LATER_TODAY else "%Y-%m-%d %H:%M"),
        )
        text = format_html(
            _("Maintenance window “{name}” until {until}: its alerts are recorded, not sent."),
            name=window.name,
            until=moment,
        )
        lines.append({"text": text, "until": until.timestamp()})
    return lines


def page_context(request):
    """What every page that draws metrics needs: the page config its scripts read (the
    stream, the history endpoint, the socket) and the header's facts. `/` and the
    dashboards people build (boards.views) both start from it."""
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
        # Markers and bands drawn on the charts (deploys, incidents, maintenance windows).
        "annotationsUrl": reverse("api:list_annotations"),
        # History names the collector's values `name{host="..."}`; its charts are these.
        "collectorHost": collector_host() or settings.COLLECTOR_HOST,
        "channelsUrl": reverse("my-channels"),
        # Whether the bell menu offers adding an apprise channel of one's own.
        "canAddChannels": can_add_channels(user),
        "socketPath": "/ws/dashboard/",
    }
    return {
        "can_view_metrics": can_view,
        "can_control": can_control,
        "interval_choices": INTERVAL_CHOICES,
        "page_config": page_config,
        "theme_choices": Theme.choices,
        "host_name": collector_host() or settings.COLLECTOR_HOST,
        "maintenance": maintenance_banner(user),
    }


@require_GET
@login_required
def index(request):
    return render(request, "dashboard/index.html", page_context(request))


@require_POST
@login_required
def set_theme(request):
    """Remember the user's theme. A form post is sent back where it came from;
    the page's script posts with `Accept: application/json` and applies it itself."""
    theme = request.POST.get("theme", "")
    if theme not in Theme.values:
        return HttpResponseBadRequest(_("Unknown theme."))
    UserPreference.objects.update_or_create(user=request.user, defaults={"theme": theme})
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"theme": theme})
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    return redirect(target)


class LogoutView(auth_views.LogoutView):
    """Django's logout, plus a note on the login page it lands on, so signing out is
    confirmed rather than looking like a lost session."""

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_signed_in:
            messages.info(request, _("You have been signed out."))
        return response


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


def _sentinel_primary():
    try:
        return sentinel_primary()
    except (redis.RedisError, OSError):
        return None


@require_GET
@never_cache
def healthz(request):
    checks = {"database": _database_answers(), "redis": _redis_answers()}
    healthy = all(checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        **{k: "ok" if v else "down" for k, v in checks.items()},
    }
    if sentinel_in_use():
        # Which server the sentinels name now: after a failover, the new one.
        body["redis_primary"] = _sentinel_primary()
    return JsonResponse(body, status=200 if healthy else 503)


@require_GET
@never_cache
@token_required("scrape")
def metrics(request):
    """Prometheus text exposition of livedash itself, summed over every worker."""
    try:
        body = telemetry.render()
    except (redis.RedisError, OSError):
        return HttpResponse("Redis is unavailable\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type=telemetry.CONTENT_TYPE)

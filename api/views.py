"""The HTTP API (django-ninja): push metrics, write line protocol, send notifications,
read the live series.

Every endpoint that changes anything is token-only (api.auth), so no browser session
ever reaches one and CSRF has nothing to guard here; the pages a session does reach
keep it. The read endpoints (series, label values) also answer a logged-in user who
may view metrics: they are GETs that change nothing. Bodies are
read by api.bodies (limits, gzip, JSON) rather than by ninja, so that each failure
is the contract's error and is raised before anything is published.
"""

import functools
import logging

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.http import JsonResponse
from ninja import NinjaAPI, Status
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import ValidationError
from redis.exceptions import RedisError

from api import alert_rules, annotations, bodies, lineprotocol, maintenance_windows, ratelimit, schemas
from api.agents import router as agents_router
from api.auth import ApiError, error_response, forbidden, unauthenticated
from api.dashboards import home_router
from api.dashboards import router as dashboards_router
from api.playlists import router as playlists_router
from api.schemes import BearerAuth, TokenAuth, token_with_scope
from dashboard import access, selectors, series, seriesindex, telemetry
from dashboard.live import publish_validated, validate_metrics
from notifications.services import notify

logger = logging.getLogger(__name__)

DESCRIPTION = """Push metric values and notifications into livedash from other services.

Authenticate with an API token (`manage.py create_token`, or the admin):
`Authorization: Bearer <token>` or `Authorization: Token <token>`. Errors are
`{"error": code, "detail": text}`. Each request is all or nothing.
"""


class ReadAuth(BearerAuth):
    """A token with the `read` scope, or a logged-in user with `dashboard.view_metric`."""

    async def authenticate(self, request):
        if request.headers.get("Authorization"):
            return await token_with_scope(request, "read")
        user = await request.auser()
        if not user.is_authenticated:
            raise unauthenticated(
                "log in, or send an API token with the read scope: Authorization: Bearer <token>"
            )
        if not await sync_to_async(access.can_view_metrics)(user):
            raise forbidden(f"permission {access.VIEW_PERMISSION} required")
        return user


api = NinjaAPI(
    title="livedash API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    docs_url="v1/docs",
    openapi_url="v1/openapi.json",
    docs_decorator=login_required,
)
# Dashboards take a session as well as a token: their own module (api/dashboards.py).
api.add_router("v1/dashboards", dashboards_router)
api.add_router("v1/home-dashboard", home_router)
# Playlists follow the dashboards' callers and conventions (api/playlists.py).
api.add_router("v1/playlists", playlists_router)
# Host agents trading an enrollment token for their own (api/agents.py).
api.add_router("v1/agents/", agents_router)


# Alert rules as code (api/alert_rules.py): their own module, mounted here.
api.add_router("v1/alert-rules", alert_rules.router)
# Chart annotations (api/annotations.py).
api.add_router("v1/annotations", annotations.router)
# Maintenance windows (api/maintenance_windows.py).
api.add_router("v1/maintenance-windows", maintenance_windows.router)


def urls():
    """`api.urls`, with a wrong method answered like every other API error (JSON, with
    `Allow`) rather than ninja's plain-text 405."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if iscoroutinefunction(pattern.callback):
            pattern.callback = _json_method_not_allowed(pattern.callback)
    return patterns, app_name, namespace


def _json_method_not_allowed(view):
    @functools.wraps(view)
    async def answer(request, *args, **kwargs):
        response = await view(request, *args, **kwargs)
        if response.status_code == 405 and not isinstance(response, JsonResponse):
            allowed = response["Allow"]
            detail = f"{request.method} is not allowed here; use {allowed}"
            return error_response(ApiError(405, "method_not_allowed", detail, {"Allow": allowed}))
        return response

    return answer


def refused(error, request=None):
    # Ingest refusals are what the counter counts; a refused read ingests nothing, and
    # a publish refused by the series limits was counted where it was refused.
    if not getattr(error, "counted", False) and (request is None or request.method != "GET"):
        telemetry.count_ingest_refused(error.code)
    return error_response(error)


@api.exception_handler(ApiError)
def on_api_error(request, exc):
    return refused(exc, request)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request, exc):
    return refused(unauthenticated("send an API token: Authorization: Bearer <token>"), request)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request, exc):
    # ninja says 422; the contract says 400 for every invalid request.
    return refused(bodies.invalid(schemas.describe_errors(exc.errors)), request)


@api.exception_handler(HttpError)
def on_http_error(request, exc):
    return error_response(ApiError(exc.status_code, "error", str(exc)))


@api.exception_handler(RedisError)
def on_redis_unavailable(request, exc):
    # Redis restarting, or failing over to its replica: a moment, not a server bug.
    logger.warning("API request answered 503: Redis unavailable (%s)", exc)
    return error_response(
        ApiError(503, "unavailable", "Redis is unavailable for a moment; retry", {"Retry-After": "1"})
    )


def _check_count(count):
    if count > settings.API_MAX_POINTS:
        raise bodies.too_large(
            f"{count} points is over API_MAX_POINTS ({settings.API_MAX_POINTS} per request)"
        )


def _check_names(token, points, where):
    for index, (name, _value, _ts, labels, *_rest) in enumerate(points):
        if not token.allows_metric(name):
            raise forbidden(f"{where(index)}: this token may not push metric {name!r}")
        if not token.allows_labels(labels):
            raise forbidden(f"{where(index)}: this token may push only series labelled host={token.host!r}")


async def _publish(token, points, where):
    """Validate every point, check the token may push each name and has room for
    them all, then publish them together; nothing is published on any failure."""
    _check_count(len(points))
    try:
        batch = validate_metrics([point[:4] for point in points])
    except ValueError as exc:
        raise bodies.invalid(_renamed(str(exc), where)) from None
    _check_names(token, points, where)
    await ratelimit.take(token, "points", len(points))
    try:
        await sync_to_async(publish_validated)(batch)
    except seriesindex.TooManySeries as exc:
        error = ApiError(400, "too_many_series", str(exc))
        error.counted = True
        raise error from None
    return len(points)


def _renamed(message, where):
    """'point 3: ...' from validate_metrics, said the way this endpoint numbers its input."""
    head, sep, rest = message.partition(": ")
    if sep and head.startswith("point ") and head[6:].isdigit():
        return f"{where(int(head[6:]))}: {rest}"
    return message


@api.post(
    "v1/metrics",
    auth=TokenAuth("metrics"),
    response={202: schemas.Accepted},
    summary="Push one metric value or a batch",
    openapi_extra=schemas.METRICS_BODY,
)
async def push_metrics(request):
    """One point `{"name", "value", "ts"?, "labels"?}` or `{"points": [...]}`. Each goes
    out as `publish_metric` would send it; `ts` is unix seconds (default: now)."""
    bodies.require_media_type(request, {"application/json"}, "application/json")
    payload = bodies.parse_json(bodies.read_body(request))
    batch = isinstance(payload, dict) and "points" in payload
    if batch and isinstance(payload["points"], list):
        _check_count(len(payload["points"]))  # before validating every one of them
    try:
        model = (schemas.Batch if batch else schemas.Point).model_validate(payload)
    except ValidationError as exc:
        raise bodies.invalid(schemas.describe_errors(exc.errors())) from None
    points = [(p.name, p.value, p.ts, p.labels) for p in (model.points if batch else [model])]
    where = (lambda index: f"points[{index}]") if batch else (lambda index: "the point")
    return Status(202, {"accepted": await _publish(request.auth, points, where)})


@api.post(
    "v2/write",
    auth=TokenAuth("metrics"),
    response={204: None},
    summary="Write InfluxDB line protocol",
    openapi_extra=schemas.WRITE_BODY,
)
async def write_line_protocol(request, org: str = "", bucket: str = "", precision: str = "ns"):
    """The InfluxDB v2 write API: Telegraf's `outputs.influxdb_v2`, the influxdb-client
    libraries and curl can point here unchanged. `org` and `bucket` are accepted with
    any value; `precision` is ns (default), us, ms or s. Each field is a series: its
    name is the measurement (field `value`) or `<measurement>_<field>`, its labels the
    tags (see docs/api.md)."""
    if precision not in lineprotocol.PRECISIONS:
        raise bodies.invalid(f"precision must be one of ns, us, ms, s; got {precision!r}")
    bodies.require_media_type(request, schemas.LINE_PROTOCOL_TYPES, "line protocol as text/plain")
    text = bodies.decode_text(bodies.read_body(request))
    try:
        points = lineprotocol.parse(text, precision)
    except lineprotocol.LineError as exc:
        raise bodies.invalid(str(exc)) from None
    await _publish(request.auth, points, lambda index: f"line {points[index][4]}")
    return Status(204, None)


@api.post(
    "v1/notifications",
    auth=TokenAuth("notify"),
    response={201: schemas.Created},
    summary="Send a notification",
    openapi_extra=schemas.NOTIFICATION_BODY,
)
async def send_notification(request):
    """`notify()` over HTTP: to exactly one of `user` (a username), `group` (a name) or `all: true`."""
    bodies.require_media_type(request, {"application/json"}, "application/json")
    payload = bodies.parse_json(bodies.read_body(request))
    try:
        message = schemas.NotificationIn.model_validate(payload)
    except ValidationError as exc:
        raise bodies.invalid(schemas.describe_errors(exc.errors())) from None
    notification = await sync_to_async(_notify)(message)
    return Status(201, {"id": notification.pk})


def _notify(message):
    to = None
    if message.group is not None:
        try:
            to = Group.objects.get(name=message.group)
        except Group.DoesNotExist:
            raise bodies.invalid(f"unknown group {message.group!r}") from None
    elif message.user is not None:
        to = message.user
    try:
        return notify(to, message.title, body=message.body, level=message.level, link=message.link)
    except ValueError as exc:
        raise bodies.invalid(str(exc)) from None


def _selection(request):
    """The request's `match` selectors as one `Selection`, None without any; 400 invalid
    for a bad one."""
    texts = request.GET.getlist("match")
    if not texts:
        return None
    try:
        return selectors.selection(texts)
    except ValueError as exc:
        raise bodies.invalid(str(exc)) from None


@api.get("v1/series", auth=ReadAuth(), summary="The live series, selected by labels")
async def list_series(request):
    """The series pushed within the retention, `match=SELECTOR` (repeatable) keeping
    those any selector matches: `{"series": [{"id", "name", "labels", "last": [ts,
    value] or null}], "truncated": bool}`, ordered by id."""
    selection = _selection(request)
    found, truncated = await sync_to_async(seriesindex.find)(selection)
    return {"series": found, "truncated": truncated}


@api.get("v1/labels/{label}/values", auth=ReadAuth(), summary="The values of one label")
async def label_values(request, label: str):
    """The values label `label` takes among the live series (`match=SELECTOR`, repeatable,
    narrows them); `__name__` lists the metric names: `{"values": [...]}`, sorted."""
    if label != seriesindex.NAME_LABEL:
        try:
            series.validate_label_name(label)
        except ValueError as exc:
            raise bodies.invalid(str(exc)) from None
    selection = _selection(request)
    return {"values": await sync_to_async(seriesindex.label_values)(label, selection)}

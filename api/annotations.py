"""Chart annotations over HTTP: `POST /api/v1/annotations` (a token with the
`annotate` scope) `{"time", "end"?, "text", "tags"?, "match"?}` → 201 `{"id"}`;
`GET /api/v1/annotations?start=&end=&match=` (an `annotate` or `read` token, or a
user who may view the metrics) → `{"annotations": [...]}`.

`match` on an annotation is the selector of the charts it belongs on (none: every
chart). A GET's `match` keeps the annotations that belong on every chart and those
whose selector names the same metric (or names none): selectors are not compared
any further, so a chart may get a marker meant for a sibling series.

Maintenance windows appear among them as bands, one per occurrence in the range,
tagged `maintenance`, with the id `"maintenance:<window id>:<start>"` (text, where
stored annotations have numbers).
"""

import math
import time
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from ninja import Router, Status

from alerts import windows
from alerts.models import MATCH_MAX_LENGTH, Annotation
from api import bodies, ratelimit
from api.auth import ApiError, aauthenticate, forbidden, unauthenticated
from api.schemes import BearerAuth
from dashboard import access, selectors

KEYS = {"time", "end", "text", "tags", "match"}
TEXT_MAX_LENGTH = Annotation._meta.get_field("text").max_length
MAX_TAGS = 16
# A GET answers at most this many, the newest first cut (the window should be narrowed).
MAX_ANSWER = 1000
DEFAULT_WINDOW_SECONDS = 24 * 3600


class AnnotateAuth(BearerAuth):
    """POST: a token with `annotate`. GET: that, a `read` token, or a viewing user."""

    async def authenticate(self, request):
        reading = request.method in ("GET", "HEAD")
        if request.headers.get("Authorization"):
            try:
                token = await aauthenticate(request, "annotate")
            except ApiError as exc:
                if not (reading and exc.status == 403):
                    raise
                token = await aauthenticate(request, "read")
            await ratelimit.take(token, "requests")
            return token
        if not reading:
            raise unauthenticated("send an API token with the annotate scope")
        user = await request.auser()
        if not user.is_authenticated:
            raise unauthenticated("log in, or send an API token with the annotate or read scope")
        if not await sync_to_async(access.can_view_metrics)(user):
            raise forbidden(f"permission {access.VIEW_PERMISSION} required")
        return user


router = Router(auth=AnnotateAuth(), tags=["annotations"])


def _moment(value, key):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bodies.invalid(f"{key} must be unix seconds (a number)")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise bodies.invalid(f"{key} is out of range") from None


def _validated(data):
    if not isinstance(data, dict):
        raise bodies.invalid("an annotation is a JSON object")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise bodies.invalid(f"unknown keys: {', '.join(unknown)}")
    if "time" not in data or "text" not in data:
        raise bodies.invalid("an annotation needs time and text")
    start = _moment(data["time"], "time")
    end = _moment(data["end"], "end") if data.get("end") is not None else None
    if end is not None and end < start:
        raise bodies.invalid("end must not be before time")
    text = data["text"]
    if not isinstance(text, str) or not text.strip() or len(text) > TEXT_MAX_LENGTH:
        raise bodies.invalid(f"text must be non-empty text of at most {TEXT_MAX_LENGTH} characters")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise bodies.invalid(f"tags must be a list of at most {MAX_TAGS} words")
    for tag in tags:
        if not isinstance(tag, str) or not 0 < len(tag) <= 64:
            raise bodies.invalid("each tag must be text of 1 to 64 characters")
    match = data.get("match") or ""
    if not isinstance(match, str) or len(match) > MATCH_MAX_LENGTH:
        raise bodies.invalid("match must be a selector")
    if match:
        try:
            selectors.parse(match)
        except ValueError as exc:
            raise bodies.invalid(str(exc)) from None
    return Annotation(time=start, end=end, text=text.strip(), tags=tags, match=match)


def _actor(auth):
    name = getattr(auth, "name", None)
    return f"token {name}" if name else auth.get_username()


@router.post("", response={201: dict}, summary="Add an annotation")
async def add_annotation(request):
    bodies.require_media_type(request, {"application/json"}, "application/json")
    annotation = _validated(bodies.parse_json(bodies.read_body(request)))
    annotation.created_by = _actor(request.auth)[:150]
    await annotation.asave()
    return Status(201, {"id": annotation.pk})


def _number(request, key, default):
    raw = request.GET.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise bodies.invalid(f"{key} must be unix seconds") from None
    if not math.isfinite(value):
        raise bodies.invalid(f"{key} must be unix seconds")
    return value


@router.get("", summary="Annotations in a window")
async def list_annotations(request):
    now = time.time()
    end = _number(request, "end", now)
    start = _number(request, "start", end - DEFAULT_WINDOW_SECONDS)
    if start > end:
        raise bodies.invalid("start must not be after end")
    names = set()
    for text in request.GET.getlist("match"):
        try:
            names.add(selectors.parse(text).metric_name)
        except ValueError as exc:
            raise bodies.invalid(str(exc)) from None

    def read():
        found = Annotation.objects.filter(time__lte=_moment(end, "end")).exclude(
            end__lt=_moment(start, "start")
        )
        found = found.exclude(end__isnull=True, time__lt=_moment(start, "start"))
        answer = []
        for annotation in found.order_by("time", "id")[: MAX_ANSWER * 4]:
            if names and annotation.match and None not in names:
                own = selectors.parse(annotation.match).metric_name
                if own is not None and own not in names:
                    continue
            answer.append(annotation.as_json())
            if len(answer) >= MAX_ANSWER:
                break
        # Maintenance windows appear as bands, one per occurrence in the range.
        wanted = () if None in names else names
        answer += windows.annotations(_moment(start, "start"), _moment(end, "end"), wanted)
        answer.sort(key=lambda annotation: annotation["time"])
        return answer[:MAX_ANSWER]

    return {"annotations": await sync_to_async(read)()}

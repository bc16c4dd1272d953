"""A stream request (`/events/`): parsing, validation with real status codes, the refusals,
and the response that starts the stream. Shared by both ways a GET arrives (Django's
handler, `DirectStreams`) and, for parsing and refusals, by Pushpin's connects (grip).

Every check happens before the stream starts, with real status codes (400, 403,
429, 503), never django-eventstream's HTTP 200 + `stream-error` (browsers retry
that forever). The session and permission lookups run in one `sync_to_async` call
off the request's own thread, which closes its database connection before
returning: an open stream keeps neither a thread nor a connection.
"""

import io
import re
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth import get_user
from django.core.handlers.asgi import ASGIRequest
from django.http import JsonResponse, StreamingHttpResponse
from django.utils.functional import SimpleLazyObject
from django_eventstream.utils import add_default_headers

from boards import sharing
from dashboard import access, draining, revocation, selectors
from dashboard import connections as open_connections
from dashboard.origins import request_origin_allowed
from dashboard.stream.channels import METRICS_CHANNEL, channel_exists
from dashboard.stream.stream import Stream

EVENTS_PATH = "/events/"
MAX_CHANNELS = 10
MAX_QUERY_STRING = 2048
# ASCII digits, the whole string (\d takes Unicode digits, $ a trailing newline).
EVENT_ID = re.compile(r"\A[0-9]{1,18}\Z")

ORIGIN_REFUSED = "Streams are for pages of this site only (Origin not allowed)"


class BadStreamRequest(ValueError):
    pass


def parse_channels(request):
    channels = sorted(set(request.GET.getlist("channel")))
    if not channels:
        raise BadStreamRequest("No channels specified; use ?channel=NAME")
    if len(channels) > MAX_CHANNELS:
        raise BadStreamRequest(f"Too many channels: at most {MAX_CHANNELS} per stream")
    unknown = [c for c in channels if not channel_exists(c)]
    if unknown:
        raise BadStreamRequest(f"Unknown channel: {', '.join(unknown)}")
    return channels


def last_event_id_of(request):
    """The header wins; else the last non-empty `lastEventId` (as the library reads it)."""
    # META, not request.headers: that builds a dict of every header, per stream connect.
    header = request.META.get("HTTP_LAST_EVENT_ID")
    if header:
        return header
    for value in reversed(request.GET.getlist("lastEventId")):
        if value:
            return value
    return None


def parse_last_ids(raw, channels):
    """{channel: int} from "chan:id[,chan:id...]"; channels not requested are ignored."""
    if raw is None:
        return {}
    if raw == "error":
        raise BadStreamRequest("Can't resume a stream after stream-error")
    last_ids = {}
    for part in raw.split(","):
        channel, sep, event_id = part.partition(":")
        if not sep or not EVENT_ID.match(event_id):
            raise BadStreamRequest("Malformed Last-Event-ID or lastEventId: expected channel:number")
        channel = unquote(channel)
        if channel in channels:
            last_ids[channel] = int(event_id)
    return last_ids


def parse_selection(request, channels):
    """The `Selection` of the request's `match=` (None without one): the series of
    `metrics` the stream carries. A bad selector is refused with the selector
    module's own message and limits."""
    texts = request.GET.getlist("match")
    if not texts:
        return None
    if METRICS_CHANNEL not in channels:
        raise BadStreamRequest("match= selects series of the metrics channel; add channel=metrics")
    try:
        return selectors.selection(texts)
    except selectors.SelectorError as exc:
        raise BadStreamRequest(f"Invalid match: {exc}") from None


def parse_stream_request(request):
    """(channels, last_ids, selection) or BadStreamRequest."""
    if len(request.META.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
        raise BadStreamRequest(f"Query string too long (at most {MAX_QUERY_STRING} characters)")
    channels = parse_channels(request)
    selection = parse_selection(request, channels)
    return channels, parse_last_ids(last_event_id_of(request), channels), selection


def error_response(request, status, message):
    response = JsonResponse({"error": message, "status": status}, status=status)
    add_default_headers(response, request=request)
    return response


SHARE_REFUSED = "This share link is not valid: revoked, expired or unknown"


class ShareRefused(Exception):
    def __init__(self, status, message):
        self.status, self.message = status, message
        super().__init__(message)


def share_token(request):
    return request.GET.get("share")


def parse_share_request(request):
    """(last_ids, selection asked for) of a share link's viewer, or ShareRefused: the link
    reads the `metrics` channel only, and a malformed request is 400."""
    if request.GET.getlist("channel") != [METRICS_CHANNEL]:
        raise ShareRefused(403, "A share link reads the metrics channel only")
    try:
        channels, last_ids, selection = parse_stream_request(request)
    except BadStreamRequest as exc:
        raise ShareRefused(400, str(exc)) from None
    return last_ids, selection


async def share_access(request):
    """(link, the selection its stream carries) for `?share=TOKEN`, or ShareRefused."""
    last_ids, asked = parse_share_request(request)
    link = await sharing.aresolve(share_token(request))
    if link is None:
        raise ShareRefused(403, SHARE_REFUSED)
    try:
        return link, last_ids, sharing.narrowed(link, asked)
    except sharing.OutOfScope as exc:
        raise ShareRefused(403, f"Outside this share link: {exc}") from None


async def open_shared_stream(request):
    """`open_stream` for a share link's anonymous viewer: no session is read; the link is
    resolved once (remembered per worker), and the stream carries only its scope, within
    the link's SHARE_MAX_VIEWERS places over every worker."""
    if draining.is_draining():
        return error_response(request, 503, "This worker is restarting; reconnect"), None
    if not request_origin_allowed(request):
        return error_response(request, 403, ORIGIN_REFUSED), None
    try:
        link, last_ids, selection = await share_access(request)
    except ShareRefused as refused:
        return error_response(request, refused.status, refused.message), None
    if not await open_connections.aclaim_share(link.id, settings.SHARE_MAX_VIEWERS):
        message = f"This share link has its {settings.SHARE_MAX_VIEWERS} viewers; try again later"
        return error_response(request, 429, message), None
    stream = Stream([METRICS_CHANNEL], last_ids, None, selection, share_id=link.id, expires=link.expires)
    return None, stream


async def open_stream(request):
    """(refusal response, None), or (None, Stream) for a stream the request may have."""
    if share_token(request) is not None:
        return await open_shared_stream(request)
    try:
        channels, last_ids, selection = parse_stream_request(request)
        problem = None
    except BadStreamRequest as exc:
        channels, last_ids, selection, problem = [], {}, None, str(exc)
    if draining.is_draining():
        # A request that reached a stopping worker over a kept-alive connection: nginx
        # passes a 503 on to the next worker (proxy_next_upstream).
        return error_response(request, 503, "This worker is restarting; reconnect"), None
    if not request_origin_allowed(request):
        return error_response(request, 403, ORIGIN_REFUSED), None
    # The session is read on the loop; a recent answer for it is reused, and connects
    # that miss together share one lookup in a thread, which closes its database
    # connection: a stream keeps neither a thread nor a connection.
    user, forbidden = await access.arequest_channel_access(request, channels)
    user_id = user.pk if user is not None else None
    refusal = access.stream_refusal(user_id is not None, problem, forbidden)
    if refusal:
        return error_response(request, *refusal), None
    if not open_connections.claim("sse", user_id):
        message = f"Too many open streams: at most {settings.MAX_CONNECTIONS_PER_USER} per user; close a tab"
        return error_response(request, 429, message), None
    session = revocation.session_tag(request.session.session_key) if user_id is not None else None
    return None, Stream(channels, last_ids, user_id, selection, session=session)


def stream_response(request, stream):
    response = EventStreamResponse(stream.run(), content_type="text/event-stream")
    response.stream = stream
    # Django closes every response once it is done, streamed or not, even when the
    # client left before the stream began: the place is given back there, once.
    if stream.share_id is not None:
        response._resource_closers.append(lambda: open_connections.release_share(stream.share_id))
    else:
        response._resource_closers.append(lambda: open_connections.release("sse", stream.user_id))
    add_default_headers(response, request=request)
    return response


class EventStreamResponse(StreamingHttpResponse):
    """A stream whose chunks are bytes already: the server iterates our generator itself.

    StreamingHttpResponse wraps an async iterator in two more async generators (one to
    coerce each chunk to bytes, one for `__aiter__`); at thousands of streams that is
    two extra generator resumptions per stream per event on the hot path."""

    def __aiter__(self):
        return self._iterator


def stream_request(scope, session_store):
    """The Django request of a stream GET, with its session and lazy user, built without
    the middleware chain (a GET to /events/ has no body)."""
    request = ASGIRequest(scope, io.BytesIO())
    request.session = session_store(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    request.user = SimpleLazyObject(lambda: get_user(request))
    return request

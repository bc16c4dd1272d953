"""`LivedashMiddleware`: requests, latency, exceptions and database queries by view.

Settings: `LIVEDASH_URL` and `LIVEDASH_TOKEN` (a token with the metrics scope),
`LIVEDASH_APP` (the `app` label, default `django`), `LIVEDASH_PUSH_INTERVAL`
(seconds between batches, default 5). Without URL and token the middleware turns
itself off (Django's MiddlewareNotUsed); with one of them only, start-up fails
naming the other.

Series (each with the labels `app` and `view`: the resolved view's name, never
the path, so the number of series stays that of the URLconf; `unmatched` for a
request no URL pattern matched):
- `django_requests{status, status_class}`: requests per second
- `django_request_ms_p50`, `_p95`, `_max`: time spent in the view and the middleware below this one
- `django_request_queries_p50`, `_p95`, `_max`: database queries per request
- `django_request_db_ms_p50`, `_p95`, `_max`: database time per request
- `django_exceptions{exception}`: exceptions raised by views, per second
"""

import contextlib
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.db import connections

from livedash_client.recorder import DEFAULT_INTERVAL, get_recorder

UNMATCHED = "unmatched"


def recorder_from_settings():
    """The process' recorder for the Django settings; None when livedash is not configured."""
    url = getattr(settings, "LIVEDASH_URL", None)
    token = getattr(settings, "LIVEDASH_TOKEN", None)
    if not url and not token:
        return None
    if not url or not token:
        missing = "LIVEDASH_TOKEN" if url else "LIVEDASH_URL"
        raise ImproperlyConfigured(f"{missing} must be set too: livedash_client needs both URL and token")
    app = getattr(settings, "LIVEDASH_APP", "django")
    interval = float(getattr(settings, "LIVEDASH_PUSH_INTERVAL", DEFAULT_INTERVAL))
    if not interval > 0:
        raise ImproperlyConfigured(f"LIVEDASH_PUSH_INTERVAL must be above 0, got {interval!r}")
    return get_recorder(url, token, app, interval)


def view_label(request):
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else UNMATCHED


def exception_label(exception):
    kind = type(exception)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


class QueryTimer:
    """A `connection.execute_wrapper`: counts and times every query the request makes."""

    __slots__ = ("count", "seconds")

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - started


class LivedashMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.recorder = recorder_from_settings()
        if self.recorder is None:
            raise MiddlewareNotUsed("LIVEDASH_URL and LIVEDASH_TOKEN are not set")

    def __call__(self, request):
        queries = QueryTimer()
        started = time.perf_counter()
        with contextlib.ExitStack() as wrappers:
            for alias in connections:
                wrappers.enter_context(connections[alias].execute_wrapper(queries))
            response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        # Recording must never fail the request it measures.
        with contextlib.suppress(Exception):
            self._record(view_label(request), response.status_code, elapsed_ms, queries)
        return response

    def _record(self, view, status, elapsed_ms, queries):
        record = self.recorder
        status_labels = {"view": view, "status": str(status), "status_class": f"{status // 100}xx"}
        record.count("django_requests", status_labels)
        labels = {"view": view}
        record.observe("django_request_ms", labels, elapsed_ms)
        record.observe("django_request_queries", labels, queries.count)
        record.observe("django_request_db_ms", labels, queries.seconds * 1000)

    def process_exception(self, request, exception):
        with contextlib.suppress(Exception):
            self.recorder.count(
                "django_exceptions", {"view": view_label(request), "exception": exception_label(exception)}
            )
        # None: Django goes on handling the exception as it would without this middleware.

"""Who is acting: the request being served (set by AuditContextMiddleware), or the
management command being run, or nobody (the system)."""

import contextvars
import sys
from dataclasses import dataclass

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

_request = contextvars.ContextVar("audit_request", default=None)


@dataclass(frozen=True)
class Actor:
    username: str = ""
    address: str = ""


def current_actor():
    request = _request.get()
    if request is not None:
        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else ""
        return Actor(username, request.META.get("REMOTE_ADDR", "") or "")
    return Actor(_command_name(), "")


def _command_name():
    # `manage.py add_channel ...` acts as "manage.py add_channel".
    argv = sys.argv
    if len(argv) > 1 and argv[0].endswith("manage.py"):
        return f"manage.py {argv[1]}"[:150]
    return ""


class AuditContextMiddleware:
    """Remembers the request for the audit signals of the changes it makes (admin saves)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)

    async def _acall(self, request):
        token = _request.set(request)
        try:
            return await self.get_response(request)
        finally:
            _request.reset(token)

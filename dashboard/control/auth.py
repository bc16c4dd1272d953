"""WebSocket authentication that lets a connect storm run in parallel.

Channels' `AuthMiddleware` resolves the user with `database_sync_to_async`, which
is thread-sensitive: outside an HTTP request every such call in a worker shares
one thread. Each handshake's session and user lookups then queue behind each
other, and in a storm of a thousand reconnecting tabs most handshakes outlive
daphne's handshake timeout. The lookup itself is Django's public
`django.contrib.auth.get_user` (what Channels' own lookup repeats: the session's
user and backend, the session auth hash verified); it only runs on the loop's
thread pool instead, and closes its database connection as Channels would.
"""

from types import SimpleNamespace

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.contrib.auth import get_user
from django.db import close_old_connections


def _user_for(scope):
    if "session" not in scope:
        raise ValueError("no session in scope: wrap the application in SessionMiddleware")
    close_old_connections()
    try:
        # get_user reads nothing of the request but its session.
        return get_user(SimpleNamespace(session=scope["session"]))
    finally:
        close_old_connections()


class ConcurrentAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope):
        scope["user"]._wrapped = await sync_to_async(_user_for, thread_sensitive=False)(scope)


class SocketSessionMiddleware(SessionMiddleware):
    """Channels' SessionMiddleware for sockets: the session in the scope, and the server's
    own `send`. Channels wraps `send` to save a modified session on an HTTP response,
    which a socket never sends, yet its wrapper inspects the session on every message:
    profiled, a large share of a broadcast's CPU (docs/performance.md)."""

    async def __call__(self, scope, receive, send):
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def ConcurrentAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SocketSessionMiddleware(ConcurrentAuthMiddleware(inner)))

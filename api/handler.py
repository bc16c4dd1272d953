"""The token endpoints through a Django handler of their own, without the page middlewares.

A push is one short request, and a service may send hundreds a second. Through
the full chain, each sync middleware step is a trip to a thread, and Django
starts a thread per request for them; measured, that capped one worker near 190
single-point pushes a second at about 5 ms each (docs/performance.md). A request
to these paths authenticates with its token header alone, so the middlewares
that serve pages and sessions have nothing to do for it (dashboard.bypasses says
why, one by one, and which run). Their sync steps share one thread, as stream
connects do.
"""

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

from dashboard.bypasses import api_push_chain
from dashboard.loops import SharedSyncThread

# The endpoints that take an API token and nothing else (the docs pages need a login,
# so they keep the whole chain).
TOKEN_PATHS = frozenset({"/api/v1/metrics", "/api/v2/write", "/api/v1/notifications"})


class TokenRequestHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        everything = settings.MIDDLEWARE
        # Django builds the chain from settings.MIDDLEWARE alone; this runs once, at start-up.
        settings.MIDDLEWARE = api_push_chain(everything)
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


class TokenRequests:
    """ASGI wrapper: requests to TOKEN_PATHS go to a TokenRequestHandler; the rest to `app`."""

    def __init__(self, app):
        self.app = app
        self.handler = TokenRequestHandler()
        self.sync_thread = SharedSyncThread("api-sync")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in TOKEN_PATHS:
            return await self.app(scope, receive, send)
        # Outermost, so Django's own per-request context (a new thread each) defers to it.
        async with self.sync_thread.context():
            await self.handler(scope, receive, send)

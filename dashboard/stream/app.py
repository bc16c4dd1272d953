"""`DirectStreams`, the ASGI app that serves a stream GET without Django's request cycle."""

import asyncio
import logging
from importlib import import_module

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIHandler
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware

from dashboard.loops import SharedSyncThread
from dashboard.stream.request import EVENTS_PATH, error_response, open_stream, stream_request, stream_response

logger = logging.getLogger(__name__)

# Stream connects' sync steps (a session the cache lacks is read from the database there).
stream_sync = SharedSyncThread("sse-sync")


class DirectStreams:
    """ASGI wrapper: a GET to `/events/` is decided by `open_stream`, then streamed
    straight to the server; anything else goes on to `app` (Django).

    Why not Django's handler: through it, every sync middleware step of a connect is
    a trip to a thread (most of a connect storm's CPU, profiled), and an open stream
    keeps Django's request, its handler tasks and the chain's frames for as long as
    it lasts (most of the memory per stream). Here the security step runs (HTTPS
    redirect, its headers), the Host is checked as Django checks it, the session is
    read with Django's async API, and nothing of the request is kept once the
    stream starts. Which middlewares a stream may skip, and why, is one table for
    every path that bypasses Django's handler (dashboard.bypasses, kept in step with
    settings.MIDDLEWARE by a test).
    """

    def __init__(self, app):
        self.app = app
        self.handler = app if isinstance(app, ASGIHandler) else ASGIHandler()
        self.security = SecurityMiddleware(self.app)
        self.common = CommonMiddleware(self.app)
        self.session_store = import_module(settings.SESSION_ENGINE).SessionStore
        # For ProxiedStreamConnects, which answers from outside this wrapper.
        self.send_response = self.handler.send_response

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["path"] == EVENTS_PATH and scope["method"] == "GET"):
            return await self.app(scope, receive, send)
        if (await receive())["type"] == "http.disconnect":
            return
        async with stream_sync.context():
            response = await self.decide(scope)
            await stream_sync.sweep()
        if not response.streaming:
            await self.handler.send_response(response, send)
            return response.close()
        # The hub writes to the stream while it is idle (Stream.write_now).
        response.stream.send = send
        # The client leaving ends the stream: Django's handler listens the same way.
        streaming = asyncio.current_task()
        left = asyncio.ensure_future(receive())
        stop = lambda _: streaming.cancel()  # noqa: E731
        left.add_done_callback(stop)
        try:
            await self.handler.send_response(response, send)
        except asyncio.CancelledError:
            if not left.done() or left.cancelled():
                raise  # not the client leaving: the server is stopping us
            streaming.uncancel()
        finally:
            left.remove_done_callback(stop)
            left.cancel()
            response.close()

    async def decide(self, scope):
        """The stream's response (its request dropped), or a refusal to send whole."""
        request = stream_request(scope, self.session_store)
        try:
            request.get_host()
            response = self.security.process_request(request)
            if response is None:
                refusal, stream = await open_stream(request)
                response = refusal or stream_response(request, stream)
        except DisallowedHost:
            response = error_response(request, 400, "Invalid Host header")
        except Exception:
            logger.exception("/events/ connect failed")
            response = error_response(request, 500, "Server error; retry shortly")
        response = self.security.process_response(request, response)
        if not response.streaming:
            response = self.common.process_response(request, response)
        return response

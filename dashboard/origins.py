"""Which page origins may open a stream or a socket: the one rule, for both transports.

Exact `scheme://host:port` only: the site's own origin as this request reached it
(the scheme the server saw, after the proxy's X-Forwarded-Proto, and the Host
header, which must be one of ALLOWED_HOSTS), or one listed in CSRF_TRUSTED_ORIGINS.
Comparing host names alone let a page from another port or scheme of the same
host (`http://127.0.0.1:9999`, `chrome-extension://127.0.0.1`) drive a user's
socket with their cookies.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}
# WebSocket schemes name the same origin as their HTTP counterparts.
HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def normalise(origin):
    """'scheme://host[:port]' with the default port dropped and case folded; None if not http(s)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def own_origin(scheme, host_header):
    """The site's origin as requested, or None when the Host is not one of ALLOWED_HOSTS."""
    scheme = HTTP_SCHEME.get((scheme or "").lower())
    if scheme is None or not host_header:
        return None
    domain, _ = split_domain_port(host_header.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return normalise(f"{scheme}://{host_header}")


def origin_allowed(origin, scheme, host_header):
    """True when the page at `origin` may use this site's streams and sockets."""
    if not origin:
        return False
    wanted = normalise(origin)
    if wanted is None:
        return False
    trusted = {normalise(entry) for entry in settings.CSRF_TRUSTED_ORIGINS}
    return wanted == own_origin(scheme, host_header) or wanted in trusted


def request_origin_allowed(request):
    """For an HTTP request (the SSE stream): no Origin header is a same-origin
    EventSource, which browsers send without one; any Origin must be allowed."""
    origin = request.META.get("HTTP_ORIGIN")  # request.headers would build them all, per connect
    if origin is None:
        return True
    return origin_allowed(origin, request.scheme, request.META.get("HTTP_HOST", ""))


class ExactOriginValidator:
    """ASGI middleware for the WebSocket: a handshake whose Origin is not allowed is
    refused with 403 before anything else runs (a browser always sends Origin)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            headers = dict(scope.get("headers", ()))
            origin = headers.get(b"origin", b"").decode("latin-1")
            host = headers.get(b"host", b"").decode("latin-1")
            if not origin_allowed(origin, scope.get("scheme", "ws"), host):
                from channels.security.websocket import WebsocketDenier

                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

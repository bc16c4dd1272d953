"""Who is calling the API: the one place a request's token is read and its scope checked.

Every /api/ endpoint and /metrics use it. A token comes in `Authorization: Bearer T`
(the usual form) or `Authorization: Token T` (what InfluxDB clients and Telegraf send).
Failures are `ApiError`s carrying the contract's JSON error; `error_response` renders one.
"""

import functools
import ipaddress

from asgiref.sync import iscoroutinefunction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.models import ApiToken

SCHEMES = ("bearer", "token")
CHALLENGE = 'Bearer realm="livedash"'


class ApiError(Exception):
    """An error answered as `{"error": code, "detail": detail}` with `status`."""

    def __init__(self, status, code, detail, headers=None):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})


def unauthenticated(detail):
    return ApiError(401, "unauthenticated", detail, {"WWW-Authenticate": CHALLENGE})


def forbidden(detail):
    return ApiError(403, "forbidden", detail)


def error_response(error):
    response = JsonResponse({"error": error.code, "detail": error.detail}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def token_text(request):
    """The token in the Authorization header; raises 401 when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if not header:
        raise unauthenticated("send an API token: Authorization: Bearer <token>")
    if scheme.lower() not in SCHEMES or not value.strip():
        raise unauthenticated("the Authorization header must be 'Bearer <token>' or 'Token <token>'")
    return value.strip()


def client_address(request):
    address = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _checked(token, scope):
    if token is None:
        raise unauthenticated("the API token is unknown or revoked")
    if not token.has_scope(scope):
        raise forbidden(f"this token lacks the {scope} scope")
    return token


def authenticate(request, scope):
    """The request's active ApiToken holding `scope` ("metrics", "notify", "scrape").

    Raises ApiError: 401 without a valid token, 403 when the token lacks the scope.
    Per-metric-name checks are `token.allows_metric(name)`."""
    token = _checked(ApiToken.lookup(token_text(request)), scope)
    token.mark_used(client_address(request))
    return token


async def aauthenticate(request, scope):
    """`authenticate` for async views."""
    token = _checked(await ApiToken.alookup(token_text(request)), scope)
    await token.amark_used(client_address(request))
    return token


def token_required(scope):
    """Decorate a plain Django view (sync or async) so it runs only for a token with
    `scope`, found then on `request.api_token`; otherwise it answers the JSON error.
    CSRF does not apply: the credential is a header a browser never sends by itself."""

    def decorator(view):
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def wrapper(request, *args, **kwargs):
                try:
                    request.api_token = await aauthenticate(request, scope)
                except ApiError as error:
                    return error_response(error)
                return await view(request, *args, **kwargs)

        else:

            @functools.wraps(view)
            def wrapper(request, *args, **kwargs):
                try:
                    request.api_token = authenticate(request, scope)
                except ApiError as error:
                    return error_response(error)
                return view(request, *args, **kwargs)

        return csrf_exempt(wrapper)

    return decorator

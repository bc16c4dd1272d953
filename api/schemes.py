"""The API's authentication schemes, as django-ninja takes them.

Who may call what is decided in `api.auth` (tokens and their scopes); these classes
only hook that onto ninja's `auth=`, so the OpenAPI page shows the bearer scheme,
and count each token's request before its body is read."""

from ninja.security.base import AuthBase
from ninja.utils import check_csrf

from api import ratelimit
from api.auth import ApiError, aauthenticate, forbidden, unauthenticated


class BearerAuth(AuthBase):
    """A ninja auth whose `authenticate` is a coroutine; the OpenAPI page shows bearer."""

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __call__(self, request):
        return self.authenticate(request)

    async def authenticate(self, request):
        raise NotImplementedError


async def token_with_scope(request, scope):
    """The request's token if it has `scope` (else `ApiError`), its request counted:
    a flood is turned away at the cheapest point, before the body is read."""
    token = await aauthenticate(request, scope)
    await ratelimit.take(token, "requests")
    return token


class TokenAuth(BearerAuth):
    """A token with one scope."""

    def __init__(self, scope):
        self.scope = scope
        super().__init__()

    async def authenticate(self, request):
        return await token_with_scope(request, self.scope)


class TokenOrStaffSession(BearerAuth):
    """A token with the scope (when the request sends one), else a staff user's session
    (then CSRF applies to anything but a read, as to any form a browser posts)."""

    def __init__(self, scope, what):
        self.scope = scope
        self.what = what
        super().__init__()

    async def authenticate(self, request):
        if "Authorization" in request.headers:
            return await token_with_scope(request, self.scope)
        user = await request.auser()
        if not user.is_authenticated:
            raise unauthenticated(f"send an API token with the {self.scope} scope, or sign in as staff")
        if not user.is_staff:
            raise forbidden(f"{self.what} are for staff and for tokens with the {self.scope} scope")
        if request.method not in ("GET", "HEAD", "OPTIONS") and check_csrf(request) is not None:
            raise ApiError(403, "forbidden", "CSRF check failed: send the X-CSRFToken header")
        return user

"""The API's authentication schemes, as django-ninja takes them.

Who may call what is decided in `api.auth` (tokens and their scopes); these classes
only hook that onto ninja's `auth=`, so the OpenAPI page shows the bearer scheme,
and count each token's request before its body is read."""

from ninja.security.base import AuthBase

from api import ratelimit
from api.auth import aauthenticate


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

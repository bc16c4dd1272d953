"""Sign-in through the company's identity provider: django-allauth's OpenID Connect
provider, with what livedash needs on top of it.

- A `nonce`: allauth's provider sends none, so a stolen ID token could be replayed
  into another sign-in. `NonceCheckingProvider` puts a fresh one in the request and
  in the stashed state; `NonceCheckingAdapter` refuses an ID token without it.
- The ID token is always verified against the issuer's keys (allauth skips the
  signature when the token came over the back channel; a key mix-up at the provider
  then goes unnoticed), and the userinfo's subject must be the token's.
- Users are matched by the issuer's subject (allauth's SocialAccount uid), never by
  e-mail (settings: SOCIALACCOUNT_EMAIL_AUTHENTICATION off).
- Roles follow the groups claim on every sign-in (accounts.roles.follow_idp_groups).
- The first sign-in of a provider's user and every refused one are audited.
"""

import time

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.decorators import login_not_required
from allauth.account.internal.flows.login import get_authentication_records
from allauth.core import context
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.base import AuthProcess
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.conf import settings
from django.http import Http404
from django.urls import reverse
from django.utils.crypto import constant_time_compare, get_random_string
from django.utils.translation import gettext as _

from accounts.roles import follow_idp_groups
from accounts.signals import client_address
from audit.services import record

NONCE_LENGTH = 32
# The password backend: a provider's user has no password, but their session must
# name a backend that can load them again (django-axes' backend cannot).
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


class NonceCheckingAdapter(OpenIDConnectOAuth2Adapter):
    expected_nonce = None

    def complete_login(self, request, app, token, **kwargs):
        id_token = kwargs["response"].get("id_token")
        if not id_token:
            raise OAuth2Error("the provider sent no ID token")
        config = self.openid_config
        claims = jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=config["jwks_uri"],
            issuer=config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )
        nonce = claims.get("nonce")
        if (
            not self.expected_nonce
            or not isinstance(nonce, str)
            or not constant_time_compare(nonce, self.expected_nonce)
        ):
            raise OAuth2Error("the ID token's nonce is not the one this sign-in sent")
        data = {"id_token": claims}
        if app.settings.get("fetch_userinfo", True):
            userinfo = self._fetch_user_info(token.token)
            if str(userinfo.get("sub")) != str(claims.get("sub")):
                raise OAuth2Error("the userinfo names another subject than the ID token")
            data["userinfo"] = userinfo
        return self.get_provider().sociallogin_from_response(request, data)


class NonceCheckingProvider(OpenIDConnectProvider):
    oauth2_adapter_class = NonceCheckingAdapter

    def redirect(self, request, process, next_url=None, data=None, **kwargs):
        nonce = get_random_string(NONCE_LENGTH)
        auth_params = kwargs.pop("auth_params", None)
        auth_params = dict(self.get_auth_params() if auth_params is None else auth_params, nonce=nonce)
        # Only signing in: linking a provider account to a signed-in user is not offered.
        return super().redirect(
            request, AuthProcess.LOGIN, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs
        )


class NonceCallbackView(OAuth2CallbackView):
    def _get_state(self, request, provider):
        # The stashed state is consumed here; the adapter needs its nonce later.
        state, response = super()._get_state(request, provider)
        if state is not None:
            self.adapter.expected_nonce = state.get("nonce")
        return state, response


@login_not_required
def oidc_login(request, provider_id):
    try:
        return OAuth2LoginView.adapter_view(NonceCheckingAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None


@login_not_required
def oidc_callback(request, provider_id):
    try:
        return NonceCallbackView.adapter_view(NonceCheckingAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None


def groups_claim(sociallogin):
    """The provider's groups for this sign-in: the ID token's claim, else the userinfo's."""
    name = settings.OIDC_GROUPS_CLAIM
    data = sociallogin.account.extra_data or {}
    for source in (data.get("id_token") or {}, data.get("userinfo") or {}):
        if name in source:
            value = source[name]
            if isinstance(value, str):
                return [value]
            if isinstance(value, (list, tuple)):
                return [str(item) for item in value]
            return []
    return []


class IdentityProviderAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request, sociallogin):
        if sociallogin.is_existing:
            follow_idp_groups(sociallogin.user, groups_claim(sociallogin), first_sign_in=False)

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        follow_idp_groups(user, groups_claim(sociallogin), first_sign_in=True)
        record(
            "oidc_first_sign_in",
            f"{user.get_username()} ({sociallogin.account.uid})",
            actor=user.get_username(),
            address=client_address(request),
        )
        return user

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        reason = str(exception) if exception else str(error or "unknown")
        record(
            "sign_in_failed", f"{provider.name}: {reason}"[:200], actor="", address=client_address(request)
        )


class AccountAdapter(DefaultAccountAdapter):
    def is_reauthentication_required(self, *, app=None, **kwargs):
        """Adding or removing a second factor needs a proof of identity within
        ACCOUNT_REAUTHENTICATION_TIMEOUT: the sign-in itself (password, provider, second
        factor) or one given again on allauth's reauthentication pages. An older session
        is sent there first, and comes back to what it asked for."""
        request = context.request
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return True
        latest = max((entry.get("at", 0) for entry in get_authentication_records(request, user)), default=0)
        return time.time() - latest >= settings.ACCOUNT_REAUTHENTICATION_TIMEOUT

    def get_reauthentication_methods(self, user):
        """allauth's (password, a second factor), and for a provider's user signing in
        again through the provider: without it a provider's user with no second factor
        had no way to prove themselves again, and was refused."""
        methods = super().get_reauthentication_methods(user)
        if settings.OIDC_ISSUER and SocialAccount.objects.filter(user_id=user.pk).exists():
            methods.append(
                {
                    "id": "provider",
                    "description": _("Sign in again with %(provider)s")
                    % {"provider": settings.OIDC_PROVIDER_NAME},
                    "url": reverse("account-reauthenticate-provider"),
                }
            )
        return methods

    def login(self, request, user):
        if not hasattr(user, "backend"):
            user.backend = SESSION_BACKEND
        return super().login(request, user)

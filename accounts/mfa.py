"""Second factors under django-axes' lockout, and what changing them changes.

allauth.mfa checks a code or a passkey without Django's `authenticate()`, so
django-axes, which counts failures from it, never heard of a wrong second factor:
allauth's own per-user rate limit was all that stood in the way. These forms (named
in MFA_FORMS) make every step count like the password: a wrong authenticator-app or
recovery code is a failed sign-in for that username from that address, the same
counter wrong passwords fill; once the pair is locked out, neither a code, a passkey
nor a password is accepted until the cool-off ends, and the lockout page is shown.
"""

from allauth.core import context
from allauth.mfa.base import forms as base_forms
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn import forms as webauthn_forms
from axes.handlers.proxy import AxesProxyHandler
from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from dashboard import revocation

LOCKED_OUT = _("Too many failed attempts: signing in is locked for a while.")


def axes_credentials(user):
    return {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}


def refuse_if_locked_out(user):
    """Raise a form error (and have AxesMiddleware answer with its lockout page) when this
    username is locked out from this address."""
    request = context.request
    credentials = axes_credentials(user)
    if AxesProxyHandler.is_locked(request, credentials):
        request.axes_locked_out = True
        request.axes_credentials = credentials
        raise forms.ValidationError(LOCKED_OUT, code="locked_out")


def count_failure(user):
    """A wrong second factor is a failed sign-in for django-axes (which may lock out now)."""
    AxesProxyHandler.user_login_failed(
        sender=count_failure, credentials=axes_credentials(user), request=context.request
    )


class AxesCodeMixin:
    def clean_code(self):
        refuse_if_locked_out(self.user)
        return super().clean_code()

    def _emit_authentication_failed(self, authenticator):
        count_failure(self.user)
        super()._emit_authentication_failed(authenticator)


class AuthenticateForm(AxesCodeMixin, base_forms.AuthenticateForm):
    """The code asked at sign-in (authenticator app or recovery code)."""


class ReauthenticateForm(AxesCodeMixin, base_forms.ReauthenticateForm):
    """The code asked again before a second factor is added or removed."""


class AuthenticateWebAuthnForm(webauthn_forms.AuthenticateWebAuthnForm):
    """A passkey as the second step: refused while the username is locked out."""

    def clean_credential(self):
        refuse_if_locked_out(self.user)
        return super().clean_credential()


class ReauthenticateWebAuthnForm(webauthn_forms.ReauthenticateWebAuthnForm):
    def clean_credential(self):
        refuse_if_locked_out(self.user)
        return super().clean_credential()


class AddWebAuthnForm(webauthn_forms.AddWebAuthnForm):
    """allauth's form to add a passkey, its name field labelled in the page's language."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].label = _("Name")


def on_second_factors_changed(sender, request, user, authenticator, **kwargs):
    """Under MFA_REQUIRED a second factor decides whether the user may read streams and
    open sockets at all: what each worker remembers of their access is dropped, and what
    they hold open reconnects to be asked again (dashboard.revocation)."""
    # Recovery codes come and go with the factor they back up, and count for nothing alone.
    if settings.MFA_REQUIRED != "off" and authenticator.type != Authenticator.Type.RECOVERY_CODES:
        revocation.revoke([user.pk])

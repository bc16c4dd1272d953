"""The sign-in page, and `/account/sessions/`: the signed-in user's sessions; end one, or all but this one."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.models import UserSession


@never_cache
@require_GET
@login_required
def sessions(request):
    current = request.session.session_key
    listed = UserSession.objects.live_of(request.user)
    return render(
        request,
        "accounts/sessions.html",
        {"sessions": listed, "current_key": current, "others": any(s.session_key != current for s in listed)},
    )


@never_cache
@require_POST
@login_required
def end_session(request, session_id):
    found = UserSession.objects.filter(user=request.user, pk=session_id).first()
    if found is None or found.session_key == request.session.session_key:
        # Someone else's, gone already, or this one (that is signing out): nothing to end here.
        messages.error(request, _("That session cannot be ended here."))
    else:
        found.end()
        messages.info(request, _("The session was ended."))
    return redirect("account-sessions")


@never_cache
@require_POST
@login_required
def end_other_sessions(request):
    ended = UserSession.end_all_but(request.user, request.session.session_key)
    messages.info(request, _("Other sessions ended: %(count)d.") % {"count": ended})
    return redirect("account-sessions")


class LoginView(auth_views.LoginView):
    """The sign-in page: the password form while LOCAL_LOGIN is on, and "Sign in with
    <provider>" when OIDC is configured. With LOCAL_LOGIN off a password POST is
    refused here, not only left out of the page."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_LOGIN:
            return HttpResponseForbidden(_("Password sign-in is turned off here."))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        # The password was right: allauth's login stages take over, so a user with a
        # second factor is asked for it before the session is signed in.
        from allauth.account.internal.flows.login import perform_password_login
        from allauth.account.models import Login

        user = form.get_user()
        login = Login(user=user, redirect_url=self.get_success_url())
        return perform_password_login(self.request, {"username": user.get_username()}, login)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sign_in_choices()}


def sign_in_choices():
    return {
        "local_login": settings.LOCAL_LOGIN,
        "passkey_login": settings.LOCAL_LOGIN and settings.MFA_PASSKEY_LOGIN_ENABLED,
        "oidc_provider_name": settings.OIDC_PROVIDER_NAME if settings.OIDC_ISSUER else None,
    }


@never_cache
def admin_login(request):
    """The admin signs in through the site's sign-in, so its second factor and
    LOCAL_LOGIN apply there too: a GET leads to the sign-in page, a POST is the site's
    password sign-in (or refused with LOCAL_LOGIN off)."""
    if request.method == "POST":
        if not settings.LOCAL_LOGIN:
            return HttpResponseForbidden(_("Password sign-in is turned off here."))
        return LoginView.as_view()(request)
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"))


@never_cache
@require_GET
@login_required
def reauthenticate_with_provider(request):
    """Proving who you are again through the identity provider, before a second factor is
    added or removed (allauth's reauthentication offers it for a provider's user): the
    button signs in there afresh and comes back to the page that asked."""
    if not settings.OIDC_ISSUER:
        return redirect("account_reauthenticate")
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = reverse("mfa_index")
    return render(
        request,
        "accounts/reauthenticate_provider.html",
        {"next": next_url, "oidc_provider_name": settings.OIDC_PROVIDER_NAME},
    )

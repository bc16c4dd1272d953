"""django-allauth's views that livedash uses, under the names allauth reverses."""

from allauth.account import views as allauth_views
from django.urls import include, path

from accounts import oidc, views
from dashboard.views import LogoutView

urlpatterns = [
    # allauth's own names for livedash's sign-in and sign-out pages (config/urls.py serves
    # these addresses first; these entries are only what allauth reverses).
    path("login/", views.LoginView.as_view(), name="account_login"),
    path("logout/", LogoutView.as_view(), name="account_logout"),
    # The password asked again before a second factor is added or removed.
    path("reauthenticate/", allauth_views.reauthenticate, name="account_reauthenticate"),
    path(
        "reauthenticate/provider/",
        views.reauthenticate_with_provider,
        name="account-reauthenticate-provider",
    ),
    path("oidc/<str:provider_id>/login/", oidc.oidc_login, name="openid_connect_login"),
    path("oidc/<str:provider_id>/login/callback/", oidc.oidc_callback, name="openid_connect_callback"),
    # Second factors: the sign-in challenge, TOTP, recovery codes and passkeys.
    path("2fa/", include("allauth.mfa.urls")),
]

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from accounts import views as account_views
from api import views as api_views
from dashboard.views import LogoutView

urlpatterns = [
    path("accounts/login/", account_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    # Alert rules and their history moved to the `alerts` app: old admin links still lead there.
    re_path(
        r"^admin/notifications/(?P<rest>alert(?:rule|event)/.*)$",
        RedirectView.as_view(url="/admin/alerts/%(rest)s", permanent=True, query_string=True),
    ),
    path("admin/login/", account_views.admin_login),
    path("admin/", admin.site.urls),
    # Sign-in through the identity provider (OIDC) and second factors: only these views
    # of django-allauth, not its own sign-up, password or e-mail pages.
    path("accounts/", include("accounts.urls_identity")),
    # /i18n/setlang/ (Django's set_language) and the scripts' catalogue, loaded as a file (no inline script).
    path("i18n/", include("django.conf.urls.i18n")),
    path("i18n/js/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("api/", api_views.urls()),
    path("notifications/", include("notifications.urls")),
    path("account/", include("accounts.urls")),
    path("", include("hosts.urls")),
    # `/` is the home dashboard (boards), falling back to the page of every metric (dashboard).
    path("", include("boards.urls")),
    path("", include("dashboard.urls")),
]

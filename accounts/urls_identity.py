"""django-allauth's views that livedash uses, under the names allauth reverses."""

from django.urls import path

from accounts import oidc

urlpatterns = [
    path("oidc/<str:provider_id>/login/", oidc.oidc_login, name="openid_connect_login"),
    path("oidc/<str:provider_id>/login/callback/", oidc.oidc_callback, name="openid_connect_callback"),
]

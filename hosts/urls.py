from django.urls import path

from hosts import views

urlpatterns = [
    path("hosts/", views.hosts_page, name="hosts"),
    path("hosts/revoke/", views.revoke_host, name="hosts-revoke"),
]

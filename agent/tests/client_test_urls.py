"""A small URLconf for the middleware tests: a view that queries, one that fails, one with a parameter."""

from django.contrib.auth.models import User
from django.http import HttpResponse, JsonResponse
from django.urls import path


def users(request):
    User.objects.count()
    User.objects.filter(username="nobody").exists()
    return JsonResponse({"ok": True})


def item(request, pk):
    return HttpResponse(status=201 if pk % 2 else 404)


def broken(request):
    raise ValueError("a bug in the view")


urlpatterns = [
    path("users/", users, name="users"),
    path("items/<int:pk>/", item, name="item"),
    path("broken/", broken, name="broken"),
]

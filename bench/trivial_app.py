"""The trivial Django view bench.fleet times with and without LivedashMiddleware (its URLconf)."""

from django.http import HttpResponse
from django.urls import path


def ping(request):
    return HttpResponse("ok")


urlpatterns = [path("ping/", ping, name="ping")]

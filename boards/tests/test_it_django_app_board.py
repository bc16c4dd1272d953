"""The provisioned "Django app" dashboard reads what livedash_client really pushes: every
panel's selectors (with its variables at "All") match series that the middleware and the
Celery hooks produce, through the same line protocol mapping the write API applies."""

import json
import re
from types import SimpleNamespace

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import path
from livedash_client import django as livedash_django
from livedash_client.celery import TaskHooks
from livedash_client.recorder import Recorder

from api import lineprotocol
from boards import spec
from dashboard import selectors, series

VARIABLE = re.compile(r"\$([a-zA-Z_][a-zA-Z0-9_]*)")


def ok(request):
    return HttpResponse("ok")


def fails(request):
    return HttpResponse(status=503)


def raises(request):
    raise RuntimeError("boom")


# This module is the URLconf of the small app whose traffic is recorded.
urlpatterns = [path("ok/", ok, name="ok"), path("fails/", fails, name="fails"), path("raises/", raises)]


class Capture:
    def push(self, lines):
        raise AssertionError("nothing is sent in this test: it collects by hand")


def pushed_series(monkeypatch):
    """(name, labels) of every series one interval of a small app's traffic produces."""
    recorder = Recorder("http://127.0.0.1:9", "t", "shop", interval=3600, sender=Capture())
    monkeypatch.setattr(livedash_django, "recorder_from_settings", lambda: recorder)
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=["livedash_client.django.LivedashMiddleware"]):
        handler = BaseHandler()
        handler.load_middleware()
        factory = RequestFactory()
        for path_ in ("/ok/", "/fails/", "/raises/", "/nowhere/"):
            handler.get_response(factory.get(path_))
    hooks = TaskHooks(recorder)
    task = SimpleNamespace(name="shop.tasks.send_mail")
    hooks.task_prerun(task_id="1", task=task)
    hooks.task_postrun(task_id="1", task=task)
    hooks.task_failure(sender=task, task_id="2", exception=ValueError("bad address"))
    recorder.stop()
    body = "\n".join(recorder.collect())
    return [
        (name, series.validate_labels(labels))
        for name, _value, _ts, labels, _line in lineprotocol.parse(body)
    ]


def test_every_panel_of_the_django_app_dashboard_matches_series_the_client_pushes(db, monkeypatch):
    document = spec.validate(json.loads((settings.DASHBOARDS_DIR / "django-app.json").read_text()))
    produced = pushed_series(monkeypatch)
    failed = {"app": "shop", "status": "503", "status_class": "5xx", "view": "fails"}
    assert ("django_requests", failed) in produced

    def with_all(text):
        return VARIABLE.sub(".*", text)

    for variable in document["variables"]:
        selector = selectors.parse(with_all(variable["match"]))
        label = variable["label_of"]
        assert any(selector.matches(name, labels) and label in labels for name, labels in produced)
    for panel in document["panels"]:
        for text in panel["series"]:
            selector = selectors.parse(with_all(text))
            assert any(selector.matches(name, labels) for name, labels in produced), (panel["title"], text)

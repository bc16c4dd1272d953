from django.urls import path

from dashboard import views
from dashboard.stream import history
from dashboard.stream import views as sse

urlpatterns = [
    # Every metric, in display order: the page / was before dashboards, kept for what no
    # dashboard shows (custom metrics, livedash itself) and for the time-window form.
    path("all/", views.index, name="all-metrics"),
    path("preferences/theme/", views.set_theme, name="set-theme"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("events/", sse.events, name="events"),
    path("api/metrics/history/", history.metrics_history, name="metrics-history"),
]

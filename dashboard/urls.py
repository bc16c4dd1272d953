from django.urls import path

from dashboard import views
from dashboard.stream import history
from dashboard.stream import views as sse

urlpatterns = [
    path("preferences/theme/", views.set_theme, name="set-theme"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("events/", sse.events, name="events"),
    path("api/metrics/history/", history.metrics_history, name="metrics-history"),
]

from django.urls import path

from accounts import views

urlpatterns = [
    path("sessions/", views.sessions, name="account-sessions"),
    path("sessions/<int:session_id>/end/", views.end_session, name="account-end-session"),
    path("sessions/end-others/", views.end_other_sessions, name="account-end-other-sessions"),
]

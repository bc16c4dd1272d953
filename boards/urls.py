from django.urls import path

from boards import playlist_views, views

urlpatterns = [
    path("", views.home, name="dashboard"),
    path("dashboards/", views.dashboard_list, name="dashboards"),
    path("dashboards/new/", views.dashboard_new, name="dashboard-new"),
    path("d/<str:uid>/", views.dashboard_page, name="board"),
    path("s/<str:token>/", views.share_page, name="share"),
    path("s/<str:token>/state/", views.share_state, name="share-state"),
    path("playlists/<str:uid>/", playlist_views.playlist_page, name="playlist"),
]

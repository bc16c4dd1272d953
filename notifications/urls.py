from django.urls import path

from notifications import views

urlpatterns = [
    path("channels/", views.my_channels, name="my-channels"),
    path("channels/<int:channel_id>/", views.update_channel, name="update-channel"),
    path("channels/<int:channel_id>/test/", views.test_channel, name="test-channel"),
]

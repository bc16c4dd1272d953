"""The SSE channels and django-eventstream's channel manager, which asks dashboard.access."""

import pytest
from django.contrib.auth.models import AnonymousUser

from dashboard.stream.channel_manager import DashboardChannelManager
from dashboard.stream.channels import channel_exists, user_channel


@pytest.mark.parametrize("channel", ["metrics", "user-1", "user-123456789012345678"])
def test_these_channels_exist(channel):
    assert channel_exists(channel)


@pytest.mark.parametrize(
    "channel",
    ["", "metric", "user-", "user-0", "user-01", "user-1\n", "user-١", "user-1234567890123456789", "x"],
)
def test_nothing_else_exists(channel):
    assert not channel_exists(channel)


def test_metrics_is_for_those_with_view_permission(alice, charlie, admin_user):
    manager = DashboardChannelManager()
    assert manager.can_read_channel(alice, "metrics")
    assert manager.can_read_channel(admin_user, "metrics")
    assert not manager.can_read_channel(charlie, "metrics")
    assert not manager.can_read_channel(AnonymousUser(), "metrics")
    assert not manager.can_read_channel(None, "metrics")


def test_a_user_channel_is_its_user_s_alone(alice, bob, charlie):
    manager = DashboardChannelManager()
    assert manager.can_read_channel(charlie, user_channel(charlie.pk))
    assert not manager.can_read_channel(bob, user_channel(alice.pk))


def test_an_inactive_user_reads_nothing(alice):
    alice.is_active = False
    manager = DashboardChannelManager()
    assert not manager.can_read_channel(alice, "metrics")
    assert not manager.can_read_channel(alice, user_channel(alice.pk))

"""Who may read which SSE channel.

`metrics` needs the `dashboard.view_metric` permission (or superuser);
`user-<id>` is readable by that user alone; nothing else exists.
"""

import re

from django_eventstream.channelmanager import DefaultChannelManager

METRICS_CHANNEL = "metrics"
# Matched whole (fullmatch) and ASCII only: `\d` takes Unicode digits, `$` a trailing
# newline, and leading zeros would give one user many names, each its own keys.
USER_CHANNEL = re.compile(r"user-([1-9][0-9]{0,17})")
VIEW_PERMISSION = "dashboard.view_metric"
CONTROL_PERMISSION = "dashboard.change_metric"


def can_view_metrics(user):
    """The `metrics` stream, its history and `snapshot` all ask this one question."""
    return user.is_superuser or user.has_perm(VIEW_PERMISSION)


def can_control_sampling(user):
    """`set_interval`, `pause` and `resume`, and the controls on the page."""
    return user.is_superuser or user.has_perm(CONTROL_PERMISSION)


def user_channel(user_id):
    return f"user-{user_id}"


def channel_exists(channel):
    return channel == METRICS_CHANNEL or bool(USER_CHANNEL.fullmatch(channel))


class DashboardChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        if channel == METRICS_CHANNEL:
            return can_view_metrics(user)
        match = USER_CHANNEL.fullmatch(channel)
        return bool(match) and int(match.group(1)) == user.pk

    def is_channel_reliable(self, channel):
        return True

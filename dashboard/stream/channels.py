"""The SSE channels that exist, and django-eventstream's channel manager.

`metrics` carries the collector's frames and published metric values;
`user-<id>` is one user's own channel (django-eventstream's GRIP instructions use
it to close that user's streams). Nothing else exists. Who may read which is
decided in `dashboard.access`.
"""

import re

from django_eventstream.channelmanager import DefaultChannelManager

METRICS_CHANNEL = "metrics"
# Matched whole (fullmatch) and ASCII only: `\d` takes Unicode digits, `$` a trailing
# newline, and leading zeros would give one user many names, each its own keys.
USER_CHANNEL = re.compile(r"user-([1-9][0-9]{0,17})")


def user_channel(user_id):
    return f"user-{user_id}"


def channel_exists(channel):
    return channel == METRICS_CHANNEL or bool(USER_CHANNEL.fullmatch(channel))


class DashboardChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        from dashboard import access  # access imports the channel names above

        return access.may_read(user, channel)

    def is_channel_reliable(self, channel):
        return True

"""The SSE channels that exist, and django-eventstream's channel manager.

`metrics` carries the collector's frames and published metric values;
`user-<id>` is one user's own channel (django-eventstream's GRIP instructions use
it to close that user's streams). Nothing else exists. Who may read which is
decided in `dashboard.access`.
"""

import re

from django_eventstream.channelmanager import DefaultChannelManager

METRICS_CHANNEL = "metrics"
USER_CHANNEL = re.compile(r"^user-(\d{1,18})$")


def channel_exists(channel):
    return channel == METRICS_CHANNEL or bool(USER_CHANNEL.match(channel))


class DashboardChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        from dashboard import access  # access imports the channel names above

        return access.may_read(user, channel)

    def is_channel_reliable(self, channel):
        return True

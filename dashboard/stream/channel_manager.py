"""django-eventstream's channel manager (EVENTSTREAM_CHANNELMANAGER_CLASS): which
channels a user may read is `dashboard.access`'s answer, and every channel is
reliable (its events are stored, so a reconnect resumes by id)."""

from django_eventstream.channelmanager import DefaultChannelManager

from dashboard import access


class DashboardChannelManager(DefaultChannelManager):
    def can_read_channel(self, user, channel):
        return access.may_read(user, channel)

    def is_channel_reliable(self, channel):
        return True

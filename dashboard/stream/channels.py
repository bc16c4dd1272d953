"""The SSE channels that exist.

`metrics` carries the collector's frames and published metric values;
`user-<id>` is one user's own channel (django-eventstream's GRIP instructions use
it to close that user's streams). Nothing else exists. Who may read which is
decided in `dashboard.access`; django-eventstream asks it through
`dashboard.stream.channel_manager`.
"""

import re

METRICS_CHANNEL = "metrics"
# Matched whole (fullmatch) and ASCII only: `\d` takes Unicode digits, `$` a trailing
# newline, and leading zeros would give one user many names, each its own keys.
USER_CHANNEL = re.compile(r"user-([1-9][0-9]{0,17})")


def user_channel(user_id):
    return f"user-{user_id}"


def channel_exists(channel):
    return channel == METRICS_CHANNEL or bool(USER_CHANNEL.fullmatch(channel))

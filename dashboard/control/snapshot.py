"""The answer to the `snapshot` command: the latest value of every metric, from storage."""

import json

from dashboard import frames
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.channels import METRICS_CHANNEL

# How far back `snapshot` looks in the metrics stream for the latest frame.
SNAPSHOT_LOOKBACK = 64


async def latest_values():
    """The latest value of every metric and the newest ts, from the `metrics` storage."""
    stored = await DashboardRedisStorage().alatest_events(METRICS_CHANNEL, SNAPSHOT_LOOKBACK)
    return frames.latest_values((event.type, json.loads(event.data)) for event in stored)

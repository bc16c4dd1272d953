"""The values published since the last tick, for the alert evaluator.

The collector's own frame comes to the evaluator directly; everything else (the
API, `publish_metric`, agents) arrives as `metric` events on the `metrics`
channel. `MetricEventFeed()` returns the points of those events stored since its
last call, read from the event store where the live stream reads them, so alerts
need no second copy of the data. Other collectors' frames are left to their own
evaluators.
"""

import json
import logging

from django_eventstream.storage import EventDoesNotExist

from dashboard import frames
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.channels import METRICS_CHANNEL

logger = logging.getLogger(__name__)

# Events read per call at most: a burst larger than this is caught up over the next ticks.
MAX_EVENTS_PER_TICK = 50_000
READ_CHUNK = 5_000


class MetricEventFeed:
    def __init__(self, storage=None, max_events=MAX_EVENTS_PER_TICK):
        self.storage = storage or DashboardRedisStorage()
        self.max_events = max_events
        # None until the first call: alerts start from what is published from then on.
        self.last_id = None

    def __call__(self):
        if self.last_id is None:
            self.last_id = self.storage.get_current_id(METRICS_CHANNEL)
            return []
        points, read = [], 0
        while read < self.max_events:
            try:
                events = self.storage.get_events(METRICS_CHANNEL, self.last_id, limit=READ_CHUNK)
            except EventDoesNotExist as exc:
                # Retention (or a Redis restart) dropped what we had not read: carry on
                # from now; the series' states hold until their next values.
                logger.warning("alerts skipped values no longer stored: %s", exc)
                self.last_id = exc.current_id
                return points
            if not events:
                break
            for event in events:
                self.last_id = event.id
                if event.type != frames.METRIC:
                    continue
                try:
                    data = json.loads(event.data)
                except ValueError:
                    continue
                points.extend(frames.points_of(event.type, data))
            read += len(events)
            if len(events) < READ_CHUNK:
                break
        return points

"""Pushing events to SSE streams, from any process: shell, command, view, worker.

`send` is the one push function: callers decide the channel (Zulip-style), it
serialises the data once, stores it (which gives it its id) and publishes it in
the same atomic step, so every worker's hub receives events in id order.
"""

import json
import logging
import math
import time

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django_eventstream.utils import get_storage

from dashboard import edge_selections, frames, rollups, seriesindex, telemetry
from dashboard.models import Metric
from dashboard.redis import get_sync_client
from dashboard.series import validate_labels, validate_metric_name
from dashboard.storage import rate_key
from dashboard.stream.channels import METRICS_CHANNEL

logger = logging.getLogger(__name__)

# A published `ts` may run this far ahead of the publisher's clock, no further:
# one far-future or far-past point would stretch every chart's time axis.
# (How far back is bounded by what history keeps; see the contract.)
TS_AHEAD_SECONDS = 300
TS_EARLIEST = 946684800  # 2000-01-01: anything earlier is a unit mistake, not a metric
# What the page's stream module listens for: the `metrics` channel's events and
# django-eventstream's own `stream-reset`.
STREAM_EVENT_TYPES = (*frames.EVENT_TYPES, frames.CONFIG, frames.DASHBOARD_CHANGED, "stream-reset")


def send(channel, event_type, data):
    """Store and publish one event on `channel`; returns the stored `Event` (with its id)."""
    payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"), allow_nan=False)
    event = get_storage().append_event(channel, event_type, payload)
    telemetry.count_published(channel)
    if getattr(settings, "GRIP_URL", None):
        _publish_through_grip([event])
    return event


def send_many(channel, event_type, items):
    """`send` for many events of one type at once, pipelined to Redis; returns the `Event`s."""
    payloads = [
        json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":"), allow_nan=False) for data in items
    ]
    events = get_storage().append_events(channel, event_type, payloads)
    telemetry.count_published(channel, len(events))
    if getattr(settings, "GRIP_URL", None) and events:
        _publish_through_grip(events)
    return events


def _publish_through_grip(events):
    """Behind Pushpin the proxy holds the streams: it gets every event with the same id
    sequence, and the streams held on a selection what it wants (dashboard.edge_selections)."""
    from django_eventstream.utils import publish_event

    for event in events:
        publish_event(event.channel, event.type, event.data, str(event.id), str(event.id - 1))
    if events[0].channel != METRICS_CHANNEL:
        return
    selections = edge_selections.registry.active()
    datas = [frames.decode(event.data) for event in events] if selections else ()
    for name, selection in selections:
        wanted = [
            (event, text)
            for event, data in zip(events, datas, strict=True)
            if (text := frames.select_json(event.type, event.data, selection, data)) is not None
        ]
        if not wanted:
            continue
        prev_id = edge_selections.chain(name, wanted[-1][0].id)
        for event, text in wanted:
            publish_event(edge_selections.channel(name), event.type, text, str(event.id), prev_id)
            prev_id = str(event.id)


def events_published_last_second():
    """Events sent by every process during the last whole second (for the collector)."""
    return int(get_sync_client().get(rate_key(time.time() - 1)) or 0)


def validate_number(value, what="metric value"):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be an int or a float, got {type(value).__name__} {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{what} is out of range ({len(str(abs(value)))} digits)") from None
    if not finite:
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def validate_ts(ts):
    """A unix timestamp in seconds, not absurdly early, at most TS_AHEAD_SECONDS ahead, and
    no older than the longest history tier keeps (it could be stored nowhere)."""
    ts = validate_number(ts, "timestamp")
    if ts < TS_EARLIEST:
        raise ValueError(f"timestamp must be unix seconds after 2000-01-01, got {ts!r}")
    now = time.time()
    if ts > now + TS_AHEAD_SECONDS:
        raise ValueError(f"timestamp is more than {TS_AHEAD_SECONDS} s in the future, got {ts!r}")
    kept = rollups.longest_retention()
    if ts < now - kept:
        raise ValueError(f"timestamp is older than the history keeps ({kept / 86400:g} days), got {ts!r}")
    return ts


def metric_data(name, value, ts=None, labels=None):
    """The `metric` event data for one value, validated; raises `ValueError` naming the problem."""
    return _metric_data(name, value, ts, validate_labels(labels))


def _metric_data(name, value, ts, checked_labels):
    name = validate_metric_name(name)
    value = validate_number(value)
    ts = time.time() if ts is None else validate_ts(ts)
    return frames.metric(name, value, ts, checked_labels)


def _admit(points):
    """Record the points' series in the series index, or refuse them all (`TooManySeries`)."""
    try:
        seriesindex.admit(points)
    except seriesindex.TooManySeries as exc:
        telemetry.count_series_refused(exc.limit, exc.points)
        raise


@telemetry.counted_ingest
def publish_metric(name, value, ts=None, labels=None):
    """Publish one value of a custom metric to every dashboard.

    `labels` ({name: text}) make it one series of the metric (see dashboard.series).
    Raises `ValueError` naming the problem on a bad name, labels, value or timestamp
    (one older than the history keeps or more than 5 minutes ahead), or on a point
    that would start a series past `MAX_SERIES` or `MAX_SERIES_PER_METRIC`
    (`TooManySeries`), and then publishes nothing. The metric (its name, whatever its labels) is registered
    (source=custom) on its first publish; the event goes out once that registration
    is committed.
    """
    data = metric_data(name, value, ts, labels)
    _admit(frames.points_of(frames.METRIC, data))
    with transaction.atomic():
        Metric.objects.get_or_create(key=data["name"], defaults={"source": Metric.Source.CUSTOM})
        transaction.on_commit(lambda: send(METRICS_CHANNEL, frames.METRIC, data))
    return data


# Names publish_metrics found or registered lately, per process (name -> monotonic
# time). A metric deleted in the admin is registered again by the first batch
# after this long.
REGISTERED_SECONDS = 60.0
_registered = {}


def forget_registered_names():
    """This process's remembered metric names are stale (the tests' databases start empty)."""
    _registered.clear()


# Label sets this process validated lately ({(name, value) pairs: the checked dict,
# shared by every point carrying them, never changed}): a fleet pushes the same label
# sets batch after batch. Bounded: past LABEL_SETS_KEPT it starts afresh.
_checked_label_sets = {}
LABEL_SETS_KEPT = 50_000


def _checked_labels(labels):
    if not isinstance(labels, dict):
        return validate_labels(labels)
    try:
        found = _checked_label_sets.get(items := tuple(labels.items()))
    except TypeError:  # an unhashable value: validate_labels says what is wrong with it
        return validate_labels(labels)
    if found is None:
        found = validate_labels(labels)
        if len(_checked_label_sets) >= LABEL_SETS_KEPT:
            _checked_label_sets.clear()
        _checked_label_sets[items] = found
    return found


def validate_metrics(points):
    """`metric_data` for each `(name, value, ts)` or `(name, value, ts, labels)`; on the
    first bad one raises `ValueError("point N: ...")`, N counted from 0."""
    batch = []
    checked_labels, checked = None, None
    for index, point in enumerate(points):
        try:
            name, value, ts, *rest = point
            labels = rest[0] if rest else None
            if labels is None or labels is not checked_labels:
                # The points of one line protocol line share their tags: checked once.
                checked_labels, checked = labels, _checked_labels(labels)
            batch.append(_metric_data(name, value, ts, checked))
        except ValueError as exc:
            raise ValueError(f"point {index}: {exc}") from None
    return batch


@telemetry.counted_ingest
def publish_metrics(points):
    """Publish many values as `publish_metric` does each, all or nothing: `points` are
    `(name, value, ts)` or `(name, value, ts, labels)`.

    Every point is validated before anything happens (see `validate_metrics`);
    new names are registered in one transaction, and the events go out once it
    commits, in order. Returns the published event data."""
    return _publish_batch(validate_metrics(points))


@telemetry.counted_ingest
def publish_validated(batch):
    """`publish_metrics` for what `validate_metrics` returned: for a caller that had to
    validate first (the HTTP API checks a token's names and rate after validating, before
    publishing), so no point is validated twice."""
    return _publish_batch(batch)


def _publish_batch(batch):
    # Before anything is stored: a batch past a cardinality limit is refused whole.
    _admit(point for data in batch for point in frames.points_of(frames.METRIC, data))
    names = {data["name"] for data in batch}
    now = time.monotonic()
    if not connection.in_atomic_block and all(
        now - _registered.get(name, -REGISTERED_SECONDS) < REGISTERED_SECONDS for name in names
    ):
        # Every name was registered moments ago: no database round trip (a steady
        # ingest would otherwise open a connection per request just to find them).
        send_many(METRICS_CHANNEL, frames.METRIC, batch)
        return batch
    with transaction.atomic():
        known = set(Metric.objects.filter(key__in=names).values_list("key", flat=True))
        Metric.objects.bulk_create(
            [Metric(key=name, source=Metric.Source.CUSTOM) for name in sorted(names - known)],
            ignore_conflicts=True,
        )
        transaction.on_commit(lambda: send_many(METRICS_CHANNEL, frames.METRIC, batch))
    if not connection.in_atomic_block:  # committed, not waiting on a caller's transaction
        _registered.update(dict.fromkeys(names, now))
    return batch


def publish_frame(seq, ts, values, firing=(), host=None):
    """Publish one collector tick: `values` maps metric names to numbers, each the
    series `name{host="..."}` of `host` (default: the COLLECTOR_HOST setting)."""
    host = settings.COLLECTOR_HOST if host is None else host
    data = frames.frame(seq, ts, values, firing, host)
    # The collector's own few series are never refused: a tick always goes out.
    seriesindex.admit(frames.points_of(frames.FRAME, data), enforce=False)
    return send(METRICS_CHANNEL, frames.FRAME, data)


def publish_config_change(key):
    """Tell open dashboards that metric `key`'s definition changed, once committed.
    A push that fails (Redis away) is logged, not raised: the change is saved either
    way, and pages see it on their next history load."""

    def push():
        try:
            send(METRICS_CHANNEL, frames.CONFIG, {"key": key})
        except Exception:
            logger.warning("could not tell open dashboards that metric %s changed", key, exc_info=True)

    transaction.on_commit(push)

"""`/api/metrics/history/`: the charts' backfill, from the event store and the rollups.

`?minutes=N` (1 to 43200) is the window ending now; `?start=&end=` (unix seconds) a
sub-range, for zooming; `&match=SELECTOR` (repeatable) keeps the series any of them
matches. The answer holds `step` (0 for raw values) and `series`:
`{series id: [[ts, avg, min, max], ...]}` (an unlabelled metric's id is its name), at
most `MAX_POINTS` per series:

- raw values from the event store when the window holds at most MAX_POINTS values
  of every metric (and the store still has all of it, within RAW_SCAN_LIMIT events:
  with many series pushing, even a short window holds more, and buckets answer);
- otherwise buckets of `step` seconds, each `ts` the bucket's start, from the finest
  rollup tier that can answer within a bounded number of rows (ROWS_PER_SERIES),
  grouped up to a multiple of the tier's step when it would give more than about
  TARGET_POINTS.

Both end exactly at `last_event_id`: the rollups hold everything up to their cursor,
and the events after it are folded in here, from the event store. The page opens
`/events/?channel=metrics&lastEventId=<last_event_id>` and the stream resumes right
after it, so the seam between history and live has no gap and no duplicate.
"""

import itertools
import json
import math
import operator
import time

from django.db import connection, transaction
from django.http import JsonResponse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET
from django_eventstream.utils import make_id

from alerts.models import AlertRule
from api.auth import ApiError, authenticate, error_response
from boards import sharing
from dashboard import access, frames, rollups, selectors
from dashboard.access import VIEW_PERMISSION
from dashboard.models import Metric, MetricRollup
from dashboard.storage import DashboardRedisStorage, retention_seconds
from dashboard.stream.channels import METRICS_CHANNEL

DEFAULT_WINDOW = 15
MAX_WINDOW = 30 * 24 * 60
MIN_RANGE_SECONDS = 10
MAX_POINTS = 1000
# Buckets aim at about this many points: as many as a chart is wide, and 20 metrics'
# answer stays a few hundred kilobytes. Figures: docs/performance.md.
TARGET_POINTS = 500
# Rows read per series at most when choosing a tier: a 30-day window is not summed
# from 10-second buckets. Performance figures: docs/performance.md.
ROWS_PER_SERIES = 5000
# Events read from the store for a raw answer at most; past it the rollups answer.
RAW_SCAN_LIMIT = 20000
# Events published after the rollups' cursor folded in at most (the writer is
# normally a couple of seconds behind; far more means it is away).
GAP_LIMIT = 20000


class Window:
    """The time range asked for: [start, end], end None for "up to now"."""

    def __init__(self, start, end, minutes=None):
        self.start, self.end, self.minutes = start, end, minutes

    @property
    def seconds(self):
        return (self.end if self.end is not None else time.time()) - self.start

    def holds(self, ts):
        return ts >= self.start and (self.end is None or ts <= self.end)


def _number(raw, name):
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name} must be unix seconds, got {str(raw)[:20]!r}")
    return value


def parse_window(params, now=None):
    now = time.time() if now is None else now
    raw_minutes, raw_start, raw_end = params.get("minutes"), params.get("start"), params.get("end")
    if raw_start is not None or raw_end is not None:
        if raw_minutes:
            raise ValueError("give either minutes or start and end, not both")
        start, end = _number(raw_start, "start"), _number(raw_end, "end")
        if not MIN_RANGE_SECONDS <= end - start <= MAX_WINDOW * 60:
            span = f"{MIN_RANGE_SECONDS} s to {MAX_WINDOW} minutes"
            raise ValueError(f"end must be {span} after start, got {end - start:g} s")
        return Window(start, end)
    if raw_minutes is None or raw_minutes == "":
        minutes = DEFAULT_WINDOW
    elif not raw_minutes.isdigit() or not 1 <= int(raw_minutes) <= MAX_WINDOW:
        raise ValueError(f"minutes must be a whole number from 1 to {MAX_WINDOW}, got {raw_minutes[:20]!r}")
    else:
        minutes = int(raw_minutes)
    return Window(now - minutes * 60, None, minutes)


def metric_definitions(link_scope=None):
    # Enabled alert rules, drawn on their metric's chart as a line at the threshold.
    rules = {}
    for rule in AlertRule.objects.filter(enabled=True).values(
        "metric_id", "threshold", "comparison", "level"
    ):
        rules.setdefault(rule.pop("metric_id"), []).append(rule)
    return [
        {
            "key": m.key,
            # Built-in labels are in the catalogue; an admin's own label passes through unchanged.
            "label": gettext(m.display_label),
            "unit": m.unit,
            "source": m.source,
            "warning": m.warning_threshold,
            "critical": m.critical_threshold,
            "order": m.display_order,
            "rules": rules.get(m.pk, []),
        }
        for m in Metric.objects.filter(enabled=True)
        # A share link's viewer learns of the metrics its dashboard reads, no other.
        if link_scope is None or sharing.names_reached(link_scope, m.key)
    ]


class Walk:
    """Events read backwards from `last_id`: newest first, stopping at `floor_id`, at a
    frame older than `since_ts` (frames come in time order; a late custom value does
    not end the walk), at an event the store no longer has, or after `limit` events.
    `reached_start` says whether it met a frame older than the window."""

    def __init__(self, storage, last_id, since_ts, floor_id=0, limit=RAW_SCAN_LIMIT):
        self.events, self.reached_start, self.oldest_ts = [], False, None
        for event in storage.read_back(METRICS_CHANNEL, last_id, floor_id):
            data = json.loads(event.data)
            ts = data.get("ts") if isinstance(data, dict) else None
            if event.type == "frame" and isinstance(ts, int | float) and ts < since_ts:
                self.reached_start = True
                return
            if len(self.events) >= limit:
                return
            self.events.append((event.type, data))
            if isinstance(ts, int | float):
                self.oldest_ts = ts if self.oldest_ts is None else min(self.oldest_ts, ts)


def raw_series(walk, window, selection=None):
    """{series id: [[ts, v, v, v], ...]} in time order (of the series `selection` wants,
    when given), or None when a series has more than MAX_POINTS values in the window."""
    series = {}
    for event_type, data in reversed(walk.events):
        for key, name, labels, ts, value in frames.points_of(event_type, data):
            if window.holds(ts) and (selection is None or selection.wants(key, name, labels)):
                points = series.setdefault(key, [])
                if len(points) >= MAX_POINTS:
                    return None
                points.append([ts, value, value, value])
    for points in series.values():
        points.sort(key=lambda point: point[0])
    return series


def too_many_to_walk(storage, last_id, window):
    """Whether the store holds more than RAW_SCAN_LIMIT events since the window's start,
    so a walk for raw values would stop at its limit short of the start (and cost that
    many reads and decodes for nothing). Told by one event: the first the walk would
    not read, when its `ts` is at or after the window's start. A value published with a `ts` far
    from when it was published can make it say yes wrongly; the answer is then
    buckets, which is never wrong."""
    probe = last_id - RAW_SCAN_LIMIT
    if probe < 1:
        return False
    event = next(storage.read_back(METRICS_CHANNEL, probe, probe - 1), None)
    if event is None:  # expired: the store is shorter than the limit
        return False
    try:
        ts = json.loads(event.data).get("ts")
    except (ValueError, AttributeError):
        return False
    return isinstance(ts, int | float) and ts >= window.start


def raw_is_whole(walk, window):
    """Raw answers only when the store holds the whole window: after a Redis flush the
    rollups still know older values of it, and then they answer instead."""
    if walk.reached_start:
        return True
    finest = rollups.tiers()[0][0]
    oldest = walk.oldest_ts if walk.oldest_ts is not None else time.time()
    # Buckets wholly between the window's start and the oldest value the store has.
    missing = MetricRollup.objects.filter(
        tier=finest,
        bucket__gte=rollups.bucket_of(window.start, finest) + finest,
        bucket__lt=rollups.bucket_of(oldest, finest),
    )
    return not missing.exists()


def choose_step(window, now=None):
    """(tier step, point step) for a bucketed answer: the finest tier that keeps the
    window's start and whose rows for it stay within ROWS_PER_SERIES per series (else
    the coarsest that keeps it), grouped to a multiple of its step that gives at most
    TARGET_POINTS buckets (two of them partial, at the ends)."""
    now = time.time() if now is None else now
    seconds = max(window.seconds, 1)
    tiers = rollups.tiers()
    keeping = [(step, kept) for step, kept in tiers if kept >= now - window.start] or tiers[-1:]
    fitting = [step for step, _ in keeping if seconds / step <= ROWS_PER_SERIES]
    step = fitting[0] if fitting else keeping[-1][0]
    group = step * max(1, math.ceil(seconds / ((TARGET_POINTS - 2) * step)))
    return step, group


def read_rollups(step, group, window, selection=None):
    """(rollup cursor, rows, {storage key: series id}) read from one snapshot, so the rows
    hold exactly the events up to the cursor (the writer commits both together). Rows
    are `rollups.grouped_rows`' (by storage key, in bucket order), only of the series
    `selection` wants when given."""
    lower = rollups.bucket_of(window.start, group)
    upper = None if window.end is None else rollups.bucket_of(window.end, step) + step
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # Read committed would let a commit land between the two reads.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor_id = rollups.cursor_id()
        keys = None if selection is None else rollups.matching_keys(selection)
        rows = rollups.grouped_rows(step, group, lower, upper, keys)
        ids = rollups.series_ids({row[0] for row in rows})
    return cursor_id, rows, ids


def bucket_point(bucket, count, total, low, high):
    """A bucket as the answer gives it: its average to 6 significant digits (the chart
    cannot show more, the answer is smaller), its lowest and highest value."""
    return [bucket, float(f"{total / count:.6g}"), low, high]


def merged(row, cell):
    """A rollup row with the store's cell of the same series and bucket folded in."""
    if cell is None:
        return row
    key, bucket, count, total, low, high = row
    return key, bucket, count + cell[0], total + cell[1], min(low, cell[2]), max(high, cell[3])


def bucketed_series(storage, window, selection=None):
    """(last event id, step, series, values in each series' last bucket, values per series)."""
    step, group = choose_step(window)
    cursor_id, rows, ids = read_rollups(step, group, window, selection)
    # Fixed after the rollups are read, so it is never behind their cursor: everything
    # up to it is in this answer, everything after it comes from the stream.
    last_id = storage.get_current_id(METRICS_CHANNEL)
    # What the writer has not written yet comes from the event store: a few seconds of
    # values, folded into the rows' buckets as the rows go by (the rows, up to a hundred
    # thousand, are already one per series and bucket: they are not folded again).
    lower = rollups.bucket_of(window.start, group)
    recent = rollups.Buckets(group)
    gap = Walk(storage, last_id, lower, floor_id=cursor_id or 0, limit=GAP_LIMIT)
    for event_type, data in gap.events:
        for key, name, labels, ts, value in frames.points_of(event_type, data):
            in_window = ts >= lower and (window.end is None or ts <= window.end)
            if in_window and (selection is None or selection.wants(key, name, labels)):
                recent.add(key, ts, value)
    pending = recent.cells
    series, last_buckets, totals = {}, {}, {}

    def put(series_id, bucket, count, total, low, high):
        series.setdefault(series_id, []).append(bucket_point(bucket, count, total, low, high))
        totals[series_id] = totals.get(series_id, 0) + count
        if series_id not in last_buckets or bucket > last_buckets[series_id][0]:
            last_buckets[series_id] = (bucket, count)

    # The store holds the newest buckets: rows older than its oldest pass as they are.
    oldest_pending = min((bucket for _, bucket in pending), default=math.inf)
    for key, run in itertools.groupby(rows, key=operator.itemgetter(0)):
        series_id = ids.get(key)
        if series_id is None:
            continue  # its Series row pruned meanwhile: no name to answer under
        run = [
            row if row[1] < oldest_pending else merged(row, pending.pop((series_id, row[1]), None))
            for row in run
        ]
        # One list per series, built in one pass: this loop meets every row of the answer.
        series[series_id] = [bucket_point(*row[1:]) for row in run]
        totals[series_id] = sum(row[2] for row in run)
        last_buckets[series_id] = (run[-1][1], run[-1][2])
    # Buckets only the event store has: normally the newest of each series.
    unordered = set()
    for (series_id, bucket), cell in sorted(pending.items()):
        points = series.get(series_id)
        if points and points[-1][0] > bucket:
            unordered.add(series_id)
        put(series_id, bucket, *cell)
    for series_id in unordered:
        series[series_id].sort(key=lambda point: point[0])
    last_counts = {series_id: count for series_id, (_, count) in last_buckets.items()}
    return last_id, group, series, last_counts, totals


def shared_history_selection(request, window):
    """(the selection a share link's viewer reads, refusal): the link's scope narrowed
    by `match`, within the last 30 days; refusals are 403 for what lies outside it."""
    link = sharing.resolve(request.GET.get("share"))
    if link is None:
        return None, JsonResponse(
            {"error": "This share link is not valid: revoked, expired or unknown"}, status=403
        )
    if window.start < time.time() - MAX_WINDOW * 60 - MIN_RANGE_SECONDS:
        return None, JsonResponse({"error": "A share link reads at most the last 30 days"}, status=403)
    matches = request.GET.getlist("match")
    asked = selectors.selection(matches) if matches else None
    try:
        return (link, sharing.narrowed(link, asked)), None
    except sharing.OutOfScope as exc:
        return None, JsonResponse({"error": f"Outside this share link: {exc}"}, status=403)


@require_GET
@never_cache
@gzip_page
def metrics_history(request):
    if "share" in request.GET:
        return _history(request, shared=True)
    if request.headers.get("Authorization"):
        # Another service reading history (the contract: a token with the read scope);
        # its refusals are the API's.
        try:
            authenticate(request, "read")
        except ApiError as error:
            return error_response(error)
    else:
        user = request.user
        if not user.is_authenticated:
            return JsonResponse({"error": "Log in to read metric history"}, status=403)
        if not access.can_view_metrics(user):
            return JsonResponse({"error": f"Permission {VIEW_PERMISSION} required"}, status=403)
    return _history(request)


def _history(request, shared=False):
    link_scope = None
    try:
        window = parse_window(request.GET)
        if shared:
            answer, refusal = shared_history_selection(request, window)
            if refusal is not None:
                return refusal
            link, selection = answer
            link_scope = link.scope
        else:
            matches = request.GET.getlist("match")
            selection = selectors.selection(matches) if matches else None
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    storage = DashboardRedisStorage()
    last_id, step, series, last_counts, totals = bucketed_series(storage, window, selection)
    # The buckets' counts say whether raw values fit (the edge buckets may hold a few
    # values from outside the window: then buckets it is, which is never wrong).
    fits = max(totals.values(), default=0) <= MAX_POINTS
    raw_possible = fits and time.time() - window.start <= retention_seconds()
    if raw_possible and not too_many_to_walk(storage, last_id, window):
        walk = Walk(storage, last_id, window.start)
        raw = raw_series(walk, window, selection)
        if raw is not None and raw_is_whole(walk, window):
            step, series, last_counts = 0, raw, {}
    return JsonResponse(
        {
            "metrics": metric_definitions(link_scope),
            "step": step,
            "series": series,
            # Values in each series' last bucket, so the page folds live values into it exactly.
            "last_counts": last_counts,
            "start": window.start,
            "end": window.end,
            "window": window.minutes,
            "last_event_id": make_id({METRICS_CHANNEL: last_id}),
        },
        # No spaces after separators: fewer bytes of a long answer to encode, gzip and parse.
        json_dumps_params={"separators": (",", ":")},
    )

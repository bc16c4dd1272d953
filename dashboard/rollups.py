"""Long-range history: per-metric rollups in the database, in tiers.

Each tier (`HISTORY_TIERS`, e.g. 10 s kept 7 days, 1 min kept 31 days, 15 min kept
a year) stores, per metric and bucket, the count, sum, min and max of the values
whose `ts` falls in it. Buckets are aligned to the unix epoch, so they are UTC and
DST-free, and a value exactly on a boundary opens the bucket that starts there.
Keeping sums and counts (not averages) makes every merge exact: a late value, a
catch-up after an outage, or grouping ten 10 s buckets into one 100 s point.

Who writes: `RollupWriter`, a thread of the collector process (`collect_metrics`),
reads what was published from the event store after a cursor stored in the same
transaction as the buckets, so a database outage only delays it (nothing lost,
nothing counted twice), and the live path (publishing) never waits for it.
"""

import json
import logging
import math
import time

from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django_eventstream.storage import EventDoesNotExist

from dashboard import frames, selectors, series
from dashboard.background import BackgroundThread
from dashboard.models import MetricRollup, RollupCursor, Series
from dashboard.storage import DashboardRedisStorage
from dashboard.stream.channels import METRICS_CHANNEL

logger = logging.getLogger(__name__)

# Events read from the event store per writer transaction.
READ_LIMIT = 2000
# Rows per INSERT statement (SQLite allows 32766 parameters; 7 per row).
UPSERT_CHUNK = 500


def tiers():
    """(step, retention) in seconds, finest first."""
    return [tuple(tier) for tier in settings.HISTORY_TIERS]


def longest_retention():
    return max(retention for _, retention in tiers())


def bucket_of(ts, step):
    """The start of the `step`-second bucket holding `ts` (unix seconds, UTC)."""
    return math.floor(ts / step) * step


def values_of(event_type, data):
    """(series id, ts, value) for every number one `metrics` event carries."""
    for series_id, _name, _labels, ts, value in frames.points_of(event_type, data):
        yield series_id, ts, value


class Buckets:
    """count/sum/min/max per (series id, bucket start) for one step: the one fold used
    by the writer (per tier) and by the history endpoint (values not yet written)."""

    def __init__(self, step):
        self.step = step
        self.cells = {}

    def add(self, key, ts, value, count=1, total=None, low=None, high=None):
        cell_key = (key, bucket_of(ts, self.step))
        total = value if total is None else total
        low = value if low is None else low
        high = value if high is None else high
        cell = self.cells.get(cell_key)
        if cell is None:
            self.cells[cell_key] = [count, total, low, high]
        else:
            cell[0] += count
            cell[1] += total
            cell[2] = min(cell[2], low)
            cell[3] = max(cell[3], high)

    def add_event(self, event_type, data):
        for key, ts, value in values_of(event_type, data):
            self.add(key, ts, value)

    def rows(self):
        """(key, bucket, count, sum, min, max), ordered by key then bucket."""
        return [(k, b, *cell) for (k, b), cell in sorted(self.cells.items())]


def upsert(step, rows):
    """Merge (key, bucket, count, sum, min, max) rows into tier `step`: an existing
    bucket adds the counts and sums and widens min and max. One statement per chunk,
    on PostgreSQL and SQLite alike (both have INSERT ... ON CONFLICT DO UPDATE; the
    two-argument minimum is LEAST in one and MIN in the other)."""
    if not rows:
        return
    table = connection.ops.quote_name(MetricRollup._meta.db_table)
    q = connection.ops.quote_name
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    columns = ", ".join(q(c) for c in ("key", "tier", "bucket", "count", "sum", "min", "max"))
    merge = (
        f"{q('count')} = {table}.{q('count')} + EXCLUDED.{q('count')}, "
        f"{q('sum')} = {table}.{q('sum')} + EXCLUDED.{q('sum')}, "
        f"{q('min')} = {least}({table}.{q('min')}, EXCLUDED.{q('min')}), "
        f"{q('max')} = {greatest}({table}.{q('max')}, EXCLUDED.{q('max')})"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            params = []
            for key, bucket, count, total, low, high in chunk:
                params += [key, step, int(bucket), count, total, low, high]
            # Only quoted identifiers are formatted in; every value is a parameter.
            sql = f"INSERT INTO {table} ({columns}) VALUES {placeholders} "  # noqa: S608
            sql += f"ON CONFLICT ({q('tier')}, {q('bucket')}, {q('key')}) DO UPDATE SET {merge}"
            cursor.execute(sql, params)


def fold_events(events):
    """Write the values of `events` (`(type, data)` pairs) into every tier, each series
    under its storage key (registered in `Series` first)."""
    folded = []
    for step, _ in tiers():
        buckets = Buckets(step)
        for event_type, data in events:
            buckets.add_event(event_type, data)
        folded.append((step, buckets.rows()))
    # Every tier holds the same series: the finest names them all.
    keys = {series_id: series.storage_key(series_id) for series_id, *_ in folded[0][1]} if folded else {}
    register_series(keys)
    for step, rows in folded:
        upsert(step, [(keys[series_id], *rest) for series_id, *rest in rows])


# Series this process has registered (storage key -> True): the writer meets the same
# few thousand series every round and need not ask the database about them again.
_registered = {}
REGISTERED_KEPT = 100_000


def forget_registered_series():
    """Forget which series this process registered (their rows may be gone: a test's
    database, a prune)."""
    _registered.clear()
    _described.clear()


def register_series(keys):
    """A `Series` row for each of `keys` ({series id: storage key}) that has none."""
    new = {series_id: store for series_id, store in keys.items() if store not in _registered}
    if not new:
        return
    rows = []
    for series_id, store in new.items():
        try:
            name, labels = series.parse_series_id(series_id)
        except ValueError:  # a key of a metric named before today's rules: no labels
            name, labels = series_id[: series.METRIC_NAME_MAX_LENGTH], {}
        rows.append(Series(key=store, series_id=series_id, name=name, labels=labels))
    Series.objects.bulk_create(rows, batch_size=500, ignore_conflicts=True)
    if len(_registered) > REGISTERED_KEPT:
        _registered.clear()
    # Remembered once committed: a rolled-back transaction leaves nothing registered.
    transaction.on_commit(lambda: _registered.update(dict.fromkeys(new.values(), True)))


def series_ids(keys):
    """{storage key: series id} for rollup keys: an unlabelled key is its id, a labelled
    one is looked up in `Series`."""
    ids = {key: key for key in keys if ":" not in key}
    ids.update({key: _described[key][0] for key in keys if key in _described})
    labelled = [key for key in keys if key not in ids]
    for start in range(0, len(labelled), 5000):
        chunk = labelled[start : start + 5000]
        ids.update(Series.objects.filter(key__in=chunk).values_list("key", "series_id"))
    return ids


# What each registered storage key stands for, per process: it never changes (the key
# is derived from the id), so a history query decodes only the series it has not met.
_described = {}


def _narrowed(selection):
    """The `Series` rows that may match `selection`: per selector, those of its metric
    name and, on PostgreSQL, those carrying its exact label values (JSON containment,
    evaluated by the database); every row when a selector says neither. What remains
    is decided by the selection itself."""
    parts = []
    for selector in selection.selectors:
        part = {}
        if selector.metric_name is not None:
            part["name"] = selector.metric_name
        if connection.vendor == "postgresql":
            # `l=""` also matches a series without `l`: only non-empty values narrow.
            exact = {
                m.label: m.value
                for m in selector.matchers
                if m.op == selectors.EQUAL and m.label != selectors.NAME_LABEL and m.value
            }
            if exact:
                part["labels__contains"] = exact
        if not part:
            return Series.objects.all()
        parts.append(models.Q(**part))
    query = parts[0]
    for part in parts[1:]:
        query |= part
    return Series.objects.filter(query)


def matching_keys(selection):
    """Storage keys of every series with history that `selection` wants."""
    keys = list(_narrowed(selection).values_list("key", flat=True))
    unknown = [key for key in keys if key not in _described]
    if len(_described) + len(unknown) > REGISTERED_KEPT:
        _described.clear()
        unknown = keys
    for start in range(0, len(unknown), 5000):
        found = Series.objects.filter(key__in=unknown[start : start + 5000])
        for key, series_id, name, labels in found.values_list("key", "series_id", "name", "labels"):
            _described[key] = (series_id, name, labels)
    return [key for key in keys if key in _described and selection.wants(*_described[key])]


def prune(now=None):
    """Delete the buckets each tier no longer keeps; returns {step: rows deleted}."""
    now = time.time() if now is None else now
    deleted = {}
    for step, retention in tiers():
        cutoff = bucket_of(now - retention, step)
        deleted[step], _ = MetricRollup.objects.filter(tier=step, bucket__lt=cutoff).delete()
    # Tiers no longer configured are dropped whole.
    gone, _ = MetricRollup.objects.exclude(tier__in=[step for step, _ in tiers()]).delete()
    if gone:
        deleted["removed tiers"] = gone
    # Series whose history is all gone (their id would only ever be looked up by a row).
    orphans, _ = Series.objects.exclude(key__in=MetricRollup.objects.values("key")).delete()
    if orphans:
        deleted["series"] = orphans
        forget_registered_series()
    return deleted


# ---- reading the event store ---------------------------------------------------


def read_after(storage, last_id, limit=READ_LIMIT):
    """(events, new last id) after `last_id`; events no longer stored are skipped
    with a warning (the database was away longer than the event store keeps)."""
    try:
        events = storage.get_events(METRICS_CHANNEL, last_id, limit=limit)
    except EventDoesNotExist as exc:
        current_id = exc.current_id
        resume = storage.oldest_kept_id(METRICS_CHANNEL, last_id if last_id <= current_id else 0, current_id)
        if resume is None:
            return [], current_id
        logger.warning(
            "rollups: events %d to %d expired before they were written; resuming at %d",
            last_id + 1,
            resume - 1,
            resume,
        )
        events = storage.get_events(METRICS_CHANNEL, resume - 1, limit=limit)
        if not events:
            return [], resume - 1
    return [(e.type, json.loads(e.data)) for e in events], events[-1].id if events else last_id


def write_pending(storage=None, limit=READ_LIMIT):
    """Fold one batch of events published since the cursor into the rollups and move
    the cursor, in one transaction. Returns how many events it folded.

    The cursor row is locked first, so two collectors never fold the same events."""
    storage = storage or DashboardRedisStorage()
    with transaction.atomic():
        cursor, created = RollupCursor.objects.select_for_update().get_or_create(
            channel=METRICS_CHANNEL, defaults={"last_event_id": 0}
        )
        if created:
            # A new install (or rollups switched on for an existing one): start
            # from the oldest event the store still keeps.
            current = storage.get_current_id(METRICS_CHANNEL)
            first = storage.oldest_kept_id(METRICS_CHANNEL, 0, current)
            cursor.last_event_id = (first - 1) if first is not None else current
        events, last_id = read_after(storage, cursor.last_event_id, limit)
        fold_events(events)
        if last_id != cursor.last_event_id:
            cursor.last_event_id = last_id
            cursor.save(update_fields=["last_event_id", "updated_at"])
    return len(events)


def cursor_id():
    row = RollupCursor.objects.filter(channel=METRICS_CHANNEL).values_list("last_event_id", flat=True)
    return next(iter(row), None)


# ---- the writer thread -----------------------------------------------------------

WRITE_EVERY = 5.0
PRUNE_EVERY = 600.0


class RollupWriter(BackgroundThread):
    """Runs `write_pending` every 5 seconds (so values are in the database
    well within 10 s of being published) and `prune` every few minutes, in a thread
    of its own: a slow or absent database never holds up a collector tick."""

    name = "rollup-writer"

    def __init__(self, every=WRITE_EVERY, prune_every=PRUNE_EVERY, clock=time.monotonic):
        super().__init__()
        self.every = every
        self.prune_every = prune_every
        self.clock = clock
        self.down_since = None
        self._prune_due = 0.0

    def run(self):
        try:
            while not self._stopping.is_set():
                delay = self.every if self.step() else min(self.every * 2, 5.0)
                self._stopping.wait(delay)
            self.step()  # what was published up to the stop
        finally:
            connection.close()

    def step(self):
        """One round: catch up (several batches when behind), prune when due.
        Returns False when the database or Redis failed (the next round retries)."""
        try:
            while write_pending() >= READ_LIMIT:
                pass
            if self.clock() >= self._prune_due:
                self._prune_due = self.clock() + self.prune_every
                deleted = prune()
                if any(deleted.values()):
                    logger.info("rollups: pruned %s", deleted)
        except Exception as exc:  # noqa: BLE001 - the database or Redis away; retried
            self._failed(exc)
            return False
        if connection.vendor == "sqlite":
            # Opening a file costs nothing; a kept one would keep an old WAL snapshot alive.
            connection.close()
        if self.down_since is not None:
            logger.info("rollups: writing again after %.1f s", self.clock() - self.down_since)
            self.down_since = None
        return True

    def _failed(self, exc):
        if self.down_since is None:
            self.down_since = self.clock()
            logger.warning("rollups: cannot write (%s); values wait in the event store", exc)
        if isinstance(exc, DatabaseError):
            # The thread keeps its connection between rounds (a new one every 5 s
            # would be most of its cost); one the server dropped is opened afresh.
            connection.close()


# ---- reading rollups -------------------------------------------------------------


def grouped_rows(step, group, lower, upper=None, keys=None):
    """(key, bucket, count, sum, min, max) of tier `step` grouped into `group`-second
    buckets (a multiple of `step`), for buckets starting in [lower, upper), of the
    storage `keys` only when given; ordered by key, then bucket. Plain SQL rather than
    the ORM: up to 100,000 rows, and the ORM's per-row conversion would be most of the
    answer's time."""
    if keys is not None and not keys:
        return []
    sql, params = grouped_sql(step, group, lower, upper, keys)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def grouped_sql(step, group, lower, upper=None, keys=None):
    q = connection.ops.quote_name
    table = q(MetricRollup._meta.db_table)
    regroup = group != step
    # Integer division on both databases (bigint / integer).
    start = f"({q('bucket')} / %s) * %s" if regroup else q("bucket")
    params = [group, group] if regroup else []
    where = f"{q('tier')} = %s AND {q('bucket')} >= %s"
    params += [step, int(lower)]
    if upper is not None:
        where += f" AND {q('bucket')} < %s"
        params.append(int(upper))
    if keys is not None:
        where += f" AND {q('key')} IN ({', '.join(['%s'] * len(keys))})"
        params += list(keys)
    if regroup:
        columns = f"{start} AS start, SUM({q('count')}), SUM({q('sum')}), MIN({q('min')}), MAX({q('max')})"
        grouping, order = f" GROUP BY {q('key')}, start", "start"
    else:
        # A tier's rows are already one per key and bucket (the unique constraint): the
        # database need not group what it only has to read in order.
        columns = f"{start}, {q('count')}, {q('sum')}, {q('min')}, {q('max')}"
        grouping, order = "", start
    sql = f"SELECT {q('key')}, {columns} FROM {table} WHERE {where}{grouping} ORDER BY {q('key')}, {order}"  # noqa: S608
    return sql, params


def series_since(since):
    """(series id, about when it was last pushed) of every series with a bucket of the
    coarsest tier reaching past `since` (unix seconds): the fewest rows that name every
    series with history since then. For the series index's rebuild."""
    step = tiers()[-1][0]
    last_buckets = dict(
        MetricRollup.objects.filter(tier=step, bucket__gte=bucket_of(since, step))
        .values_list("key")
        .annotate(last=models.Max("bucket"))
    )
    ids = dict(Series.objects.filter(key__in=list(last_buckets)).values_list("key", "series_id"))
    now = time.time()
    for key, bucket in last_buckets.items():
        # An unlabelled series' key is its id; a labelled one is always registered.
        series_id = ids.get(key, key)
        if ":" not in series_id or key in ids:
            yield series_id, min(bucket + step, now)

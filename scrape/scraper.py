"""Scraping: a target's Prometheus text exposition read, parsed and published as series.

`scrape(target)` is one scrape: fetch (bounded in time and size), parse with
prometheus-client's parser, publish every sample through `dashboard.live` as the
series `name{<sample labels>, <target labels>, job, instance}` and then `up`,
`scrape_duration_seconds` and `scrape_samples_scraped` with the target's labels,
and store the outcome on the target (its last error is what the admin shows).

Naming, as Prometheus stores the same exposition (docs/scrape.md):
- every sample is published under its own sample name: a counter `x` as `x_total`,
  a histogram as `x_bucket{le="..."}`, `x_sum` and `x_count`, a summary as
  `x{quantile="..."}`, `x_sum` and `x_count`; values as exposed (counters stay
  cumulative; no rate is taken);
- the `_created` samples of counters, histograms and summaries are not published
  (a creation time is no value to chart);
- `:` (recording rules' names) becomes `_`, as livedash's names are slugs;
- a sample's label that a target sets (`job`, `instance`, the target's own) is kept
  as `exported_<name>`, the target's value wins (Prometheus' `honor_labels: false`);
- a sample that is not a finite number (NaN, +Inf, an empty summary's quantiles)
  is skipped: livedash stores finite numbers only;
- a sample livedash cannot take (a name longer than 64 characters, more than 16
  labels, a label value over 256 characters) is skipped, and the error says so.

The series index's limits apply: when a scrape would start series past
`MAX_SERIES` or `MAX_SERIES_PER_METRIC`, the series that exist already and the new
ones that fit are published, the rest are cut, and the error says how many and which
limit. The target is still `up` then: it answered.

`Scraper` is the collector's thread: it starts due scrapes on a bounded pool and
never waits for one, so no target (slow, hanging, huge) holds up a collector tick
or the other targets beyond the pool's size.
"""

import http.client
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dashboard import live, seriesindex
from dashboard.background import BackgroundThread
from scrape.models import ScrapeTarget

logger = logging.getLogger(__name__)

USER_AGENT = "livedash-scraper"
# The classic text format first; OpenMetrics servers answer it too.
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
READ_CHUNK = 64 * 1024
ERROR_MAX_LENGTH = 2000
# Families whose `_created` samples are creation times, not values.
CREATED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})
CREATED_SUFFIX = "_created"
UP = "up"
DURATION = "scrape_duration_seconds"
SAMPLES = "scrape_samples_scraped"
# How often the scraper thread looks for due targets, and reads the targets again
# (a target added, changed or disabled in the admin applies within that).
POLL_SECONDS = 0.5
RELOAD_SECONDS = 5.0


class ScrapeFailed(Exception):
    """The target could not be read or parsed: `up` is 0, and this is its last error."""


@dataclass
class Outcome:
    up: bool = False
    published: int = 0
    duration: float = 0.0
    problems: list = field(default_factory=list)

    @property
    def error(self):
        return "; ".join(self.problems)[:ERROR_MAX_LENGTH]


# No proxy from the environment: a target is reached the way its URL says.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, token="", timeout=10.0, max_bytes=10 * 1024 * 1024, clock=time.monotonic):
    """The exposition at `url` as text; `ScrapeFailed` saying why it could not be had.
    Neither a slow server nor a large body can hold a scrape past `timeout` or `max_bytes`."""
    headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http(s) only, checked by the model)
    deadline = clock() + timeout
    chunks, size = [], 0
    try:
        with _opener.open(request, timeout=timeout) as response:
            while True:
                if clock() > deadline:
                    raise ScrapeFailed(f"timed out after {timeout:g} s")
                chunk = response.read1(READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise ScrapeFailed(
                        f"the exposition is larger than {max_bytes} bytes (SCRAPE_MAX_BODY_BYTES)"
                    )
                chunks.append(chunk)
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise ScrapeFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise ScrapeFailed(f"timed out after {timeout:g} s") from None
        raise ScrapeFailed(f"cannot connect: {reason}") from None
    except TimeoutError:
        raise ScrapeFailed(f"timed out after {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ScrapeFailed(f"connection failed: {exc or type(exc).__name__}") from None
    try:
        return b"".join(chunks).decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise ScrapeFailed(f"the exposition is not text in {charset}") from None


def samples_of(text):
    """Every sample of the exposition but the `_created` ones; `ScrapeFailed` when it is
    not a Prometheus text exposition (nothing of it is published then)."""
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises several kinds on hostile text
        raise ScrapeFailed(f"not a Prometheus text exposition: {exc}"[:500]) from None
    # The classic text format has no `_created` of its own: the parser makes it a family
    # apart, so it is recognised by the name of the counter (histogram, summary) it follows.
    counted = {family.name for family in families if family.type in CREATED_TYPES}
    return [
        sample
        for family in families
        for sample in family.samples
        if not (sample.name.endswith(CREATED_SUFFIX) and sample.name[: -len(CREATED_SUFFIX)] in counted)
    ]


def series_name(sample_name):
    return sample_name.replace(":", "_")


def points_of(samples, target_labels, ts):
    """(the `metric` event data of each publishable sample, the problems of the others)."""
    batch = []
    skipped = Counter()
    examples = {}
    for sample in samples:
        value = sample.value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue  # NaN and infinities: nothing livedash can store (see the module docstring)
        labels = dict(sample.labels)
        for label in target_labels:
            if label in labels:
                labels[f"exported_{label}"] = labels.pop(label)
        labels.update(target_labels)
        try:
            batch.append(live.metric_data(series_name(sample.name), value, ts, labels))
        except ValueError as exc:
            reason = str(exc)
            skipped[reason] += 1
            examples.setdefault(reason, sample.name)
    problems = [
        f"skipped {count} sample(s): {reason} (first: {examples[reason][:80]})"
        for reason, count in skipped.most_common(3)
    ]
    if len(skipped) > 3:
        problems.append(f"skipped {sum(skipped.values()) - sum(c for _, c in skipped.most_common(3))} more")
    return batch, problems


def publish_within_limits(batch):
    """Publish `batch` (validated `metric` data) through the normal path; when it would
    pass a series limit, publish what fits: the series that exist, then new ones while
    the limits leave room. Returns (points published, the cut's problem or None)."""
    if not batch:
        return 0, None
    try:
        live.publish_validated(batch)
        return len(batch), None
    except seriesindex.TooManySeries as exc:
        refusal = str(exc)
    ids = list(dict.fromkeys(data["series"] for data in batch))
    existing = seriesindex.live_ids(ids)
    new = [series_id for series_id in ids if series_id not in existing]
    names = {data["series"]: data["name"] for data in batch}
    free, free_by_name = seriesindex.room(names[series_id] for series_id in new)
    taken = set(existing)
    for series_id in new:
        name = names[series_id]
        if free > 0 and free_by_name[name] > 0:
            free -= 1
            free_by_name[name] -= 1
            taken.add(series_id)
    kept = [data for data in batch if data["series"] in taken]
    try:
        live.publish_validated(kept)
    except seriesindex.TooManySeries:
        # Another publisher took the room meanwhile: the existing series at least.
        taken = set(existing)
        kept = [data for data in batch if data["series"] in taken]
        live.publish_validated(kept)
    cut = len(ids) - len(taken)
    return len(kept), f"cut: {cut} of {len(ids)} series not published, {refusal}"


def scrape(target, now=time.time, clock=time.perf_counter):
    """Scrape `target` once, publish what it exposes and its `up`, store the outcome on
    it; returns the `Outcome`."""
    outcome = Outcome()
    started, ts = clock(), now()
    labels = target.series_labels()
    timeout = min(float(target.interval), float(settings.SCRAPE_TIMEOUT_SECONDS))
    try:
        text = fetch(target.url, _token(target), timeout, settings.SCRAPE_MAX_BODY_BYTES)
        batch, problems = points_of(samples_of(text), labels, ts)
        outcome.up = True
        outcome.problems += problems
        outcome.published, cut = publish_within_limits(batch)
        if cut:
            outcome.problems.append(cut)
    except ScrapeFailed as exc:
        outcome.problems.insert(0, str(exc))
    except Exception as exc:  # Redis or the database away while publishing
        logger.warning("scrape of %s: could not publish: %s", target, exc)
        outcome.problems.append(f"could not publish: {exc}")
    outcome.duration = clock() - started
    try:
        live.publish_metrics(
            [
                (UP, 1 if outcome.up else 0, ts, labels),
                (DURATION, round(outcome.duration, 6), ts, labels),
                (SAMPLES, outcome.published, ts, labels),
            ]
        )
    except Exception as exc:
        outcome.problems.append(f"up not published: {exc}")
    record(target, outcome)
    return outcome


def _token(target):
    try:
        return target.bearer_token()
    except ValueError as exc:
        raise ScrapeFailed(str(exc)) from None


def record(target, outcome):
    """The outcome on the target's row, by update: runtime state, not an audited change."""
    ScrapeTarget.objects.filter(pk=target.pk).update(
        last_scrape_at=timezone.now(),
        last_up=outcome.up,
        last_duration_seconds=round(outcome.duration, 6),
        last_samples=outcome.published,
        last_error=outcome.error,
    )


class Scraper(BackgroundThread):
    """The collector's scraping thread: reads the enabled targets every RELOAD_SECONDS,
    starts each due target's scrape on a pool of `concurrency` threads, and never starts
    a target again while its last scrape is running."""

    name = "scraper"

    def __init__(self, concurrency=None, clock=time.monotonic, scrape_one=scrape):
        super().__init__()
        self.concurrency = concurrency or settings.SCRAPE_CONCURRENCY
        self.clock = clock
        self.scrape_one = scrape_one
        self._targets = {}
        self._due = {}
        self._in_flight = set()
        self._lock = threading.Lock()
        self._reload_due = 0.0
        self._database_down = False
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="scrape")

    def stop(self, timeout=10):
        super().stop(timeout)
        # Scrapes running now end within their own timeout; none waits to start.
        self._pool.shutdown(wait=False, cancel_futures=True)

    def run(self):
        try:
            while not self._stopping.is_set():
                self.step()
                self._stopping.wait(POLL_SECONDS)
        finally:
            connections.close_all()

    def in_flight(self):
        with self._lock:
            return set(self._in_flight)

    def step(self):
        """Start the scrapes that are due, without waiting for any; returns their targets."""
        now = self.clock()
        if now >= self._reload_due:
            self._reload_due = now + RELOAD_SECONDS
            self._reload(now)
        started = []
        for pk, target in self._targets.items():
            with self._lock:
                if pk in self._in_flight or now < self._due.get(pk, 0.0):
                    continue
                self._in_flight.add(pk)
            self._due[pk] = now + target.interval
            self._pool.submit(self._run_one, target)
            started.append(target)
        return started

    def _reload(self, now):
        try:
            targets = {target.pk: target for target in ScrapeTarget.objects.filter(enabled=True)}
        except DatabaseError as exc:
            if not self._database_down:
                logger.warning("scrape targets cannot be read (%s); scraping the ones known", exc)
            self._database_down = True
            close_old_connections()
            return
        if self._database_down:
            logger.info("scrape targets can be read again")
        self._database_down = False
        if connections["default"].vendor == "sqlite":
            connections["default"].close()
        for pk in set(self._due) - set(targets):
            del self._due[pk]
        for pk, target in targets.items():
            # A shorter interval set meanwhile applies now, not after the longer one.
            if pk in self._due:
                self._due[pk] = min(self._due[pk], now + target.interval)
        self._targets = targets

    def _run_one(self, target):
        try:
            self.scrape_one(target)
        except Exception:
            logger.exception("scrape of %s failed", target)
        finally:
            with self._lock:
                self._in_flight.discard(target.pk)
            # This pool thread's connection: a scrape every few seconds needs no kept one.
            connections.close_all()

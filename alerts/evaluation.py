"""Alert rules, evaluated on every collector tick.

The collector owns one `AlertEvaluator` and calls `evaluate(values, now)` each
tick (from synchronous code: it uses the ORM) with its frame's values, which are
the series `name{host="<host>"}` of its host; the evaluator's `feed` adds the
latest value of every series published as a `metric` event since the last tick.
Rules are re-read from the database every few seconds, not every tick.

A rule's selector picks the series it watches; each series has its own state.
Per (rule, series) the evaluator remembers since when the value has been out of
range (or back in range while firing); the series' alert fires once the breach
has lasted `sustain_seconds`, and resolves once the value has been back in range
for as long, so a value wobbling around the threshold produces neither a storm
of alerts nor of resolves. After a resolve, `cooldown_seconds` must pass before
that series fires again. A firing series that sends nothing for `stale_seconds`
resolves as "no data" (a host that went away must not fire for ever).

Each series' alert is saved (`SeriesAlert`), so a restarted collector carries on
where the last one stopped instead of firing again.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import Q

from alerts.actions import broadcast
from alerts.grouping import Group, group_key, group_labels
from alerts.models import (
    MATCH_MAX_LENGTH,
    AlertEvent,
    AlertRule,
    Annotation,
    MaintenanceWindow,
    SeriesAlert,
    labels_text,
)
from dashboard import frames
from dashboard.series import storage_key
from hosts.liveness import UP_METRIC
from notifications.models import BODY_MAX_LENGTH, Level
from notifications.services import notify, notify_channel

logger = logging.getLogger(__name__)

RELOAD_SECONDS = 5.0
# A firing series silent this long resolves: its source is gone (Prometheus drops
# a vanished series' alert the same way).
STALE_SECONDS = 900.0
# A published value counts from its own timestamp (a breach lasts from when it was
# measured, a group waits from when it crossed), but from no further back than this
# before the tick that reads it: a skewed agent clock or a backfill cannot cut a
# rule's `sustain_seconds` or a group's `group_wait` short by more.
MEASURED_AT_MOST_SECONDS_BEFORE = 2.0


def measured_at(ts, now):
    """When a value read at tick `now` counts as measured: its `ts`, within
    [now - MEASURED_AT_MOST_SECONDS_BEFORE, now]."""
    return min(now, max(ts, now - MEASURED_AT_MOST_SECONDS_BEFORE))


@dataclass
class SeriesState:
    name: str
    labels: dict = field(default_factory=dict)
    firing: bool = False
    # Since when the value has been out of range (not firing) or back in range (firing).
    since: float | None = None
    last_resolved: float | None = None
    last_seen: float | None = None
    value: float | None = None
    # Fired inside a maintenance window: recorded, said to nobody until the window ends.
    held: bool = False
    fired_at: float | None = None
    # Escalation steps taken (or given up, once acknowledged) for this firing.
    escalated: int = 0


class AlertEvaluator:
    def __init__(
        self, reload_seconds=RELOAD_SECONDS, host=None, feed=None, stale_seconds=STALE_SECONDS, hosts=None
    ):
        self.reload_seconds = reload_seconds
        self.stale_seconds = stale_seconds
        # The `host` label of the frame's values (None: unlabelled, as before hosts).
        self.host = host
        # Callable returning the `metric` events' points since its last call.
        self.feed = feed
        # hosts.liveness.HostTracker: which hosts went quiet, as `host_up` values.
        self.hosts = hosts
        self.rules = []
        self.selectors = {}
        # rule id -> {series id: SeriesState}
        self.states = {}
        self.rules_by_id = {}
        # (rule id, group key) -> Group: what each group has said and has yet to say.
        self.groups = {}
        self.windows = []
        self._loaded_at = None
        # A tick and the messenger's sends (alerts.messenger) take turns with the state.
        self.lock = threading.RLock()

    def evaluate(self, values, now):
        """Advance every rule with this tick's values; returns the metric names that
        have a firing series. Never raises: a tick must not die of an alert."""
        with self.lock:
            try:
                self._reload_if_due(now)
            except Exception:
                logger.exception("could not reload alert rules")
            # What is due from earlier ticks goes first: reading and judging this tick's
            # values (thousands of series) must not hold back a message whose wait is over.
            self._flush_groups(now)
        # Reading the published values is most of a tick: without the lock, so a group
        # whose wait ends meanwhile goes out from the messenger (alerts.messenger).
        published, blind = self._read_published()
        with self.lock:
            return self._judge(values, now, published, blind)

    def _judge(self, values, now, published, blind):
        samples, gone = self._samples(values, now, published, blind)
        for rule in self.rules:
            selector, states = self.selectors[rule.pk], self.states[rule.pk]
            # What fires and resolves this tick, each stored in one go: a bad deploy
            # tripping a fleet costs a few queries, not a few per series.
            fires, resolves = [], []
            # `host_up` is derived here, not pushed: only a rule that names it watches it
            # (a selector on every metric of a host, `{host="web1"}`, means the pushed ones).
            watches_up = selector.metric_name == UP_METRIC
            for series_id, (name, labels, value, at) in samples.items():
                if not selector.matches(name, labels) or (name == UP_METRIC and not watches_up):
                    continue
                state = states.get(series_id)
                if state is None:
                    state = states[series_id] = SeriesState(name, labels)
                state.last_seen = now
                change = self._advance(rule, series_id, state, value, at, now)
                if change is not None:
                    (fires if change == "fire" else resolves).append((series_id, state, value))
            for change, batch in (("fire", fires), ("resolve", resolves)):
                if not batch:
                    continue
                try:
                    (self._fire if change == "fire" else self._resolve)(rule, batch, now)
                except Exception:
                    logger.exception(
                        "alert rule %s failed to %s %d series; trying again next tick",
                        rule.pk,
                        change,
                        len(batch),
                    )
                    _drop_broken_connection()
        if gone:
            self._resolve_gone(gone, now)
        if self._loaded_at == now:
            # With the reloads, after this tick's values: a long pause between two ticks
            # (a suspended host, a test's clock) must not look like silence.
            self._resolve_stale(now)
        self._release_held(now)
        self._flush_groups(now)
        self._escalate(now)
        return {state.name for rule in self.rules for state in self.states[rule.pk].values() if state.firing}

    def _read_published(self):
        """(the points published since the last tick, whether the feed could not be read)."""
        if self.feed is None:
            return (), False
        try:
            return self.feed(), False
        except Exception as exc:
            logger.warning("could not read the published values for alerts: %s", exc)
            return (), True

    def _samples(self, values, now, published, blind):
        """{series id: (name, labels, value, when it was measured)}: the frame's, then the
        newer published ones (see `measured_at`)."""
        samples = {}
        frame = {"ts": now, "values": values if isinstance(values, dict) else {}, "host": self.host}
        for series_id, name, labels, _ts, value in frames.points_of(frames.FRAME, frame):
            samples[series_id] = (name, labels, float(value), now)
        for series_id, name, labels, ts, value in published:
            samples[series_id] = (name, labels, float(value), measured_at(ts, now))
        gone = []
        if self.hosts is not None:
            samples, gone = self._host_samples(samples, frame, published, now, blind)
        return samples, gone

    def _host_samples(self, samples, frame, points, now, blind=False):
        """`samples` with each judged host's `host_up` (1 up, 0 down), and the hosts the
        tracker dropped (revoked on the hosts page, or silent past the retention). When
        the feed could not be read, nobody is judged: silence then says nothing."""
        from hosts.liveness import HOST_LABEL, up_series_id

        if blind:
            self.hosts.blind(now)
            return samples, []
        try:
            self.hosts.observe(frames.points_of(frames.FRAME, frame), now)
            self.hosts.observe(points, now)
            judged, gone = self.hosts.judge(now)
        except Exception:
            logger.exception("could not judge which hosts are up")
            return samples, []
        for host, up in judged.items():
            samples[up_series_id(host)] = (UP_METRIC, {HOST_LABEL: host}, 1.0 if up else 0.0, now)
        return samples, [up_series_id(host) for host in gone]

    def _resolve_gone(self, series_ids, now):
        """A host revoked (or expired) is not down: its firing alerts resolve as "no data"."""
        for rule in self.rules:
            states = self.states[rule.pk]
            batch = [(sid, states[sid], None) for sid in series_ids if sid in states and states[sid].firing]
            if not batch:
                continue
            try:
                self._resolve(rule, batch, now)
            except Exception:
                logger.exception("could not resolve the alerts of %d forgotten hosts", len(batch))
                _drop_broken_connection()

    def _reload_if_due(self, now):
        if self._loaded_at is not None and 0 <= now - self._loaded_at < self.reload_seconds:
            return
        # Set first: with the database away we retry in a few seconds, not every tick.
        self._loaded_at = now
        try:
            rules = list(
                AlertRule.objects.filter(enabled=True)
                .filter(Q(metric__isnull=True) | Q(metric__enabled=True))
                .select_related("metric", "recipient_group", "recipient_user")
                .prefetch_related("escalation_steps__channel")
            )
            usable = []
            for rule in rules:
                try:
                    self.selectors[rule.pk] = rule.selector
                    usable.append(rule)
                except ValueError as exc:
                    logger.warning("alert rule %s has a bad selector %r: %s", rule.pk, rule.match, exc)
            self.windows = list(MaintenanceWindow.objects.filter(enabled=True))
            new = [rule for rule in usable if rule.pk not in self.states]
            loaded = _states_from_database(new, now)
        except Exception:
            logger.warning("could not load alert rules; keeping the %d loaded before", len(self.rules))
            _drop_broken_connection()
            return
        self.states = {rule.pk: self.states.get(rule.pk) or loaded.get(rule.pk, {}) for rule in usable}
        self.rules = usable
        self.rules_by_id = {rule.pk: rule for rule in usable}
        for rule in new:
            for series_id, state in self.states[rule.pk].items():
                if state.firing:
                    self._group(rule, state.labels).resumed(series_id, state.labels, state.value, now)
        # A rule switched off (or deleted) says nothing more through its groups.
        self.groups = {key: group for key, group in self.groups.items() if group.rule_id in self.rules_by_id}
        self._resolve_switched_off(now)

    def _resolve_switched_off(self, now):
        """A rule left firing when it (or its metric) was disabled would show "firing"
        for ever and never resolve: say it is resolved, once, and clear the flags."""
        switched_on = Q(enabled=True) & (Q(metric__isnull=True) | Q(metric__enabled=True))
        stuck = AlertRule.objects.filter(firing=True).exclude(switched_on)
        for rule in stuck.select_related("metric", "recipient_group", "recipient_user"):
            try:
                _rule_disabled(rule, now)
            except Exception:
                logger.exception("could not resolve disabled alert rule %s; trying again", rule.pk)
                _drop_broken_connection()

    def _resolve_stale(self, now):
        for rule in self.rules:
            for series_id, state in self.states[rule.pk].items():
                if not state.firing or state.last_seen is None or now - state.last_seen < self.stale_seconds:
                    continue
                try:
                    self._resolve(rule, [(series_id, state, None)], now)
                except Exception:
                    logger.exception("could not resolve stale %s of rule %s", series_id, rule.pk)
                    _drop_broken_connection()

    def _rule_firing_without(self, rule, series_ids):
        """Whether the rule still fires once `series_ids` stop firing."""
        return any(s.firing for sid, s in self.states[rule.pk].items() if sid not in series_ids)

    def _advance(self, rule, series_id, state, value, at, now):
        """ "fire", "resolve" or None: what this value, measured `at`, makes of the series' alert."""
        out_of_range = rule.is_breached_by(value)
        if out_of_range != state.firing:
            # Moving towards a change: count how long it has lasted, from the value's own time.
            if state.since is None or at < state.since:
                state.since = at
        else:
            state.since = None
            if state.firing:
                state.value = value
                self._group(rule, state.labels).still(series_id, value)
            return None
        if now - state.since < rule.sustain_seconds:
            return None
        if not state.firing:
            if state.last_resolved is not None and now - state.last_resolved < rule.cooldown_seconds:
                return None
            return "fire"
        return "resolve"

    def _group(self, rule, labels):
        grouped = group_labels(rule, labels)
        key = group_key(rule, grouped)
        group = self.groups.get((rule.pk, key))
        if group is None:
            group = self.groups[(rule.pk, key)] = Group(rule.pk, key, grouped)
        return group

    def _in_window(self, state, now):
        moment = _datetime(now)
        return any(window.covers(moment, state.name, state.labels) for window in self.windows)

    def _release_held(self, now):
        """A maintenance window ended: what still fires goes out now (unless silenced)."""
        for rule in self.rules:
            for series_id, state in self.states[rule.pk].items():
                if not (state.held and state.firing) or self._in_window(state, now):
                    continue
                try:
                    if not _silenced(rule, series_id, now):
                        self._group(rule, state.labels).fired(series_id, state.labels, state.value, now)
                except Exception:
                    logger.exception("could not release %s of rule %s; trying again", series_id, rule.pk)
                    _drop_broken_connection()
                    continue
                state.held = False

    def _escalate(self, now):
        """Take each firing alert's escalation steps that are due, unless acknowledged."""
        for rule in self.rules:
            steps = list(rule.escalation_steps.all())
            if not steps:
                continue
            for series_id, state in self.states[rule.pk].items():
                if not state.firing or state.held or state.fired_at is None or state.escalated >= len(steps):
                    continue
                step = steps[state.escalated]
                if now - state.fired_at < step.delay_minutes * 60:
                    continue
                try:
                    if _attended(rule, series_id, now):
                        state.escalated = len(steps)  # someone is on it: no later step
                        continue
                    _send_escalation(rule, step, series_id, state, now)
                except Exception:
                    logger.exception("could not escalate %s of rule %s; trying again", series_id, rule.pk)
                    _drop_broken_connection()
                    continue
                state.escalated += 1

    def _fire(self, rule, batch, now):
        """`batch`: (series id, state, value) of the series whose alerts fire now."""
        silenced = _silenced_series(rule, [series_id for series_id, _, _ in batch], now)
        held = {series_id for series_id, state, _ in batch if self._in_window(state, now)}
        moment = _datetime(now)
        # A new firing: the last one's acknowledgement does not carry over.
        _series_steps(
            rule,
            now,
            [
                SeriesStep(
                    "alert.fired",
                    series_id,
                    state,
                    value,
                    series_id in held or series_id in silenced,
                    series_id in held,
                )
                for series_id, state, value in batch
            ],
            rule_firing=True,
            firing=True,
            last_fired_at=moment,
            acknowledged_at=None,
            acknowledged_by=None,
        )
        # Changed only once saved: if that failed, the next tick tries again.
        for series_id, state, value in batch:
            # The group's wait counts from when the value crossed (and held for the rule's
            # sustain), not from the tick that read it: up to a tick earlier.
            crossed = now if state.since is None else min(now, state.since + rule.sustain_seconds)
            state.firing, state.since, state.value = True, None, value
            state.held = series_id in held
            state.fired_at, state.escalated = now, 0
            if series_id not in held and series_id not in silenced:  # recorded, but said to nobody
                self._group(rule, state.labels).fired(series_id, state.labels, value, crossed)

    def _resolve(self, rule, batch, now):
        """`batch`: (series id, state, value) of the series back in range (value None: no data)."""
        silenced = _silenced_series(rule, [series_id for series_id, _, _ in batch], now)
        _series_steps(
            rule,
            now,
            [
                SeriesStep(
                    "alert.resolved" if value is not None else "alert.no_data",
                    series_id,
                    state,
                    value,
                    series_id in silenced,
                )
                for series_id, state, value in batch
            ],
            rule_firing=self._rule_firing_without(rule, {series_id for series_id, _, _ in batch}),
            firing=False,
            last_resolved_at=_datetime(now),
        )
        for series_id, state, value in batch:
            state.firing, state.since, state.last_resolved, state.held = False, None, now, False
            self._group(rule, state.labels).resolved_now(series_id, value, no_data=value is None)

    def next_message_at(self):
        """When the first group's message falls due (wall-clock seconds), or None."""
        with self.lock:
            times = [
                group.due_at(self.rules_by_id[group.rule_id])
                for group in self.groups.values()
                if group.rule_id in self.rules_by_id
            ]
        return min((at for at in times if at is not None), default=None)

    def send_due_messages(self, now):
        """The groups whose wait is over at `now` go out (alerts.messenger, between ticks)."""
        with self.lock:
            self._flush_groups(now)

    def _flush_groups(self, now):
        """Send what each group has due (Alertmanager's timing), one message a group."""
        for key, group in list(self.groups.items()):
            rule = self.rules_by_id.get(group.rule_id)
            if rule is None:
                del self.groups[key]
                continue
            due = group.due(rule, now)
            if due is not None:
                try:
                    _send_group(rule, group, due, now)
                except Exception:
                    logger.exception("could not notify alert group %s; trying again next tick", group.key)
                    _drop_broken_connection()
                    continue
                group.sent(now)
            if group.finished:
                del self.groups[key]


def _states_from_database(rules, now):
    """{rule id: {series id: SeriesState}} of what the database says fires or cools down."""
    if not rules:
        return {}
    by_rule = {rule.pk: {} for rule in rules}
    alerts = SeriesAlert.objects.filter(rule_id__in=list(by_rule)).filter(
        Q(firing=True) | Q(last_resolved_at__isnull=False)
    )
    fields = ("rule_id", "series", "labels", "firing", "value", "last_fired_at", "last_resolved_at")
    for alert in alerts.values(*fields):
        name = alert["series"].split("{", 1)[0]
        last_resolved = alert["last_resolved_at"].timestamp() if alert["last_resolved_at"] else None
        by_rule[alert["rule_id"]][alert["series"]] = SeriesState(
            name,
            alert["labels"] or {},
            firing=alert["firing"],
            last_resolved=last_resolved,
            last_seen=now,
            value=alert["value"],
            fired_at=alert["last_fired_at"].timestamp() if alert["last_fired_at"] else None,
        )
    return by_rule


# What each message is in the rule's history, and its level (None: the rule's own).
STEPS = {
    "alert.fired": (AlertEvent.Kind.FIRED, None),
    "alert.repeated": (AlertEvent.Kind.REPEATED, None),
    "alert.resolved": (AlertEvent.Kind.RESOLVED, Level.SUCCESS),
    "alert.no_data": (AlertEvent.Kind.RESOLVED, Level.SUCCESS),
    "alert.disabled": (AlertEvent.Kind.RESOLVED, Level.SUCCESS),
}


def _rule_disabled(rule, now):
    """A firing rule was switched off: in one transaction, every series' alert of it
    stops, the rule's "resolved" goes out at once (unless silenced), the history and the
    rule's charts say so, and once committed every open page hears it."""
    kind, level = STEPS["alert.disabled"]
    moment = _datetime(now)
    silenced = _silenced(rule, None, now)
    with transaction.atomic():
        if not silenced:
            title, body = _english("alert.disabled", rule, None, "", {})
            notify(
                rule.recipients,
                _clip(title),
                body=body,
                level=level or rule.level,
                message=("alert.disabled", _params(rule)),
            )
        SeriesAlert.objects.filter(rule_id=rule.pk, firing=True).update(firing=False, last_resolved_at=moment)
        AlertRule.objects.filter(pk=rule.pk).update(firing=False, last_resolved_at=moment)
        detail = _detail("alert.disabled", rule, None, {})
        if silenced:
            detail += " (silenced: nobody notified)"
        AlertEvent.objects.create(rule=rule, series="", kind=kind, at=moment, detail=_clip(detail, 200))
        _annotation(rule, kind, moment, "", {}).save()
        _broadcast_on_commit(rule, kind.value)


@dataclass
class SeriesStep:
    """One series' part of a tick's batch of fires or resolves."""

    message_id: str
    series: str
    state: SeriesState
    value: float | None
    silenced: bool = False
    held: bool = False


def _series_steps(rule, now, steps, rule_firing, **series_fields):
    """A batch of series' alerts firing (or resolving) in one tick, in one transaction:
    each series' new `series_fields`, the rule's `firing` and timestamps, their history
    entries and annotations, and once committed one `alert_state` for the rule (its
    `series` the one series, or null for several). Notifies nobody: the groups do."""
    kind = STEPS[steps[0].message_id][0]
    moment = _datetime(now)
    keys = {storage_key(step.series): step for step in steps}
    with transaction.atomic():
        existing = {
            alert.key: alert for alert in SeriesAlert.objects.filter(rule_id=rule.pk, key__in=list(keys))
        }
        changed, new = [], []
        for key, step in keys.items():
            fields = {**series_fields, "series": step.series, "labels": step.state.labels}
            if step.value is not None:
                fields["value"] = step.value
            alert = existing.get(key)
            if alert is None:
                new.append(SeriesAlert(rule_id=rule.pk, key=key, **fields))
            else:
                for name, value in fields.items():
                    setattr(alert, name, value)
                changed.append(alert)
        names = sorted({*series_fields, "series", "labels", "value"})
        if changed:
            SeriesAlert.objects.bulk_update(changed, names)
        if new:
            SeriesAlert.objects.bulk_create(new)
        rule_fields = {"firing": rule_firing}
        if kind == AlertEvent.Kind.FIRED:
            rule_fields |= {"last_fired_at": moment, "acknowledged_at": None, "acknowledged_by": None}
        elif kind == AlertEvent.Kind.RESOLVED:
            rule_fields["last_resolved_at"] = moment
        AlertRule.objects.filter(pk=rule.pk).update(**rule_fields)
        events, notes = [], []
        for step in steps:
            detail = _detail(step.message_id, rule, step.value, step.state.labels)
            if step.held:
                detail += " (in a maintenance window: nobody notified yet)"
            elif step.silenced:
                detail += " (silenced: nobody notified)"
            events.append(
                AlertEvent(rule=rule, series=step.series, kind=kind, at=moment, detail=_clip(detail, 200))
            )
            notes.append(_annotation(rule, kind, moment, step.series, step.state.labels))
        AlertEvent.objects.bulk_create(events)
        Annotation.objects.bulk_create(notes)
        _broadcast_on_commit(rule, kind.value, steps[0].series if len(steps) == 1 else None)


ANNOTATED_BY = "alerts"


def _annotation(rule, kind, moment, series_id, labels):
    """A marker on the charts where the alert fired or resolved: on the series' own chart
    (its id is a selector matching it alone), or the rule's when the rule stops as a whole.
    Silenced and held alerts are marked too: the chart shows what happened, not who was told."""
    said = "Fired" if kind == AlertEvent.Kind.FIRED else "Resolved"
    suffix = f" ({labels_text(labels)})" if labels else ""
    match = series_id or rule.match
    if len(match) > MATCH_MAX_LENGTH:
        # An id longer than a selector may be: the metric's charts, the labels still in the text.
        match = series_id.split("{", 1)[0]
    return Annotation(
        time=moment,
        text=_clip(f"{said}: {rule.display_name}{suffix}", Annotation._meta.get_field("text").max_length),
        tags=["alert", kind.value],
        match=match,
        created_by=ANNOTATED_BY,
    )


# Alerts a grouped message lists by name; the rest are counted (the body has a limit).
LISTED = 25


def _send_group(rule, group, due, now):
    """One message for the group (`due`: "first", "update" or "repeat"), in one transaction
    with the history of its repeats. A repeat leaves out what was acknowledged or silenced
    since; with nothing left it says nothing."""
    firing = list(group.firing.values())
    resolved = list(group.resolved.values())
    if due == "repeat":
        firing = _unattended(rule, firing, now)
        if not firing:
            return
    if not firing and not resolved:
        return
    message_id, title, body, params = _group_message(rule, group, due, firing, resolved)
    with transaction.atomic():
        notify(
            rule.recipients,
            _clip(title),
            body=body[:BODY_MAX_LENGTH],
            level=rule.level if firing else Level.SUCCESS,
            message=(message_id, params),
        )
        if due == "repeat":
            moment = _datetime(now)
            AlertEvent.objects.bulk_create(
                AlertEvent(
                    rule=rule,
                    series=member.series,
                    kind=AlertEvent.Kind.REPEATED,
                    at=moment,
                    detail=_clip(_detail("alert.repeated", rule, member.value, member.labels), 200),
                )
                for member in firing
            )


def _attended(rule, series_id, now):
    """Whether someone acknowledged or silenced this alert (or its rule), read fresh."""
    return not _unattended(rule, [_Named(series_id)], now)


class _Named:
    def __init__(self, series):
        self.series = series


def _send_escalation(rule, step, series_id, state, now):
    """The alert's message to the step's channel alone, and the history says so."""
    title, body = _english("alert.fired", rule, state.value, series_id, state.labels)
    with transaction.atomic():
        notify_channel(
            step.channel,
            _clip(f"Escalated: {title}"),
            body=body,
            level=rule.level,
            message=("alert.fired", _params(rule, state.value, state.labels)),
        )
        AlertEvent.objects.create(
            rule=rule,
            series=series_id,
            kind=AlertEvent.Kind.ESCALATED,
            at=_datetime(now),
            detail=_clip(f"unacknowledged after {step.delay_minutes} min: sent to {step.channel}", 200),
        )


def _unattended(rule, members, now):
    """The members whose alert nobody acknowledged or silenced (read fresh)."""
    moment = _datetime(now)
    rule_silence = AlertRule.objects.filter(pk=rule.pk).values_list("silenced_until", flat=True).first()
    if rule_silence is not None and rule_silence > moment:
        return []
    keys = {storage_key(member.series): member for member in members}
    attended = (
        SeriesAlert.objects.filter(rule_id=rule.pk, key__in=list(keys))
        .filter(Q(acknowledged_at__isnull=False) | Q(silenced_until__gt=moment))
        .values_list("key", flat=True)
    )
    quiet = set(attended)
    return [member for key, member in keys.items() if key not in quiet]


def _group_message(rule, group, due, firing, resolved):
    """(message id, English title, English body, params) of a group's message: a group of
    one reads as that series' own message; more are listed, firing first."""
    alerts = [
        {"series": m.series, "labels": m.labels, "status": "firing", "value": m.value} for m in firing
    ] + [{"series": m.series, "labels": m.labels, "status": "resolved", "value": m.value} for m in resolved]
    about = {
        "key": group.key,
        "labels": group.labels,
        "status": "firing" if firing else "resolved",
        "alerts": alerts,
    }
    if len(firing) + len(resolved) == 1:
        member = (firing or resolved)[0]
        if firing:
            message_id = "alert.fired" if member.status == "fired" and due != "repeat" else "alert.repeated"
        else:
            message_id = "alert.no_data" if member.status == "no_data" else "alert.resolved"
        value = member.value if message_id != "alert.no_data" else None
        title, body = _english(message_id, rule, value, member.series, member.labels)
        params = _params(rule, value, member.labels)
        return message_id, title, body, {**params, "group": about}
    lines = []
    for heading, members in (("Firing", firing), ("Resolved", resolved)):
        if not members:
            continue
        lines.append(f"{heading}:")
        for member in members[:LISTED]:
            name = labels_text(member.labels) or member.series
            shown = "" if member.value is None else f": {member.value:g}{_unit(rule)}"
            lines.append(f"- {name}{shown}")
        if len(members) > LISTED:
            lines.append(f"- and {len(members) - LISTED} more")
    details = "\n".join(lines)
    grouped = labels_text(group.labels)
    params = {
        **_params(rule),
        "firing": len(firing),
        "resolved": len(resolved),
        "details": details,
        "group": about,
    }
    if grouped:
        params["labels"] = grouped
    title = f"{rule.display_name}: {len(firing)} firing, {len(resolved)} resolved"
    title += f" ({grouped})" if grouped else ""
    message_id = "alert.group.repeated" if due == "repeat" else "alert.group"
    if due == "repeat":
        title = "Still firing: " + title
    return message_id, title, details, params


def _detail(message_id, rule, value, labels):
    if message_id == "alert.disabled":
        return "rule disabled"
    said = "no data" if value is None else _describe_value(rule, value)
    return f"{said} ({labels_text(labels)})" if labels else said


def _english(message_id, rule, value, series_id, labels):
    """The stored title and body (the admin, e-mail and webhooks read these); pages say
    them again in each viewer's language from the message id (notifications/messages.py).
    A labelled series is named by its labels at the end of the title, and by its id in
    the body."""
    metric = rule.metric_label
    if message_id == "alert.disabled":
        return f"Resolved: {rule.display_name}", f"The rule was disabled, so it no longer watches {metric}."
    suffix = f" ({labels_text(labels)})" if labels else ""
    said = f" Series: {series_id}." if labels else ""
    if message_id == "alert.no_data":
        return (
            f"Resolved: {rule.display_name}{suffix}",
            f"{metric} has sent nothing for a while, so its alert is resolved.{said}",
        )
    described = _describe_value(rule, value)
    if message_id == "alert.fired":
        return (
            f"{rule.display_name}: {described}{suffix}",
            f"{metric} has been {rule.comparison} {rule.threshold:g}{_unit(rule)}"
            f" for {rule.sustain_seconds} s.{said}",
        )
    if message_id == "alert.repeated":
        return (
            f"Still firing: {rule.display_name}: {described}{suffix}",
            f"Not acknowledged yet. {metric} is still out of range.{said}",
        )
    return f"Resolved: {rule.display_name}{suffix}", f"{metric} is back in range: {described}.{said}"


def _broadcast_on_commit(rule, change, series_id=None):
    def send():
        # After the commit: whatever fails here must not make the caller fire again.
        try:
            related = ("metric", "acknowledged_by", "silenced_by")
            state = AlertRule.objects.select_related(*related).get(pk=rule.pk).as_state()
            broadcast(state, change, series=series_id)
        except Exception as exc:
            logger.warning("could not tell the pages that rule %s %s: %s", rule.pk, change, exc)

    transaction.on_commit(send)


def _silenced(rule, series_id, now):
    """Whether the rule, or this series' alert, is silenced. Read fresh: a silence set a
    second ago (rules reload every few seconds) must hold."""
    moment = _datetime(now)
    until = AlertRule.objects.filter(pk=rule.pk).values_list("silenced_until", flat=True).first()
    if until is not None and until > moment:
        return True
    if series_id is None:
        return False
    alert = SeriesAlert.objects.filter(rule_id=rule.pk, key=storage_key(series_id))
    until = alert.values_list("silenced_until", flat=True).first()
    return until is not None and until > moment


def _silenced_series(rule, series_ids, now):
    """The ids among `series_ids` whose alert (or whose rule) is silenced, read fresh."""
    moment = _datetime(now)
    until = AlertRule.objects.filter(pk=rule.pk).values_list("silenced_until", flat=True).first()
    if until is not None and until > moment:
        return set(series_ids)
    by_key = {storage_key(series_id): series_id for series_id in series_ids}
    quiet = SeriesAlert.objects.filter(rule_id=rule.pk, key__in=list(by_key), silenced_until__gt=moment)
    return {by_key[key] for key in quiet.values_list("key", flat=True)}


def _drop_broken_connection():
    # A long-running process never passes a request boundary, where Django would
    # drop a connection the database closed: do it here so the next tick reconnects.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _params(rule, value=None, labels=None):
    """What notifications/messages.py needs to say this again in another language."""
    params = {
        "rule": rule.name,  # empty: said as "<metric> <comparison> <threshold>" in each language
        "metric": rule.metric_label,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "sustain": rule.sustain_seconds,
        "unit": _unit(rule),
    }
    if value is not None:
        params["value"] = value
    if labels:
        params["labels"] = labels_text(labels)
    return params


def _describe_value(rule, value):
    if value is None:  # an alert older than values were kept (see migration 0002)
        return f"{rule.metric_label} is out of range"
    return f"{rule.metric_label} is {value:g}{_unit(rule)}"


def _unit(rule):
    return f" {rule.unit}" if rule.unit else ""


def _clip(title, limit=120):
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _datetime(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC)

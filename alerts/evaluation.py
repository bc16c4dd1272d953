"""Alert rules, evaluated on every collector tick.

The collector owns one `AlertEvaluator` and calls `evaluate(values, now)` each
tick (from synchronous code: it uses the ORM). Rules are re-read from the
database every few seconds, not every tick. Per rule the evaluator remembers
since when the value has been out of range (or back in range while firing);
a rule fires once the breach has lasted `sustain_seconds`, and resolves once
the value has been back in range for as long, so a value wobbling around the
threshold produces neither a storm of alerts nor of resolves. After a resolve,
`cooldown_seconds` must pass before the rule fires again.

`firing` and the timestamps are saved on the rule, so a restarted collector
carries on where the last one stopped instead of firing again.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction

from alerts.actions import broadcast
from alerts.models import AlertEvent, AlertRule
from notifications.models import Level
from notifications.services import notify

logger = logging.getLogger(__name__)

RELOAD_SECONDS = 5.0


@dataclass
class RuleState:
    firing: bool = False
    # Since when the value has been out of range (not firing) or back in range (firing).
    since: float | None = None
    last_resolved: float | None = None
    # When this firing last notified anyone (its start or its last repeat).
    last_notified: float | None = None


class AlertEvaluator:
    def __init__(self, reload_seconds=RELOAD_SECONDS):
        self.reload_seconds = reload_seconds
        self.rules = []
        self.states = {}
        self._loaded_at = None

    def evaluate(self, values, now):
        """Advance every rule with this tick's values; returns the metric keys
        whose rule is firing. Never raises: a tick must not die of an alert."""
        try:
            self._reload_if_due(now)
        except Exception:
            logger.exception("could not reload alert rules")
        for rule in self.rules:
            value = values.get(rule.metric.key) if isinstance(values, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                continue  # No (usable) sample this tick: the rule holds its state.
            try:
                self._advance(rule, float(value), now)
            except Exception:
                logger.exception("alert rule %s failed; trying again next tick", rule.pk)
                _drop_broken_connection()
        return {rule.metric.key for rule in self.rules if self.states[rule.pk].firing}

    def _reload_if_due(self, now):
        if self._loaded_at is not None and 0 <= now - self._loaded_at < self.reload_seconds:
            return
        # Set first: with the database away we retry in a few seconds, not every tick.
        self._loaded_at = now
        try:
            rules = list(
                AlertRule.objects.filter(enabled=True, metric__enabled=True).select_related(
                    "metric", "recipient_group"
                )
            )
        except Exception:
            logger.warning("could not load alert rules; keeping the %d loaded before", len(self.rules))
            _drop_broken_connection()
            return
        self.states = {rule.pk: self.states.get(rule.pk) or _state_from(rule) for rule in rules}
        self.rules = rules
        self._resolve_switched_off(now)

    def _resolve_switched_off(self, now):
        """A rule left firing when it (or its metric) was disabled would show "firing"
        for ever and never resolve: say it is resolved, once, and clear the flag."""
        stuck = AlertRule.objects.filter(firing=True).exclude(enabled=True, metric__enabled=True)
        for rule in stuck.select_related("metric", "recipient_group"):
            try:
                # The history says why it stopped firing, like any other resolve.
                _step(
                    rule,
                    "alert.disabled",
                    now,
                    silenced=_silenced(rule, now),
                    firing=False,
                    last_resolved_at=_datetime(now),
                )
            except Exception:
                logger.exception("could not resolve disabled alert rule %s; trying again", rule.pk)
                _drop_broken_connection()

    def _advance(self, rule, value, now):
        state = self.states[rule.pk]
        out_of_range = rule.is_breached_by(value)
        if out_of_range != state.firing:
            # Moving towards a change: count how long it has lasted.
            if state.since is None or now < state.since:
                state.since = now
        else:
            state.since = None
            if state.firing:
                self._repeat_if_due(rule, state, value, now)
            return
        if now - state.since < rule.sustain_seconds:
            return
        if not state.firing:
            if state.last_resolved is not None and now - state.last_resolved < rule.cooldown_seconds:
                return
            self._fire(rule, state, value, now)
        else:
            self._resolve(rule, state, value, now)

    def _fire(self, rule, state, value, now):
        # A new firing: the last one's acknowledgement does not carry over.
        _step(
            rule,
            "alert.fired",
            now,
            value,
            silenced=_silenced(rule, now),
            firing=True,
            last_fired_at=_datetime(now),
            acknowledged_at=None,
            acknowledged_by=None,
        )
        # Changed only once saved: if that failed, the next tick tries again.
        state.firing, state.since, state.last_notified = True, None, now

    def _repeat_if_due(self, rule, state, value, now):
        if not rule.repeat_minutes or state.last_notified is None:
            return
        if now - state.last_notified < rule.repeat_minutes * 60:
            return
        state.last_notified = now
        fresh = AlertRule.objects.filter(pk=rule.pk).values("acknowledged_at", "silenced_until").first()
        if fresh is None or fresh["acknowledged_at"] is not None:
            return  # acknowledged: someone is on it, no more repeats of this firing
        if fresh["silenced_until"] is not None and fresh["silenced_until"] > _datetime(now):
            return
        _step(rule, "alert.repeated", now, value)

    def _resolve(self, rule, state, value, now):
        _step(
            rule,
            "alert.resolved",
            now,
            value,
            silenced=_silenced(rule, now),
            firing=False,
            last_resolved_at=_datetime(now),
        )
        state.firing, state.since, state.last_resolved = False, None, now


# What each message is in the rule's history, and its level (None: the rule's own).
STEPS = {
    "alert.fired": (AlertEvent.Kind.FIRED, None),
    "alert.repeated": (AlertEvent.Kind.REPEATED, None),
    "alert.resolved": (AlertEvent.Kind.RESOLVED, Level.SUCCESS),
    "alert.disabled": (AlertEvent.Kind.RESOLVED, Level.SUCCESS),
}


def _step(rule, message_id, now, value=None, silenced=False, **rule_fields):
    """One step of a rule's life, in one transaction: the notification (unless the rule
    is silenced), the rule's new `rule_fields`, its history entry, and once committed
    the news to every open page when the rule started or stopped firing."""
    kind, level = STEPS[message_id]
    with transaction.atomic():
        if not silenced:
            title, body = _english(message_id, rule, value)
            notify(
                rule.recipient_group,
                _clip(title),
                body=body,
                level=level or rule.level,
                message=(message_id, _params(rule, value)),
            )
        if rule_fields:
            AlertRule.objects.filter(pk=rule.pk).update(**rule_fields)
        detail = "rule disabled" if value is None else _describe_value(rule, value)
        detail += " (silenced: nobody notified)" if silenced else ""
        AlertEvent.objects.create(rule=rule, kind=kind, at=_datetime(now), detail=_clip(detail, 200))
        if kind != AlertEvent.Kind.REPEATED:
            _broadcast_on_commit(rule, kind.value)


def _english(message_id, rule, value):
    """The stored title and body (the admin, e-mail and webhooks read these); pages say
    them again in each viewer's language from the message id (notifications/messages.py)."""
    metric = rule.metric.display_label
    if message_id == "alert.disabled":
        return f"Resolved: {rule.display_name}", f"The rule was disabled, so it no longer watches {metric}."
    described = _describe_value(rule, value)
    if message_id == "alert.fired":
        return (
            f"{rule.display_name}: {described}",
            f"{metric} has been {rule.comparison} {rule.threshold:g}{_unit(rule)}"
            f" for {rule.sustain_seconds} s.",
        )
    if message_id == "alert.repeated":
        return (
            f"Still firing: {rule.display_name}: {described}",
            f"Not acknowledged yet. {metric} is still out of range.",
        )
    return f"Resolved: {rule.display_name}", f"{metric} is back in range: {described}."


def _broadcast_on_commit(rule, change):
    def send():
        # After the commit: whatever fails here must not make the caller fire again.
        try:
            related = ("metric", "acknowledged_by", "silenced_by")
            broadcast(AlertRule.objects.select_related(*related).get(pk=rule.pk).as_state(), change)
        except Exception as exc:
            logger.warning("could not tell the pages that rule %s %s: %s", rule.pk, change, exc)

    transaction.on_commit(send)


def _silenced(rule, now):
    # Read fresh: a silence set a second ago (rules reload every few seconds) must hold.
    until = AlertRule.objects.filter(pk=rule.pk).values_list("silenced_until", flat=True).first()
    return until is not None and until > _datetime(now)


def _drop_broken_connection():
    # A long-running process never passes a request boundary, where Django would
    # drop a connection the database closed: do it here so the next tick reconnects.
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


def _state_from(rule):
    last_resolved = rule.last_resolved_at.timestamp() if rule.last_resolved_at else None
    last_fired = rule.last_fired_at.timestamp() if rule.firing and rule.last_fired_at else None
    return RuleState(firing=rule.firing, last_resolved=last_resolved, last_notified=last_fired)


def _params(rule, value=None):
    """What notifications/messages.py needs to say this again in another language."""
    params = {
        "rule": rule.name,  # empty: said as "<metric> <comparison> <threshold>" in each language
        "metric": rule.metric.display_label,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "sustain": rule.sustain_seconds,
        "unit": _unit(rule),
    }
    if value is not None:
        params["value"] = value
    return params


def _describe_value(rule, value):
    return f"{rule.metric.display_label} is {value:g}{_unit(rule)}"


def _unit(rule):
    unit = rule.metric.unit
    return f" {unit}" if unit else ""


def _clip(title, limit=120):
    return title if len(title) <= limit else title[: limit - 1] + "…"


def _datetime(timestamp):
    return datetime.fromtimestamp(timestamp, tz=UTC)

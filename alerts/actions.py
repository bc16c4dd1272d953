"""Acknowledging and silencing alert rules, from the page (the WebSocket commands)
or anywhere else: one series' alert (`series`: its id) or, without it, every series
of the rule. Each action is one transaction: the rule or series alert, its history
event and the audit entry are written together. Returns the rule's new
`as_state()`, which the caller broadcasts to every open page."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from alerts.models import (
    MAX_SILENCE_MINUTES,
    MIN_SILENCE_MINUTES,
    AlertEvent,
    AlertRule,
    SeriesAlert,
    labels_text,
)
from audit.services import record
from dashboard.access import ALERT_PERMISSION, has_permission
from dashboard.control import events
from dashboard.groups import DASHBOARD_GROUP, group_send_quietly
from dashboard.redis import get_async_client, get_sync_client, key
from dashboard.series import parse_series_id, storage_key

logger = logging.getLogger(__name__)


def can_manage_alerts(user):
    """`ack_alert`, `silence_alert`, `unsilence_alert`, and their buttons on the page."""
    return has_permission(user, ALERT_PERMISSION)


class RuleNotFound(Exception):
    pass


class NotFiring(Exception):
    pass


def _locked_rule(rule_id):
    rule = (
        AlertRule.objects.select_for_update(of=("self",)).select_related("metric").filter(pk=rule_id).first()
    )
    if rule is None:
        raise RuleNotFound(f"there is no alert rule {rule_id}")
    return rule


def _history(rule, kind, user, detail="", series=""):
    AlertEvent.objects.create(
        rule=rule,
        series=series,
        kind=kind,
        actor=user,
        actor_name=user.get_username() if user else "",
        detail=detail,
    )


def _audit(action, rule, before, after, user, address, series_alert=None):
    target = f"alert rule #{rule.pk}: {rule.display_name}"
    if series_alert is not None:
        target += f" ({labels_text(series_alert.labels) or series_alert.series})"
    record(
        action,
        target[:200],
        before,
        after,
        actor=user.get_username() if user else "",
        address=address or "",
    )


def _series_alert(rule, series, create=False):
    """The rule's alert of `series` (locked), made when `create` for a series the rule's
    selector matches (silenced ahead of time); `NotFiring` when there is none."""
    name, labels = parse_series_id(series)
    alert = SeriesAlert.objects.select_for_update().filter(rule=rule, key=storage_key(series)).first()
    if alert is not None or not create:
        if alert is None:
            raise NotFiring(f"alert rule {rule.pk} has no alert for {series}")
        return alert
    if not rule.selector.matches(name, labels):
        raise ValueError(f"alert rule {rule.pk} does not watch {series} (its selector is {rule.match})")
    return SeriesAlert.objects.create(rule=rule, key=storage_key(series), series=series, labels=labels)


def acknowledge(rule_id, user, address="", series=None):
    """Someone is on it: no more repeats of this firing. Only a firing alert can be
    acknowledged; without `series`, every firing series of the rule is."""
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        now = timezone.now()
        if series is not None:
            alert = _series_alert(rule, series)
            if not alert.firing:
                raise NotFiring(f"alert rule {rule_id} is not firing for {series}")
            before = {"acknowledged_by": _name(alert.acknowledged_by) if alert.acknowledged_at else None}
            SeriesAlert.objects.filter(pk=alert.pk).update(acknowledged_at=now, acknowledged_by=user)
            _history(rule, AlertEvent.Kind.ACKNOWLEDGED, user, labels_text(alert.labels), alert.series)
            after = {"acknowledged_by": _name(user), "series": alert.series}
            _audit("ack_alert", rule, before, after, user, address, alert)
            return rule.as_state()
        if not rule.firing:
            raise NotFiring(f"alert rule {rule_id} is not firing")
        before = {"acknowledged_by": _name(rule.acknowledged_by) if rule.acknowledged_at else None}
        rule.acknowledged_at, rule.acknowledged_by = now, user
        _store(rule, "acknowledged_at", "acknowledged_by")
        rule.series_alerts.filter(firing=True).update(acknowledged_at=now, acknowledged_by=user)
        _history(rule, AlertEvent.Kind.ACKNOWLEDGED, user)
        _audit("ack_alert", rule, before, {"acknowledged_by": _name(user)}, user, address)
        return rule.as_state()


def silence(rule_id, minutes, user, address="", series=None):
    """Notify nobody about this rule, or this series of it, for `minutes` (a maintenance window)."""
    minutes = validate_minutes(minutes)
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        until = timezone.now() + timedelta(minutes=minutes)
        if series is not None:
            alert = _series_alert(rule, series, create=True)
            before = {"silenced_until": _iso(alert.silenced_until if alert.is_silenced() else None)}
            SeriesAlert.objects.filter(pk=alert.pk).update(silenced_until=until, silenced_by=user)
            detail = f"{labels_text(alert.labels)} for {minutes} min, until {_iso(until)}"
            _history(rule, AlertEvent.Kind.SILENCED, user, detail[:200], alert.series)
            after = {"silenced_until": _iso(until), "minutes": minutes, "series": alert.series}
            _audit("silence_alert", rule, before, after, user, address, alert)
            return rule.as_state()
        before = {"silenced_until": _iso(rule.silenced_until if rule.is_silenced() else None)}
        rule.silenced_until, rule.silenced_by = until, user
        _store(rule, "silenced_until", "silenced_by")
        _history(rule, AlertEvent.Kind.SILENCED, user, f"for {minutes} min, until {_iso(until)}")
        _audit(
            "silence_alert", rule, before, {"silenced_until": _iso(until), "minutes": minutes}, user, address
        )
        return rule.as_state()


def unsilence(rule_id, user, address="", series=None):
    """Lift a silence: the series' own, or without `series` the rule's and every series' one."""
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        if series is not None:
            alert = _series_alert(rule, series)
            before = {"silenced_until": _iso(alert.silenced_until if alert.is_silenced() else None)}
            SeriesAlert.objects.filter(pk=alert.pk).update(silenced_until=None, silenced_by=None)
            _history(rule, AlertEvent.Kind.UNSILENCED, user, labels_text(alert.labels), alert.series)
            after = {"silenced_until": None, "series": alert.series}
            _audit("unsilence_alert", rule, before, after, user, address, alert)
            return rule.as_state()
        before = {"silenced_until": _iso(rule.silenced_until if rule.is_silenced() else None)}
        rule.silenced_until, rule.silenced_by = None, None
        _store(rule, "silenced_until", "silenced_by")
        rule.series_alerts.filter(silenced_until__isnull=False).update(silenced_until=None, silenced_by=None)
        _history(rule, AlertEvent.Kind.UNSILENCED, user)
        _audit("unsilence_alert", rule, before, {"silenced_until": None}, user, address)
        return rule.as_state()


def _store(rule, *fields):
    # update(), not save(): the action writes its own audit entry, the save signal would add another.
    AlertRule.objects.filter(pk=rule.pk).update(**{name: getattr(rule, name) for name in fields})


def validate_minutes(minutes):
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ValueError("minutes must be a whole number")
    if not MIN_SILENCE_MINUTES <= minutes <= MAX_SILENCE_MINUTES:
        raise ValueError(f"minutes must be from {MIN_SILENCE_MINUTES} to {MAX_SILENCE_MINUTES}")
    return minutes


def active_states(now=None):
    """The rules a page should show: firing or silenced right now, the rule or a series of it;
    each with its series that fire or are silenced."""
    now = now or timezone.now()
    shown = SeriesAlert.objects.filter(Q(firing=True) | Q(silenced_until__gt=now))
    by_rule = {}
    for alert in shown.select_related("acknowledged_by", "silenced_by"):
        by_rule.setdefault(alert.rule_id, []).append(alert)
    rules = AlertRule.objects.filter(enabled=True).select_related("metric", "acknowledged_by", "silenced_by")
    return [
        rule.as_state(now, series=by_rule.get(rule.pk, []))
        for rule in rules
        if rule.firing or rule.is_silenced(now) or rule.pk in by_rule
    ]


def _name(user):
    return user.get_username() if user is not None else None


def _iso(value):
    return value.isoformat() if value is not None else None


# Moved by every change of a rule's state, so the workers' cached hello states are
# never reused past one (dashboard.control.hello.hello_alerts).
VERSION_KEY = ("alerts", "version")


def bump_version_quietly():
    try:
        get_sync_client().incr(key(*VERSION_KEY))
    except (RedisError, OSError) as exc:
        logger.warning("could not bump the alerts version: %s", exc)


async def aversion():
    return int(await get_async_client().get(key(*VERSION_KEY)) or 0)


def broadcast(state, change, by=None, series=None):
    """Tell every open page (every worker) that a rule (`series`: one series' alert of it)
    changed; quiet if Redis is away: pages get the current states again in their next hello."""
    bump_version_quietly()
    group_send_quietly(DASHBOARD_GROUP, events.alert_changed(state, change, by, series))

"""Acknowledging and silencing alert rules, from the page (the WebSocket commands)
or anywhere else. Each action is one transaction: the rule, its history event and
the audit entry are written together. Returns the rule's new `as_state()`, which
the caller broadcasts to every open page."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from alerts.models import MAX_SILENCE_MINUTES, MIN_SILENCE_MINUTES, AlertEvent, AlertRule
from audit.services import record
from dashboard.access import ALERT_PERMISSION, has_permission
from dashboard.control import events
from dashboard.groups import DASHBOARD_GROUP, group_send_quietly
from dashboard.redis import get_async_client, get_sync_client, key

logger = logging.getLogger(__name__)


def can_manage_alerts(user):
    """`ack_alert`, `silence_alert`, `unsilence_alert`, and their buttons on the page."""
    return has_permission(user, ALERT_PERMISSION)


class RuleNotFound(Exception):
    pass


class NotFiring(Exception):
    pass


def _locked_rule(rule_id):
    rule = AlertRule.objects.select_for_update().select_related("metric").filter(pk=rule_id).first()
    if rule is None:
        raise RuleNotFound(f"there is no alert rule {rule_id}")
    return rule


def _history(rule, kind, user, detail=""):
    AlertEvent.objects.create(
        rule=rule, kind=kind, actor=user, actor_name=user.get_username() if user else "", detail=detail
    )


def _audit(action, rule, before, after, user, address):
    record(
        action,
        f"alert rule #{rule.pk}: {rule.display_name}",
        before,
        after,
        actor=user.get_username() if user else "",
        address=address or "",
    )


def acknowledge(rule_id, user, address=""):
    """Someone is on it: no more repeats of this firing. Only a firing rule can be acknowledged."""
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        if not rule.firing:
            raise NotFiring(f"alert rule {rule_id} is not firing")
        before = {"acknowledged_by": _name(rule.acknowledged_by) if rule.acknowledged_at else None}
        rule.acknowledged_at, rule.acknowledged_by = timezone.now(), user
        _store(rule, "acknowledged_at", "acknowledged_by")
        _history(rule, AlertEvent.Kind.ACKNOWLEDGED, user)
        _audit("ack_alert", rule, before, {"acknowledged_by": _name(user)}, user, address)
        return rule.as_state()


def silence(rule_id, minutes, user, address=""):
    """Notify nobody about this rule for `minutes` (a maintenance window)."""
    minutes = validate_minutes(minutes)
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        before = {"silenced_until": _iso(rule.silenced_until if rule.is_silenced() else None)}
        rule.silenced_until, rule.silenced_by = timezone.now() + timedelta(minutes=minutes), user
        _store(rule, "silenced_until", "silenced_by")
        until = _iso(rule.silenced_until)
        _history(rule, AlertEvent.Kind.SILENCED, user, f"for {minutes} min, until {until}")
        _audit("silence_alert", rule, before, {"silenced_until": until, "minutes": minutes}, user, address)
        return rule.as_state()


def unsilence(rule_id, user, address=""):
    with transaction.atomic():
        rule = _locked_rule(rule_id)
        before = {"silenced_until": _iso(rule.silenced_until if rule.is_silenced() else None)}
        rule.silenced_until, rule.silenced_by = None, None
        _store(rule, "silenced_until", "silenced_by")
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
    """The rules a page should show: firing or silenced right now."""
    now = now or timezone.now()
    rules = AlertRule.objects.filter(enabled=True).select_related("metric", "acknowledged_by", "silenced_by")
    return [rule.as_state(now) for rule in rules if rule.firing or rule.is_silenced(now)]


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


def broadcast(state, change, by=None):
    """Tell every open page (every worker) that a rule changed; quiet if Redis is away:
    pages get the current states again in their next hello."""
    bump_version_quietly()
    group_send_quietly(DASHBOARD_GROUP, events.alert_changed(state, change, by))

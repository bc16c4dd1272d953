"""Alert rules as code: the one JSON form of a rule, for the API (api/alert_rules.py)
and for provisioning files (ALERT_RULES_DIR, `provision_alert_rules`).

    {"name", "match": SELECTOR, "condition": "above"|"below", "threshold", "for": seconds,
     "group_by"?: [label, ...], "group_wait"?, "group_interval"?, "repeat_interval"?
     (seconds), "notify": {"user": U} | {"group": G} | {"all": true}, "enabled"?}

A rule given this way is replaced whole: an optional key left out takes its
default. `repeat_interval` is kept in whole minutes (rounded up); 0 never repeats.
"""

import math

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from alerts.models import AlertRule, Comparison, validate_group_by
from dashboard import selectors

KEYS = {
    "name",
    "match",
    "condition",
    "threshold",
    "for",
    "group_by",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "notify",
    "enabled",
}
REQUIRED = ("match", "condition", "threshold", "for", "notify")
DEFAULT_REPEAT_SECONDS = 4 * 3600
# A day is the longest any wait or interval may be (a week for repeats).
MAX_WAIT_SECONDS = 86400
MAX_REPEAT_SECONDS = 7 * 86400
NAME_MAX_LENGTH = AlertRule._meta.get_field("name").max_length


class Conflict(Exception):
    """The rule cannot be changed this way (provisioned from a file, or a name shared)."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code


def as_json(rule):
    if rule.recipient_user_id:
        to = {"user": rule.recipient_user.get_username()}
    elif rule.recipient_group_id:
        to = {"group": rule.recipient_group.name}
    else:
        to = {"all": True}
    return {
        "name": rule.name,
        "match": rule.match,
        "condition": rule.comparison,
        "threshold": rule.threshold,
        "for": rule.sustain_seconds,
        "group_by": list(rule.group_by or []),
        "group_wait": rule.group_wait,
        "group_interval": rule.group_interval,
        "repeat_interval": rule.repeat_minutes * 60,
        "notify": to,
        "enabled": rule.enabled,
    }


def validate_name(name):
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError("name must be non-empty text without leading or trailing spaces")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"name must be at most {NAME_MAX_LENGTH} characters")
    if "/" in name:
        raise ValueError("name must not contain '/' (it is part of the rule's URL)")
    return name


def _seconds(data, key, default, maximum):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number of seconds")
    if not 0 <= value <= maximum:
        raise ValueError(f"{key} must be from 0 to {maximum} seconds")
    return value


def _recipients(notify):
    if not isinstance(notify, dict) or len(notify) != 1:
        raise ValueError('notify must be exactly one of {"user": U}, {"group": G}, {"all": true}')
    ((kind, value),) = notify.items()
    if kind == "all":
        if value is not True:
            raise ValueError('notify: "all" must be true')
        return None, None
    if kind == "user":
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: value}).first() if isinstance(value, str) else None
        if user is None:
            raise ValueError(f"notify: unknown user {value!r}")
        return user, None
    if kind == "group":
        group = Group.objects.filter(name=value).first() if isinstance(value, str) else None
        if group is None:
            raise ValueError(f"notify: unknown group {value!r}")
        return None, group
    raise ValueError(f'notify: expected "user", "group" or "all", got {kind!r}')


def apply(rule, data, name):
    """Set `rule` from the JSON `data` (all of it: what is left out takes its default);
    `ValueError` naming the first problem, with the rule left unsaved."""
    if not isinstance(data, dict):
        raise ValueError("an alert rule is a JSON object")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(unknown)}")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ValueError(f"missing keys: {', '.join(missing)}")
    if data.get("name", name) != name:
        raise ValueError(f"name {data['name']!r} differs from the rule's name {name!r} in the URL")
    match = data["match"]
    if not isinstance(match, str):
        raise ValueError("match must be a selector (text)")
    selectors.parse(match)  # SelectorError (a ValueError) says what is wrong and where
    if data["condition"] not in Comparison.values:
        raise ValueError('condition must be "above" or "below"')
    threshold = data["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        raise ValueError("threshold must be a finite number")
    group_by = data.get("group_by", [])
    validate_group_by(group_by)
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValueError("enabled must be true or false")
    repeat = _seconds(data, "repeat_interval", DEFAULT_REPEAT_SECONDS, MAX_REPEAT_SECONDS)
    rule.recipient_user, rule.recipient_group = _recipients(data["notify"])
    rule.name = validate_name(name)
    rule.match = match
    rule.comparison = data["condition"]
    rule.threshold = float(threshold)
    rule.sustain_seconds = math.ceil(_seconds(data, "for", 0, MAX_WAIT_SECONDS))
    rule.group_by = list(group_by)
    rule.group_wait = math.ceil(_seconds(data, "group_wait", 30, MAX_WAIT_SECONDS))
    rule.group_interval = math.ceil(_seconds(data, "group_interval", 300, MAX_WAIT_SECONDS))
    rule.repeat_minutes = math.ceil(repeat / 60)
    rule.enabled = enabled
    if rule.metric_id is not None and rule.metric.key != selectors.parse(match).metric_name:
        rule.metric = None  # found again from the new selector when saved
    try:
        rule.full_clean()
    except ValidationError as exc:
        raise ValueError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    return rule


def find(name):
    """The rule named `name`, or None; `Conflict` when several share it (made in the admin)."""
    rules = list(
        AlertRule.objects.filter(name=name).select_related("metric", "recipient_user", "recipient_group")[:2]
    )
    if len(rules) > 1:
        raise Conflict("conflict", f"several alert rules are named {name!r}; rename them in the admin")
    return rules[0] if rules else None


def put(name, data, provisioned_from=""):
    """Create or replace the rule `name` from `data`: (rule, created). A rule that follows
    a file is changed only by provisioning from that file (`Conflict` otherwise)."""
    validate_name(name)
    with transaction.atomic():
        rule = find(name)
        created = rule is None
        if rule is None:
            rule = AlertRule(name=name)
        elif rule.provisioned_from and rule.provisioned_from != provisioned_from:
            raise Conflict(
                "provisioned", f"alert rule {name!r} follows {rule.provisioned_from}: change it there"
            )
        apply(rule, data, name)
        rule.provisioned_from = provisioned_from
        rule.save()
    return rule, created


def delete(name):
    """Delete the rule `name`; False when there is none."""
    with transaction.atomic():
        rule = find(name)
        if rule is None:
            return False
        if rule.provisioned_from:
            raise Conflict(
                "provisioned", f"alert rule {name!r} follows {rule.provisioned_from}: remove it there"
            )
        rule.delete()
    return True


def listing():
    rules = AlertRule.objects.exclude(name="").select_related("metric", "recipient_user", "recipient_group")
    return [as_json(rule) for rule in rules.order_by("name", "id")]

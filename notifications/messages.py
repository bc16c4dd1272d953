"""Notifications the product writes itself (alert rules firing, repeating and resolving), kept as a
message id and its parameters so each viewer reads them in their own language.

The row's `title` and `body` hold the English text (the admin, e-mail and webhooks
read those); the page renders `message_id` + `message_params` again in the language
of each socket, with numbers formatted for that locale.
"""

from django.utils import formats, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

# id -> (title, body), both with %(name)s placeholders. Numbers are formatted per locale.
MESSAGES = {
    "alert.fired": (
        gettext_noop("%(rule)s: %(metric)s is %(value)s%(unit)s"),
        gettext_noop("%(metric)s has been %(comparison)s %(threshold)s%(unit)s for %(sustain)s s."),
    ),
    "alert.repeated": (
        gettext_noop("Still firing: %(rule)s: %(metric)s is %(value)s%(unit)s"),
        gettext_noop("Not acknowledged yet. %(metric)s is still out of range."),
    ),
    "alert.resolved": (
        gettext_noop("Resolved: %(rule)s"),
        gettext_noop("%(metric)s is back in range: %(metric)s is %(value)s%(unit)s."),
    ),
    "alert.no_data": (
        gettext_noop("Resolved: %(rule)s"),
        gettext_noop("%(metric)s has sent nothing for a while, so its alert is resolved."),
    ),
    # Several alerts of one group (alerts/grouping.py) in one message; `details` lists them.
    "alert.group": (
        gettext_noop("%(rule)s: %(firing)s firing, %(resolved)s resolved"),
        "%(details)s",
    ),
    "alert.group.repeated": (
        gettext_noop("Still firing: %(rule)s: %(firing)s firing, %(resolved)s resolved"),
        "%(details)s",
    ),
    "alert.disabled": (
        gettext_noop("Resolved: %(rule)s"),
        gettext_noop("The rule was disabled, so it no longer watches %(metric)s."),
    ),
}
# Parameters that are numbers, shown with the viewer's decimal separator.
NUMBER_PARAMS = ("value", "threshold", "sustain")
# Parameters that are words the catalogue knows ("above", "below").
WORD_PARAMS = ("comparison",)
TITLE_LIMIT = 120


def render(message_id, params, language=None):
    """(title, body) of a known message in `language` (the active one if None);
    None for an unknown id, so a row from a newer version still shows its stored text."""
    templates = MESSAGES.get(message_id)
    if templates is None or not isinstance(params, dict):
        return None
    with translation.override(language or translation.get_language()):
        values = {}
        for name, value in params.items():
            if name in NUMBER_PARAMS and isinstance(value, int | float):
                values[name] = _number(value)
            elif name in WORD_PARAMS and isinstance(value, str):
                values[name] = _(value)
            elif name in ("metric", "rule") and isinstance(value, str):
                values[name] = _(value)  # built-in metric labels are in the catalogue
            else:
                values[name] = value
        if not values.get("rule"):
            values["rule"] = _("%(metric)s %(comparison)s %(threshold)s") % {
                "metric": values.get("metric", ""),
                "comparison": values.get("comparison", ""),
                "threshold": values.get("threshold", ""),
            }
        try:
            title, body = (_(template) % values for template in templates)
        except (KeyError, TypeError, ValueError):
            return None
    # One series of a rule on a selector: its labels name it, in every language alike.
    if isinstance(params.get("labels"), str) and params["labels"]:
        title = f"{title} ({params['labels']})"
    return _clip(title), body


def localize_rule(state, language):
    """An alert rule's state (`AlertRule.as_state()`) with an unnamed rule's name,
    "<metric> <comparison> <threshold>", said in `language` like its notifications."""
    params = state.get("name_params") if isinstance(state, dict) else None
    if not isinstance(params, dict):
        return state
    with translation.override(language or translation.get_language()):
        threshold = params.get("threshold")
        name = _("%(metric)s %(comparison)s %(threshold)s") % {
            "metric": _(str(params.get("metric", ""))),
            "comparison": _(str(params.get("comparison", ""))),
            "threshold": _number(threshold) if isinstance(threshold, int | float) else threshold,
        }
    return {**state, "name": name}


def localize(payload, message, language):
    """A notification dict (`Notification.as_dict()`) with title and body in `language`."""
    if not message:
        return payload
    rendered = render(message.get("id"), message.get("params"), language)
    if rendered is None:
        return payload
    return {**payload, "title": rendered[0], "body": rendered[1]}


def _number(value):
    # Up to 3 decimals, no trailing zeros: 85 -> "85", 92.5 -> "92,5" in Spanish.
    value = round(float(value), 3)
    return formats.number_format(int(value) if value.is_integer() else value, use_l10n=True)


def _clip(title, limit=TITLE_LIMIT):
    return title if len(title) <= limit else title[: limit - 1] + "…"

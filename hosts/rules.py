"""The built-in "Host down" alert rule, made by the collector when it starts.

It is an ordinary rule (alerts.models.AlertRule) on the `host_up` values the
evaluator derives from hosts.liveness: firing, acknowledging, silencing, grouping,
escalation, maintenance windows and notifications all go the normal way. Once made
it is the administrators': its recipients, grouping or `enabled` are never touched
again (disable it to have no host-down alerts; deleting it makes it come back at the
next collector start).
"""

from django.utils.translation import gettext_noop

from alerts.models import AlertRule, Comparison
from hosts.liveness import UP_METRIC
from notifications.models import Level

# In the catalogue: the page says a notification's rule name in each viewer's language
# (notifications/messages.py), as long as nobody renamed the rule.
NAME = gettext_noop("Host down")


def register_host_down_rule(**overrides):
    """The rule, made if no rule has its name; returns (rule, created)."""
    defaults = {
        "match": UP_METRIC,
        "comparison": Comparison.BELOW,
        "threshold": 1,
        # The tracker already waited DOWN_INTERVALS of the host's interval.
        "sustain_seconds": 0,
        "cooldown_seconds": 60,
        "level": Level.ERROR,
        # One message for every host that went quiet together (a switch, a rack).
        "group_by": [],
        **overrides,
    }
    return AlertRule.objects.get_or_create(name=NAME, defaults=defaults)

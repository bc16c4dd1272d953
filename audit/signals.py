"""Configuration changes recorded from model signals: alert rules, maintenance windows, metrics,
delivery channels and API tokens, whoever saves them (the admin, a command, code).

Writes made with `QuerySet.update()` send no signals; the product uses them for
runtime state (a rule's firing flag, a delivery's attempts), which is not configuration.
"""

import json

from django.apps import apps
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models.signals import post_delete, post_save, pre_save

from audit.services import record

# "app_label.Model" of every audited model; those not installed are skipped.
AUDITED_MODELS = (
    "dashboard.Metric",
    "alerts.AlertRule",
    "alerts.MaintenanceWindow",
    "notifications.DeliveryChannel",
    "api.ApiToken",
    "scrape.ScrapeTarget",
)
# Never written to the log, only whether they changed.
SECRET_FIELDS = {
    "secret",
    "key",
    "key_hash",
    "token_hash",
    "digest",
    "password",
    "sealed_target",
    "sealed_bearer_token",
}
MASK = "(secret)"


def connect_audited_models():
    for label in AUDITED_MODELS:
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        uid = f"audit:{label}"
        pre_save.connect(_remember_before, sender=model, dispatch_uid=uid)
        post_save.connect(_record_save, sender=model, dispatch_uid=uid)
        post_delete.connect(_record_delete, sender=model, dispatch_uid=uid)


def snapshot(instance):
    """The instance's stored fields as JSON-ready values (secrets still in: see masked())."""
    data = {}
    for field in instance._meta.concrete_fields:
        if not field.primary_key:
            data[field.attname if field.is_relation else field.name] = field.value_from_object(instance)
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def masked(data):
    if data is None:
        return None
    return {name: (MASK if value else "") if name in SECRET_FIELDS else value for name, value in data.items()}


def _action(instance, verb):
    return f"{instance._meta.model_name}.{verb}"


def _target(instance):
    return f"{instance._meta.verbose_name} #{instance.pk}: {instance}"[:200]


def _remember_before(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        instance._audit_before = None
        return
    stored = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = snapshot(stored) if stored is not None else None


def _record_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    before = None if created else getattr(instance, "_audit_before", None)
    after = snapshot(instance)
    if not created and before is not None:
        if before == after:
            return  # saved unchanged: nothing to tell
        changed = {name for name in after if before.get(name) != after.get(name)}
        before = {name: before.get(name) for name in sorted(changed)}
        after = {name: after[name] for name in sorted(changed)}
    verb = "created" if created else "changed"
    record(_action(instance, verb), _target(instance), masked(before), masked(after))


def _record_delete(sender, instance, **kwargs):
    record(_action(instance, "deleted"), _target(instance), masked(snapshot(instance)), None)

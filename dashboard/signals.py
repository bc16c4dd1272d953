"""Admin edits reach open dashboards: a metric or alert rule saved or deleted pushes a
`metric-config` event (after the commit) so pages redraw with the new label, unit,
thresholds and rule lines without a reload."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from dashboard.live import publish_config_change
from dashboard.models import Metric
from notifications.models import AlertRule


@receiver(post_save, sender=Metric)
def metric_saved(sender, instance, created, raw=False, **kwargs):
    # A new metric reaches pages with its first value (frames and `metric` events).
    if not created and not raw:
        publish_config_change(instance.key)


@receiver(post_delete, sender=Metric)
def metric_deleted(sender, instance, **kwargs):
    publish_config_change(instance.key)


@receiver(post_save, sender=AlertRule)
@receiver(post_delete, sender=AlertRule)
def rule_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    metric = Metric.objects.filter(pk=instance.metric_id).values_list("key", flat=True).first()
    if metric is not None:  # None: the rule went with its metric, which said so itself
        publish_config_change(metric)

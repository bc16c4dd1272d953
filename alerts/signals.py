"""An alert rule saved or deleted (the admin, code) pushes its metric's `metric-config`
event after the commit, so open pages redraw the rule's threshold line without a reload."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from alerts.models import AlertRule
from dashboard.live import publish_config_change
from dashboard.models import Metric


@receiver(post_save, sender=AlertRule)
@receiver(post_delete, sender=AlertRule)
def rule_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    metric = Metric.objects.filter(pk=instance.metric_id).values_list("key", flat=True).first()
    if metric is not None:  # None: the rule went with its metric, which said so itself
        publish_config_change(metric)

"""Admin edits reach open dashboards: a metric saved or deleted pushes a
`metric-config` event (after the commit) so pages redraw with the new label, unit and
thresholds without a reload (`alerts.signals` does the same for alert rules)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from dashboard.live import publish_config_change
from dashboard.models import Metric


@receiver(post_save, sender=Metric)
def metric_saved(sender, instance, created, raw=False, **kwargs):
    # A new metric reaches pages with its first value (frames and `metric` events).
    if not created and not raw:
        publish_config_change(instance.key)


@receiver(post_delete, sender=Metric)
def metric_deleted(sender, instance, **kwargs):
    publish_config_change(instance.key)

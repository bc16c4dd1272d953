"""Line protocol's old metric keys become the labelled series the line protocol now makes.

Before labels, `cpu,host=a usage=1` became the metric key `cpu__usage__host__a`: the
measurement, the field (left out for `value` without tags), then each tag's key and
value, tags sorted, joined by `__`, every part a slug not starting or ending with `_`
and without `__`. Today it is the series `cpu_usage{host="a"}` (the name is the
measurement when the field is `value`, else `<measurement>_<field>`). This migration
moves each old key it can read back that way: its rollups go to the new series'
storage key (merged into any the series already has), the new series is registered,
and the old metric's row gives way to one for the new name (its label, unit,
thresholds and order carried over when the name has none yet).

Left as they are, and why:
- keys of the hashed form (`..___<digest>`): the digest cannot be reversed;
- keys that do not split into the old scheme's parts (an odd count, a part that is
  not plain, tags out of order, a tag key that is no label name): not made by it;
- metrics something refers to (an alert rule): moving them would change what the
  rule watches; such a rule and its metric stay until someone re-creates the rule.
A name pushed by other means that happens to read as the old scheme (say
`disk__free`) cannot be told apart from one line protocol made, and is moved too.
"""

import re

from django.db import migrations

PLAIN = re.compile(r"^(?!_)(?!.*__)[-A-Za-z0-9_]+(?<!_)$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def new_series(key):
    """(name, labels) the old line-protocol key `key` stands for, or None."""
    if "___" in key:
        return None
    parts = key.split("__")
    if len(parts) < 2 or len(parts) % 2 or not all(PLAIN.match(part) for part in parts):
        return None
    measurement, field, tags = parts[0], parts[1], parts[2:]
    if field == "value" and not tags:
        return None  # the old scheme wrote such a line as the measurement alone
    tag_keys = tags[0::2]
    if tag_keys != sorted(tag_keys) or len(set(tag_keys)) != len(tag_keys):
        return None
    if not all(LABEL_NAME.match(tag) for tag in tag_keys) or len(tag_keys) > 16:
        return None
    name = measurement if field == "value" else f"{measurement}_{field}"
    return name, dict(zip(tag_keys, tags[1::2], strict=True))


def referenced(metric):
    for relation in metric._meta.related_objects:
        if relation.related_model.objects.filter(**{relation.field.name: metric}).exists():
            return True
    return False


def move_history(MetricRollup, old_key, new_key):
    if not MetricRollup.objects.filter(key=new_key).exists():
        MetricRollup.objects.filter(key=old_key).update(key=new_key)
        return
    for row in MetricRollup.objects.filter(key=old_key):
        existing = MetricRollup.objects.filter(key=new_key, tier=row.tier, bucket=row.bucket).first()
        if existing is None:
            row.key = new_key
            row.save(update_fields=["key"])
            continue
        existing.count += row.count
        existing.sum += row.sum
        existing.min = min(existing.min, row.min)
        existing.max = max(existing.max, row.max)
        existing.save(update_fields=["count", "sum", "min", "max"])
        row.delete()


def forwards(apps, schema_editor):
    from dashboard import series

    Metric = apps.get_model("dashboard", "Metric")
    MetricRollup = apps.get_model("dashboard", "MetricRollup")
    Series = apps.get_model("dashboard", "Series")
    old_keys = set(Metric.objects.filter(key__contains="__").values_list("key", flat=True))
    old_keys |= set(MetricRollup.objects.filter(key__contains="__").values_list("key", flat=True).distinct())
    for old_key in sorted(old_keys):
        mapped = new_series(old_key)
        if mapped is None:
            continue
        name, labels = mapped
        metric = Metric.objects.filter(key=old_key).first()
        if metric is not None and referenced(metric):
            continue
        series_id = series.series_id(name, labels)
        new_key = series.storage_key(series_id)
        move_history(MetricRollup, old_key, new_key)
        Series.objects.filter(key=old_key).delete()
        Series.objects.get_or_create(
            key=new_key,
            defaults={"series_id": series_id, "name": name, "labels": series.validate_labels(labels)},
        )
        if metric is not None:
            carried = {
                field: getattr(metric, field)
                for field in (
                    "label",
                    "unit",
                    "source",
                    "enabled",
                    "warning_threshold",
                    "critical_threshold",
                    "display_order",
                )
            }
            Metric.objects.get_or_create(key=name, defaults=carried)
            metric.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0006_series"),
        # Alert rules refer to metrics: they must be in the state this migration reads.
        ("notifications", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

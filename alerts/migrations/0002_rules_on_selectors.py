"""Rules watch a selector instead of one metric, and each series has its own alert.

Every existing rule gets `match = "<its metric's key>"`, so it watches the same
series as before; a rule that was firing keeps firing as that series' alert (with
its acknowledgement), so the upgrade neither re-fires nor forgets it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def rules_to_selectors(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    SeriesAlert = apps.get_model("alerts", "SeriesAlert")
    for rule in AlertRule.objects.filter(match="").select_related("metric"):
        rule.match = rule.metric.key
        rule.save(update_fields=["match"])
        if rule.firing:
            # An unlabelled series' id and storage key are its name.
            SeriesAlert.objects.get_or_create(
                rule=rule,
                key=rule.metric.key,
                defaults={
                    "series": rule.metric.key,
                    "firing": True,
                    "last_fired_at": rule.last_fired_at,
                    "acknowledged_at": rule.acknowledged_at,
                    "acknowledged_by_id": rule.acknowledged_by_id,
                },
            )


def selectors_to_rules(apps, schema_editor):
    # Back to one metric per rule: a rule on a selector naming no metric cannot go back.
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(metric__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0001_initial"),
        ("dashboard", "0005_threshold_names"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="alertrule",
            options={"ordering": ["match", "id"]},
        ),
        migrations.AddField(
            model_name="alertevent",
            name="series",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="alertrule",
            name="match",
            field=models.CharField(
                blank=True,
                help_text='A series selector: cpu, cpu{host=~"web.*"}; empty: the metric\'s series.',
                max_length=1000,
            ),
        ),
        migrations.AlterField(
            model_name="alertrule",
            name="metric",
            field=models.ForeignKey(
                blank=True,
                help_text="The chart showing the threshold; empty: the selector's metric.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="alert_rules",
                to="dashboard.metric",
            ),
        ),
        migrations.CreateModel(
            name="SeriesAlert",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("series", models.TextField()),
                ("key", models.CharField(max_length=97)),
                ("labels", models.JSONField(default=dict)),
                ("firing", models.BooleanField(default=False)),
                ("value", models.FloatField(blank=True, null=True)),
                ("last_fired_at", models.DateTimeField(blank=True, null=True)),
                ("last_resolved_at", models.DateTimeField(blank=True, null=True)),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                ("silenced_until", models.DateTimeField(blank=True, null=True)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "rule",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="series_alerts",
                        to="alerts.alertrule",
                    ),
                ),
                (
                    "silenced_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["rule", "series"],
                "constraints": [
                    models.UniqueConstraint(fields=("rule", "key"), name="one_alert_per_rule_and_series")
                ],
            },
        ),
        migrations.RunPython(rules_to_selectors, selectors_to_rules),
    ]

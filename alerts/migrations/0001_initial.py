"""Alert rules and their history move here from `notifications`, keeping their tables
(`notifications_alertrule`, `notifications_alertevent`) and every row: the models
are created in this app's state only, and `notifications` 0007 drops them from its
own. The content types move too, so the permissions granted on alert rules (and
the admin log entries about them) stay with them."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MOVED = ("alertrule", "alertevent")


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="alerts", model=model).exists():
            ContentType.objects.filter(app_label="notifications", model=model).update(app_label="alerts")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label="notifications", model=model).exists():
            ContentType.objects.filter(app_label="alerts", model=model).update(app_label="notifications")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("dashboard", "0005_threshold_names"),
        # The tables exist, in their last shape, from here on.
        ("notifications", "0006_notification_message"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AlertRule",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "name",
                            models.CharField(
                                blank=True, help_text="Defaults to the metric's label.", max_length=80
                            ),
                        ),
                        (
                            "comparison",
                            models.CharField(
                                choices=[("above", "above"), ("below", "below")],
                                default="above",
                                max_length=5,
                            ),
                        ),
                        ("threshold", models.FloatField()),
                        (
                            "sustain_seconds",
                            models.PositiveIntegerField(
                                default=60,
                                help_text=(
                                    "How long the value must stay out of range (and then back in range)."
                                ),
                            ),
                        ),
                        (
                            "level",
                            models.CharField(
                                choices=[
                                    ("info", "Info"),
                                    ("success", "Success"),
                                    ("warning", "Warning"),
                                    ("error", "Error"),
                                ],
                                default="warning",
                                max_length=10,
                            ),
                        ),
                        (
                            "cooldown_seconds",
                            models.PositiveIntegerField(
                                default=300, help_text="After a resolve, do not fire again for this long."
                            ),
                        ),
                        (
                            "repeat_minutes",
                            models.PositiveIntegerField(
                                default=60,
                                help_text=(
                                    "While firing and not acknowledged, notify again this often; 0: never."
                                ),
                            ),
                        ),
                        ("enabled", models.BooleanField(default=True)),
                        ("firing", models.BooleanField(default=False, editable=False)),
                        ("last_fired_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        ("last_resolved_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        ("acknowledged_at", models.DateTimeField(blank=True, editable=False, null=True)),
                        (
                            "silenced_until",
                            models.DateTimeField(
                                blank=True,
                                help_text=(
                                    "Maintenance window: the rule notifies nobody until then"
                                    " (it still shows firing)."
                                ),
                                null=True,
                            ),
                        ),
                        (
                            "acknowledged_by",
                            models.ForeignKey(
                                blank=True,
                                editable=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "metric",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="alert_rules",
                                to="dashboard.metric",
                            ),
                        ),
                        (
                            "recipient_group",
                            models.ForeignKey(
                                blank=True,
                                help_text="Leave empty to notify everyone.",
                                null=True,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="alert_rules",
                                to="auth.group",
                            ),
                        ),
                        (
                            "silenced_by",
                            models.ForeignKey(
                                blank=True,
                                editable=False,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "notifications_alertrule",
                        "ordering": ["metric__key", "id"],
                    },
                ),
                migrations.CreateModel(
                    name="AlertEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("fired", "Fired"),
                                    ("repeated", "Repeated"),
                                    ("resolved", "Resolved"),
                                    ("acknowledged", "Acknowledged"),
                                    ("silenced", "Silenced"),
                                    ("unsilenced", "Unsilenced"),
                                ],
                                max_length=12,
                            ),
                        ),
                        ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("actor_name", models.CharField(blank=True, max_length=150)),
                        ("detail", models.CharField(blank=True, max_length=200)),
                        (
                            "actor",
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
                                related_name="events",
                                to="alerts.alertrule",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "notifications_alertevent",
                        "ordering": ["-at", "-id"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]

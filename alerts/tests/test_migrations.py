"""Moving the alert models to this app keeps what was granted on them: the content
types move with them, so a permission given as `notifications.change_alertrule`
is `alerts.change_alertrule` afterwards, on the same rows."""

from importlib import import_module

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType

from alerts.models import AlertRule

initial = import_module("alerts.migrations.0001_initial")


def test_the_content_types_and_their_permissions_move_with_the_models(db, staff):
    # As a database migrated before the move has them.
    moved = ContentType.objects.filter(app_label="alerts", model__in=initial.MOVED)
    assert moved.count() == 2
    moved.update(app_label="notifications")
    ContentType.objects.clear_cache()
    permission = Permission.objects.get(codename="change_alertrule")
    staff.user_permissions.add(permission)

    initial.move_content_types(apps, schema_editor=None)

    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(AlertRule).app_label == "alerts"
    assert Permission.objects.get(codename="change_alertrule").pk == permission.pk
    staff = type(staff).objects.get(pk=staff.pk)  # a fresh permission cache
    assert staff.has_perm("alerts.change_alertrule")

    initial.move_content_types_back(apps, schema_editor=None)
    assert ContentType.objects.filter(app_label="notifications", model__in=initial.MOVED).count() == 2
    ContentType.objects.clear_cache()

"""The roles Viewer, Operator and Admin (accounts.roles), with their permissions.

Permissions are made by Django after `migrate`, so on a fresh database this step
makes those of the apps before it itself; each later `migrate` tops the roles up
(accounts.roles.on_post_migrate)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from accounts.roles import grant_role_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_role_permissions(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    from accounts.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("dashboard", "0005_threshold_names"),
        ("notifications", "0007_alerts_moved_to_their_app"),
        ("alerts", "0001_initial"),
        ("api", "0001_initial"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]

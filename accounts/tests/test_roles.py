"""The roles a migration creates, what each may do, and Admin's `is_staff`."""

import pytest
from django.contrib.auth.models import Group, Permission, User

from accounts import roles
from dashboard import access

pytestmark = pytest.mark.django_db


def permission_names(group):
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


def member_of(role, username="someone"):
    user = User.objects.create_user(username, password="x-not-used-x")
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


def test_the_migration_creates_the_three_roles():
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == set(roles.ROLES)
    assert permission_names(Group.objects.get(name="Viewer")) == {"dashboard.view_metric"}
    operator = permission_names(Group.objects.get(name="Operator"))
    assert {"dashboard.view_metric", "dashboard.change_metric", "alerts.change_alertrule"} <= operator
    assert permission_names(Group.objects.get(name="Admin")) == {
        f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")
    }


def test_a_viewer_sees_dashboards_and_changes_nothing():
    viewer = member_of("Viewer")
    assert access.permissions_of(viewer) == {access.VIEW_PERMISSION}
    assert not viewer.is_staff


def test_an_operator_may_run_every_websocket_command():
    from dashboard.control.protocol import COMMANDS

    operator = member_of("Operator")
    needed = {spec.permission for spec in COMMANDS.values()} - {None}
    assert needed <= access.permissions_of(operator)
    assert not operator.is_staff


def test_joining_admin_makes_staff_and_leaving_it_does_not_keep_it():
    admin = member_of("Admin")
    assert admin.is_staff and admin.has_perm("auth.change_user")
    admin.groups.remove(Group.objects.get(name="Admin"))
    admin.refresh_from_db()
    assert not admin.is_staff


def test_admin_through_the_group_side_and_by_clearing():
    group = Group.objects.get(name="Admin")
    user = User.objects.create_user("carol", password="x-not-used-x")
    group.user_set.add(user)
    user.refresh_from_db()
    assert user.is_staff
    group.user_set.remove(user)
    user.refresh_from_db()
    assert not user.is_staff
    user.groups.add(group)
    user.groups.clear()
    user.refresh_from_db()
    assert not user.is_staff


def test_other_groups_leave_staff_alone():
    staff = User.objects.create_user("dave", password="x-not-used-x", is_staff=True)
    viewer = Group.objects.get(name="Viewer")
    staff.groups.add(viewer)
    staff.groups.remove(viewer)
    staff.refresh_from_db()
    assert staff.is_staff


def test_a_superuser_leaving_admin_stays_staff():
    boss = User.objects.create_superuser("boss", "boss@example.org", "x-not-used-x")
    admin_group = Group.objects.get(name="Admin")
    boss.groups.add(admin_group)
    boss.groups.remove(admin_group)
    boss.refresh_from_db()
    assert boss.is_staff


def test_migrate_gives_the_roles_permissions_that_appeared_since():
    operator = Group.objects.get(name="Operator")
    operator.permissions.remove(Permission.objects.get(codename="change_alertrule"))
    from django.apps import apps

    roles.on_post_migrate(sender=None, apps=apps)
    assert "alerts.change_alertrule" in permission_names(operator)


@pytest.mark.django_db(transaction=True)
def test_flush_makes_the_roles_again_with_their_permissions():
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == set(roles.ROLES)
    assert "alerts.change_alertrule" in permission_names(Group.objects.get(name="Operator"))


def test_the_roles_are_in_the_admin(admin_client):
    page = admin_client.get("/admin/auth/group/")
    assert page.status_code == 200
    for role in roles.ROLES:
        assert role in page.content.decode()

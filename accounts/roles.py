"""The roles: groups with a fixed set of permissions, created by a migration.

- `Viewer` sees dashboards;
- `Operator` also controls sampling, acknowledges and silences alerts, and edits
  dashboards (the permissions the WebSocket commands need, `dashboard.access`);
- `Admin` holds every permission and is staff: `is_staff` is a user flag, not a
  permission, so joining or leaving the group sets or clears it (accounts.signals).

ROLE_PERMISSIONS is the one home of what each role holds. Each `migrate` gives the
roles whatever of theirs exists by then (a permission whose app is installed
later, such as `boards.change_dashboard`, is granted once that app migrates);
a deployment wanting other sets makes groups of its own.
"""

VIEWER, OPERATOR, ADMIN = "Viewer", "Operator", "Admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
EVERY_PERMISSION = "*"

_VIEWER = ("dashboard.view_metric",)
_OPERATOR = _VIEWER + (
    "dashboard.change_metric",
    "alerts.view_alertrule",
    "alerts.change_alertrule",
    "boards.view_dashboard",
    "boards.change_dashboard",
)

ROLE_PERMISSIONS = {
    VIEWER: _VIEWER,
    OPERATOR: _OPERATOR,
    ADMIN: EVERY_PERMISSION,
}


def permissions_for(role, permission_model):
    """The Permission rows `role` holds that exist now (unknown names are skipped:
    their app may not be installed yet)."""
    wanted = ROLE_PERMISSIONS[role]
    if wanted == EVERY_PERMISSION:
        return list(permission_model.objects.all())
    found = []
    for name in wanted:
        app_label, codename = name.split(".")
        found.extend(permission_model.objects.filter(content_type__app_label=app_label, codename=codename))
    return found


def grant_role_permissions(group_model, permission_model):
    """Create the role groups if missing and give each what it holds (only adds)."""
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        missing = [p for p in permissions_for(role, permission_model) if p.pk not in _held(group)]
        if missing:
            group.permissions.add(*missing)


def _held(group):
    return set(group.permissions.values_list("pk", flat=True))


def on_post_migrate(sender, using="default", apps=None, **kwargs):
    # Django's own post_migrate handler creates the permissions of each app first
    # (auth's is connected before ours), so the last call sees them all.
    if apps is None:
        # `flush` empties every table, roles included, and sends the signal without a
        # migration state: make them again once, after the last app's permissions.
        from django.apps import apps as installed

        if sender is not list(installed.get_app_configs())[-1]:
            return
        apps = installed
    try:
        group_model = apps.get_model("auth", "Group")
        permission_model = apps.get_model("auth", "Permission")
    except LookupError:
        return
    grant_role_permissions(group_model, permission_model)


def is_admin_role(user):
    return user.groups.filter(name=ADMIN).exists()


def roles_for_idp_groups(idp_groups, role_map, default_role):
    """The roles a provider's groups give (OIDC_ROLE_MAP); none mapped: the default role."""
    roles = {role_map[group] for group in idp_groups if group in role_map}
    if not roles and default_role in ROLES:
        roles = {default_role}
    return roles


def follow_idp_groups(user, idp_groups, first_sign_in):
    """Make the user's roles the ones their provider's groups give, on every sign-in: a
    role the provider no longer gives is removed (the change revokes what the user
    has open, dashboard.revocation). Groups that are not roles are left alone.
    Without OIDC_ROLE_MAP the roles are only set at the first sign-in (the default
    role), and are managed in the admin afterwards."""
    from django.conf import settings
    from django.contrib.auth.models import Group

    from audit.services import record

    if not settings.OIDC_ROLE_MAP and not first_sign_in:
        return
    wanted = roles_for_idp_groups(idp_groups, settings.OIDC_ROLE_MAP, settings.OIDC_DEFAULT_ROLE)
    current = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    if wanted == current:
        return
    if current - wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
    if wanted - current:
        user.groups.add(*Group.objects.filter(name__in=wanted - current))
    record(
        "roles_from_provider",
        user.get_username(),
        before=sorted(current),
        after=sorted(wanted),
        actor=user.get_username(),
    )

"""Revoking access closes what is open.

Logout, a password change, deactivation and any change of a user's permissions or
groups (from the admin, a command, or code in any process) reach this module
through Django's signals; it tells every worker, over the channel layer (Redis),
to close that user's sockets. Their tabs reconnect and get what the user may have
now, or nothing. One user's group in the layer already exists for notifications
(`user_group_name`), so no socket joins anything new for this.
"""

import logging

from django.contrib.auth import get_user_model, user_logged_out
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save

from notifications.models import user_group_name

logger = logging.getLogger(__name__)

REVOKED_EVENT = "access.revoked"
# A save that only records a login changes no access (Django's login does this).
HARMLESS_FIELDS = frozenset({"last_login"})


def revoke(user_ids):
    """Close the open sockets of these users on every worker, once the change is committed."""
    user_ids = sorted(set(user_ids))
    if user_ids:
        transaction.on_commit(lambda: _broadcast(user_ids))


def _broadcast(user_ids):
    from notifications.services import _group_send

    for user_id in user_ids:
        try:
            _group_send(user_group_name(user_id), {"type": REVOKED_EVENT})
        except Exception as exc:  # the change itself is done; sockets re-check on reconnect
            logger.warning("could not tell the workers to close user %s's sockets: %s", user_id, exc)


def on_logged_out(sender, request, user, **kwargs):
    if user is not None:
        revoke([user.pk])


def on_user_saved(sender, instance, created, update_fields=None, **kwargs):
    if created or (update_fields and set(update_fields) <= HARMLESS_FIELDS):
        return
    revoke([instance.pk])


def on_user_m2m(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:  # user.groups / user.user_permissions changed
        revoke([instance.pk])
    elif isinstance(instance, Group):  # group.user_set changed
        revoke(pk_set or [])


def on_group_permissions(sender, instance, action, reverse, pk_set, **kwargs):
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    User = get_user_model()
    # reverse: permission.group_set changed, so the users of those groups.
    groups = Group.objects.filter(pk__in=pk_set or []) if reverse else [instance]
    revoke(User.objects.filter(groups__in=groups).values_list("pk", flat=True))


def connect_signals():
    User = get_user_model()
    user_logged_out.connect(on_logged_out, dispatch_uid="livedash.revoke.logout")
    post_save.connect(on_user_saved, sender=User, dispatch_uid="livedash.revoke.user")
    m2m_changed.connect(on_user_m2m, sender=User.groups.through, dispatch_uid="livedash.revoke.groups")
    m2m_changed.connect(
        on_user_m2m, sender=User.user_permissions.through, dispatch_uid="livedash.revoke.perms"
    )
    m2m_changed.connect(
        on_group_permissions, sender=Group.permissions.through, dispatch_uid="livedash.revoke.group_perms"
    )

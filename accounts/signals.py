"""Identity events: each sign-in starts a tracked session and every sign-in,
sign-out and failed sign-in goes to the audit log; the Admin role keeps `is_staff`
in step with membership."""

from django.contrib.auth import get_user_model, user_logged_in, user_logged_out, user_login_failed
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed

from accounts.models import UserSession
from accounts.roles import ADMIN
from audit.services import record

USER_AGENT_MAX = 300


def client_address(request):
    return (request.META.get("REMOTE_ADDR", "") if request is not None else "") or ""


def user_agent_of(request):
    return (request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:USER_AGENT_MAX]


def on_logged_in(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    session_key = request.session.session_key
    if session_key:
        UserSession.objects.update_or_create(
            session_key=session_key,
            defaults={"user": user, "user_agent": user_agent_of(request), "address": client_address(request)},
        )
    record("sign_in", user.get_username(), actor=user.get_username(), address=client_address(request))


def on_logged_out(sender, request, user, **kwargs):
    if request is not None and getattr(request, "session", None) is not None and request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()
    if user is not None:
        record("sign_out", user.get_username(), actor=user.get_username(), address=client_address(request))


def on_login_failed(sender, credentials, request=None, **kwargs):
    # Django already replaced the password in `credentials` with stars; only the name is kept.
    username = str(credentials.get("username", ""))
    record("sign_in_failed", username, actor="", address=client_address(request))


def on_groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """Joining Admin makes a user staff; leaving it makes them not, unless they are a
    superuser. Joining or leaving any other group leaves `is_staff` as it was."""
    if action == "pre_clear":
        # A clear names no groups or users afterwards: note now who leaves Admin.
        instance._leaving_admin = _leaving_admin_on_clear(instance, reverse)
        return
    if action == "post_clear":
        users, joined = getattr(instance, "_leaving_admin", []), False
    elif action in ("post_add", "post_remove"):
        users, joined = _admin_members_changed(instance, reverse, pk_set), action == "post_add"
    else:
        return
    for user in users:
        staff = joined or user.is_superuser
        if user.is_staff != staff:
            user.is_staff = staff
            user.save(update_fields=["is_staff"])


def _admin_members_changed(instance, reverse, pk_set):
    """The users who joined or left Admin in this change (none when Admin is not involved)."""
    if reverse:
        if isinstance(instance, Group) and instance.name == ADMIN:
            return list(get_user_model().objects.filter(pk__in=pk_set or []))
        return []
    return [instance] if Group.objects.filter(pk__in=pk_set or [], name=ADMIN).exists() else []


def _leaving_admin_on_clear(instance, reverse):
    if reverse:
        return list(instance.user_set.all()) if isinstance(instance, Group) and instance.name == ADMIN else []
    return [instance] if instance.groups.filter(name=ADMIN).exists() else []


def on_mfa_added(sender, request, user, authenticator, **kwargs):
    record("mfa_added", f"{user.get_username()}: {authenticator.type}", address=client_address(request))


def on_mfa_removed(sender, request, user, authenticator, **kwargs):
    record("mfa_removed", f"{user.get_username()}: {authenticator.type}", address=client_address(request))


def on_mfa_used(sender, request, user, authenticator, **kwargs):
    record(
        "mfa_used",
        f"{user.get_username()}: {authenticator.type}",
        actor=user.get_username(),
        address=client_address(request),
    )


def on_mfa_failed(sender, request, user, authenticator=None, **kwargs):
    kind = getattr(authenticator, "type", "second factor")
    record("sign_in_failed", f"{user.get_username()}: {kind}", actor="", address=client_address(request))


def connect_signals():
    from allauth.mfa import signals as mfa_signals

    from accounts import mfa

    User = get_user_model()
    mfa_signals.authenticator_added.connect(on_mfa_added, dispatch_uid="livedash.accounts.mfa_added")
    mfa_signals.authenticator_removed.connect(on_mfa_removed, dispatch_uid="livedash.accounts.mfa_removed")
    mfa_signals.authenticator_used.connect(on_mfa_used, dispatch_uid="livedash.accounts.mfa_used")
    mfa_signals.authentication_failed.connect(on_mfa_failed, dispatch_uid="livedash.accounts.mfa_failed")
    mfa_signals.authenticator_added.connect(
        mfa.on_second_factors_changed, dispatch_uid="livedash.accounts.mfa_added_access"
    )
    mfa_signals.authenticator_removed.connect(
        mfa.on_second_factors_changed, dispatch_uid="livedash.accounts.mfa_removed_access"
    )
    user_logged_in.connect(on_logged_in, dispatch_uid="livedash.accounts.logged_in")
    user_logged_out.connect(on_logged_out, dispatch_uid="livedash.accounts.logged_out")
    user_login_failed.connect(on_login_failed, dispatch_uid="livedash.accounts.login_failed")
    m2m_changed.connect(
        on_groups_changed, sender=User.groups.through, dispatch_uid="livedash.accounts.admin_role"
    )

"""Dashboards people build, every saved version of them, and each user's home dashboard.

The stored document (`Dashboard.document`) is the source of truth, exactly as it
was sent and validated (boards/spec.py); the columns beside it (title, tags,
visibility, groups) are copies of it for the admin, the list and the access rules.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import models
from django.db.models import Q
from django.utils import timezone

from boards import spec

# The dashboard every user starts on until they choose another (shipped in the
# default DASHBOARDS_DIR).
DEFAULT_HOME_UID = "host-overview"
MESSAGE_MAX_LENGTH = 500


class Visibility(models.TextChoices):
    PRIVATE = "private", "private (the owner)"
    EVERYONE = "everyone", "everyone who may view metrics"
    GROUPS = "groups", "members of the named groups"


class Dashboard(models.Model):
    uid = models.CharField(max_length=spec.UID_MAX_LENGTH, unique=True)
    title = models.CharField(max_length=spec.TITLE_MAX_LENGTH)
    tags = models.JSONField(default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dashboards",
        help_text="Empty: no one owns it; its visibility and the change permission apply.",
    )
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    # Names, not keys: a group named in a provisioned file may be created after it.
    groups = models.JSONField(default=list, blank=True, help_text="Group names, for visibility 'groups'.")
    document = models.JSONField(help_text="The dashboard's JSON without uid and version.")
    version = models.PositiveIntegerField(default=1)
    provisioned_from = models.CharField(
        max_length=255,
        blank=True,
        help_text="The file in DASHBOARDS_DIR it follows; empty when people edit it.",
    )
    # The file's modification time and size when it was last read: the collector's
    # periodic check reads only files whose signature moved.
    provisioned_signature = models.CharField(max_length=64, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["title", "uid"]

    def __str__(self):
        return f"{self.title} ({self.uid})"

    @property
    def provisioned(self):
        return bool(self.provisioned_from)

    def export(self):
        """The contract's JSON: the stored document with its uid and version."""
        return spec.ordered_document({**self.document, "uid": self.uid, "version": self.version})

    def set_document(self, document):
        """Store a validated document (its uid and version are the row's own)."""
        body = {key: value for key, value in document.items() if key not in ("uid", "version")}
        visibility = body.get("visibility", Visibility.PRIVATE)
        self.document = body
        self.title = body["title"]
        self.tags = list(body.get("tags", []))
        if isinstance(visibility, dict):
            self.visibility, self.groups = Visibility.GROUPS, list(visibility["groups"])
        else:
            self.visibility, self.groups = visibility, []

    def can_view(self, user):
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        if self.can_edit(user):
            return True
        if self.visibility == Visibility.EVERYONE:
            return user.has_perm("dashboard.view_metric")
        if self.visibility == Visibility.GROUPS:
            return user.groups.filter(name__in=self.groups).exists()
        return False

    def can_edit(self, user):
        """Owners and holders of `boards.change_dashboard` (superusers hold every permission)."""
        if user is None or not user.is_authenticated or not user.is_active:
            return False
        return (self.owner_id is not None and self.owner_id == user.pk) or user.has_perm(
            "boards.change_dashboard"
        )

    def private_audience(self):
        """The ids of the active users who may see this dashboard, when not everyone may
        (None when it is visible to everyone): its `dashboard-changed` events go to their
        own channels, so a private dashboard's name and editors reach no one else."""
        if self.visibility == Visibility.EVERYONE:
            return None
        change = Permission.objects.filter(content_type__app_label="boards", codename="change_dashboard")
        who = Q(is_superuser=True) | Q(user_permissions__in=change) | Q(groups__permissions__in=change)
        if self.owner_id is not None:
            who |= Q(pk=self.owner_id)
        if self.visibility == Visibility.GROUPS:
            who |= Q(groups__name__in=self.groups)
        users = get_user_model().objects.filter(who, is_active=True)
        return sorted(set(users.values_list("pk", flat=True)))

    @classmethod
    def visible_to(cls, user):
        """The dashboards `user` may see. Checked one by one with `can_view`, the one rule:
        an installation has tens or hundreds of dashboards, not millions."""
        return [board for board in cls.objects.select_related("owner") if board.can_view(user)]

    @staticmethod
    def search(boards, q="", tag=""):
        """Those of `boards` whose title or uid contains `q` (any case) and that carry
        `tag`: the one search of the API's list and the `/dashboards/` page."""
        needle = q.strip().casefold()
        return [
            board
            for board in boards
            if (not needle or needle in board.title.casefold() or needle in board.uid.casefold())
            and (not tag or tag in board.tags)
        ]


class DashboardVersion(models.Model):
    """One save of a dashboard: who, when, why, and the JSON it had (with that version)."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    document = models.JSONField()
    # By name, like the audit log: a version outlives its author's account.
    author = models.CharField(max_length=150, blank=True, help_text="Empty: the system (provisioning).")
    message = models.CharField(max_length=MESSAGE_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dashboard", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dashboard", "version"], name="one_row_per_dashboard_version")
        ]

    def __str__(self):
        return f"{self.dashboard.uid} v{self.version}"

    def summary(self):
        return {
            "version": self.version,
            "author": self.author,
            "message": self.message,
            "created_at": self.created_at.timestamp(),
        }


class HomeDashboard(models.Model):
    """The dashboard a user lands on at `/`; without a row, DEFAULT_HOME_UID."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="home_dashboard"
    )
    uid = models.CharField(max_length=spec.UID_MAX_LENGTH, default=DEFAULT_HOME_UID)

    def __str__(self):
        return f"{self.user}: {self.uid}"

    @classmethod
    def uid_for(cls, user):
        """The uid the user chose, or DEFAULT_HOME_UID."""
        if user is None or not user.is_authenticated:
            return DEFAULT_HOME_UID
        uid = cls.objects.filter(user=user).values_list("uid", flat=True).first()
        return uid or DEFAULT_HOME_UID

    @classmethod
    def dashboard_for(cls, user):
        """The dashboard `/` shows the user: their choice while it exists and they may see
        it, else the default one if they may see that, else None."""
        for uid in dict.fromkeys((cls.uid_for(user), DEFAULT_HOME_UID)):
            board = Dashboard.objects.filter(uid=uid).first()
            if board is not None and board.can_view(user):
                return board
        return None


class Shared(models.Model):
    """What a share link and a playlist's share both are: a token kept only as its hash,
    a note, an optional expiry, who made it and when, and its revocation."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    note = models.CharField(max_length=200, blank=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: until revoked.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def is_live(self, now):
        return self.revoked_at is None and (self.expires is None or self.expires > now)

    def mark_revoked(self):
        """Revoke it now unless it already was (one update, so two revokers race
        safely); True when this call did it."""
        unrevoked = type(self).objects.filter(pk=self.pk, revoked_at__isnull=True)
        return bool(unrevoked.update(revoked_at=timezone.now()))


class ShareLink(Shared):
    """A read-only link to one dashboard for people without an account (`/s/TOKEN/`).

    Only the token's hash is kept: the token itself is shown once, when the link is
    made. The link reads what the dashboard's selectors reach (boards.sharing.scope),
    so editing the dashboard changes it and deleting the dashboard ends it."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="share_links")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(Shared.Meta):
        pass

    def __str__(self):
        return f"share link {self.pk} of {self.dashboard.uid}"


class Playlist(models.Model):
    """Dashboards shown in turn on a screen (`/playlists/UID/`), each for `interval`
    seconds. Its entries are dashboard uids, kept by name like a provisioned group: a
    dashboard deleted or hidden from a viewer is skipped, never shown in its place.
    Who may see and change it is the dashboards' rule (same visibility, same owner and
    `boards.change_dashboard`); seeing a playlist never shows a dashboard the viewer may
    not see on its own."""

    uid = models.CharField(max_length=spec.UID_MAX_LENGTH, unique=True)
    title = models.CharField(max_length=spec.TITLE_MAX_LENGTH)
    interval = models.PositiveIntegerField(help_text="Seconds each dashboard stays on screen.")
    entries = models.JSONField(default=list, help_text='[{"dashboard": uid}, ...], in order.')
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="playlists",
        help_text="Empty: no one owns it; its visibility and the change permission apply.",
    )
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    groups = models.JSONField(default=list, blank=True, help_text="Group names, for visibility 'groups'.")
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["title", "uid"]

    def __str__(self):
        return f"{self.title} ({self.uid})"

    # The dashboards' own rule, read from the same columns.
    can_view = Dashboard.can_view
    can_edit = Dashboard.can_edit

    def uids(self):
        return [entry["dashboard"] for entry in self.entries]


class PlaylistShare(Shared):
    """A playlist shown to people without an account (`/playlists/UID/?share=TOKEN`).

    It reaches nothing of its own: at creation one ordinary share link is made for
    each of the playlist's dashboards (`links`), and the viewer's browser shows those.
    Their tokens are derived from this one's (boards.playlists.entry_token), so no
    token is stored anywhere, only hashes, and each link keeps its own scope, viewer
    cap, expiry and revocation."""

    playlist = models.ForeignKey(Playlist, on_delete=models.CASCADE, related_name="shares")
    links = models.ManyToManyField(ShareLink, related_name="playlist_shares", editable=False)

    class Meta(Shared.Meta):
        pass

    def __str__(self):
        return f"share {self.pk} of playlist {self.playlist.uid}"

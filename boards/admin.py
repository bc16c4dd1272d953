from django.contrib import admin

from audit.services import record
from boards import playlists, sharing
from boards.models import Dashboard, DashboardVersion, HomeDashboard, Playlist, PlaylistShare, ShareLink


class VersionInline(admin.TabularInline):
    model = DashboardVersion
    fields = ("version", "author", "message", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """Read-mostly: a dashboard's content is its JSON, changed through the API, the page,
    import or its file, so that every change is a version with an audit entry. Here
    only its owner changes (audited too); deleting goes through the API or its file."""

    list_display = ("title", "uid", "owner", "visibility", "version", "provisioned_from", "updated_at")
    list_filter = ("visibility",)
    search_fields = ("title", "uid")
    fields = ("uid", "title", "tags", "owner", "visibility", "groups", "version", "provisioned_from")
    readonly_fields = ("uid", "title", "tags", "visibility", "groups", "version", "provisioned_from")
    inlines = [VersionInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "owner" in form.changed_data:
            owner = obj.owner.get_username() if obj.owner else None
            record("dashboard.change_owner", f"dashboard {obj.uid}", after={"owner": owner})


@admin.register(DashboardVersion)
class DashboardVersionAdmin(admin.ModelAdmin):
    list_display = ("dashboard", "version", "author", "message", "created_at")
    search_fields = ("dashboard__uid", "dashboard__title", "author", "message")
    readonly_fields = ("dashboard", "version", "document", "author", "message", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HomeDashboard)
class HomeDashboardAdmin(admin.ModelAdmin):
    list_display = ("user", "uid")
    search_fields = ("user__username", "uid")


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Links are made through the API or the dashboard's page (the token is shown once,
    there); here they are read and revoked, each revocation audited and its streams ended."""

    list_display = ("dashboard", "note", "created_by", "created_at", "expires", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("dashboard__uid", "dashboard__title", "note")
    readonly_fields = (
        "dashboard",
        "note",
        "expires",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected share links")
    def revoke(self, request, queryset):
        for link in queryset.select_related("dashboard"):
            sharing.revoke(link)


@admin.register(Playlist)
class PlaylistAdmin(admin.ModelAdmin):
    """Read-mostly, like dashboards: a playlist changes through the API, where its entries
    are checked against what its author may see and each change is versioned and
    audited. Here only its owner changes (audited too)."""

    list_display = ("title", "uid", "owner", "visibility", "interval", "version", "updated_at")
    list_filter = ("visibility",)
    search_fields = ("title", "uid")
    fields = ("uid", "title", "interval", "entries", "owner", "visibility", "groups", "version")
    readonly_fields = ("uid", "title", "interval", "entries", "visibility", "groups", "version")

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "owner" in form.changed_data:
            owner = obj.owner.get_username() if obj.owner else None
            record("playlist.change_owner", f"playlist {obj.uid}", after={"owner": owner})

    def delete_model(self, request, obj):
        playlists.delete(obj, author=playlists.Author(name=request.user.get_username()))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(PlaylistShare)
class PlaylistShareAdmin(admin.ModelAdmin):
    """Shares are made through the API (the token is shown once, there); here they are
    read and revoked, with the share links they made."""

    list_display = ("playlist", "note", "created_by", "created_at", "expires", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("playlist__uid", "playlist__title", "note")
    readonly_fields = ("playlist", "note", "expires", "created_by", "created_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected playlist shares and their links")
    def revoke(self, request, queryset):
        author = playlists.Author(name=request.user.get_username())
        for shared in queryset.select_related("playlist"):
            playlists.revoke(shared, author=author)

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.models import UserSession


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    """Who is signed in where. Read-only: ending a session has its own action, which
    also closes the session's streams and sockets."""

    list_display = ("user", "browser", "address", "signed_in_at", "last_seen")
    list_filter = ("last_seen",)
    search_fields = ("user__username", "address")
    actions = ["end_sessions"]
    readonly_fields = ("user", "session_key", "user_agent", "address", "signed_in_at", "last_seen")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_end_permission(self, request):
        return request.user.has_perm("accounts.delete_usersession")

    @admin.action(description=_("End the selected sessions"), permissions=["end"])
    def end_sessions(self, request, queryset):
        for row in queryset:
            row.end()

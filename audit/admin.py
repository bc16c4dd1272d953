import json

from django.contrib import admin
from django.utils.html import format_html

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the product and removed only by the retention."""

    list_display = ["at", "actor_display", "action", "target", "address"]
    list_filter = ["action", "at"]
    search_fields = ["actor", "action", "target", "address"]
    date_hierarchy = "at"
    fields = ["at", "actor_display", "action", "target", "address", "before_pretty", "after_pretty"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="actor", ordering="actor")
    def actor_display(self, obj):
        return obj.actor or "system"

    @admin.display(description="before")
    def before_pretty(self, obj):
        return _pretty(obj.before)

    @admin.display(description="after")
    def after_pretty(self, obj):
        return _pretty(obj.after)


def _pretty(value):
    if value is None:
        return "–"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))

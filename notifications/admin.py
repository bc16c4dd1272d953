from django.contrib import admin
from django.db.models import Count

from notifications.models import AlertRule, Notification
from notifications.services import push_on_commit


class AudienceFilter(admin.SimpleListFilter):
    title = "audience"
    parameter_name = "audience"

    def lookups(self, request, model_admin):
        return [("user", "One user"), ("group", "A group"), ("all", "Everyone")]

    def queryset(self, request, queryset):
        if self.value() == "user":
            return queryset.filter(recipient_user__isnull=False)
        if self.value() == "group":
            return queryset.filter(recipient_group__isnull=False)
        if self.value() == "all":
            return queryset.filter(recipient_user__isnull=True, recipient_group__isnull=True)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Compose and send: a notification saved here is pushed like one from `notify()`.
    A sent notification is history, so it can be read and deleted but not edited."""

    list_display = ["title", "level", "audience_display", "created_at", "created_by", "read_count"]
    list_filter = ["level", AudienceFilter, "created_at"]
    search_fields = ["title", "body"]
    date_hierarchy = "created_at"
    list_select_related = ["recipient_user", "recipient_group", "created_by"]
    autocomplete_fields = ["recipient_user", "recipient_group"]
    fields = [
        "title",
        "body",
        "level",
        "link",
        "recipient_user",
        "recipient_group",
        "created_by",
        "created_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(read_total=Count("reads"))

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["created_by", "created_at"]
        return self.fields

    @admin.display(description="audience")
    def audience_display(self, obj):
        if obj.recipient_user_id:
            return obj.recipient_user.get_username()
        if obj.recipient_group_id:
            return f"group {obj.recipient_group.name}"
        return "everyone"

    @admin.display(description="read by", ordering="read_total")
    def read_count(self, obj):
        return obj.read_total

    def save_model(self, request, obj, form, change):
        if change:
            return  # Sent notifications are not edited (every field is read-only).
        obj.created_by = request.user
        obj.save()
        push_on_commit(obj)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "metric",
        "comparison",
        "threshold",
        "sustain_seconds",
        "cooldown_seconds",
        "level",
        "recipients",
        "enabled",
        "firing",
    ]
    list_filter = ["enabled", "firing", "level", "comparison"]
    list_editable = ["enabled"]
    list_select_related = ["metric", "recipient_group"]
    readonly_fields = ["firing", "last_fired_at", "last_resolved_at"]
    fields = [
        "name",
        "metric",
        ("comparison", "threshold"),
        "sustain_seconds",
        "cooldown_seconds",
        "level",
        "recipient_group",
        "enabled",
        "firing",
        "last_fired_at",
        "last_resolved_at",
    ]

    @admin.display(description="recipients")
    def recipients(self, obj):
        return f"group {obj.recipient_group.name}" if obj.recipient_group_id else "everyone"

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

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
    # Few, compact columns so the list fits a laptop screen beside its filters: the
    # condition reads as one phrase and the state as a word, never a green tick.
    list_display = ["__str__", "metric", "condition", "level", "recipients", "enabled", "state"]
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

    @admin.display(description=_("recipients"))
    def recipients(self, obj):
        return (
            _("group %(name)s") % {"name": obj.recipient_group.name}
            if obj.recipient_group_id
            else _("everyone")
        )

    @admin.display(description=_("condition"), ordering="threshold")
    def condition(self, obj):
        unit = f" {obj.metric.unit}" if obj.metric.unit else ""
        return _("%(comparison)s %(threshold)s%(unit)s for %(sustain)s s, then %(cooldown)s s quiet") % {
            "comparison": obj.get_comparison_display(),
            "threshold": f"{obj.threshold:g}",
            "unit": unit,
            "sustain": obj.sustain_seconds,
            "cooldown": obj.cooldown_seconds,
        }

    @admin.display(description=_("state"), ordering="firing")
    def state(self, obj):
        if not obj.enabled:
            return _("Off")
        if obj.firing:
            return format_html('<strong class="alert-firing">▲ {}</strong>', _("Firing"))
        return _("OK")

from django import forms
from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from alerts.models import AlertEvent, AlertRule, Annotation, EscalationStep, MaintenanceWindow, SeriesAlert


class AlertRuleForm(forms.ModelForm):
    """Grouping may be left out (a form or script posting only the older fields): then
    the rule gets the defaults, Alertmanager's."""

    OPTIONAL = ("group_by", "group_wait", "group_interval")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.OPTIONAL:
            if name in self.fields:
                self.fields[name].required = False

    def _or_default(self, name):
        value = self.cleaned_data.get(name)
        return AlertRule._meta.get_field(name).get_default() if value in (None, "") else value

    def clean_group_by(self):
        return self._or_default("group_by")

    def clean_group_wait(self):
        return self._or_default("group_wait")

    def clean_group_interval(self):
        return self._or_default("group_interval")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    # Few, compact columns so the list fits a laptop screen beside its filters: the
    # condition reads as one phrase and the state as a word, never a green tick.
    list_display = ["__str__", "match", "condition", "level", "recipients", "enabled", "state"]
    list_filter = ["enabled", "firing", "level", "comparison"]
    list_editable = ["enabled"]
    list_select_related = ["metric", "recipient_group", "recipient_user"]
    readonly_fields = [
        "firing",
        "last_fired_at",
        "last_resolved_at",
        "acknowledged_at",
        "acknowledged_by",
        "silenced_by",
    ]
    fields = [
        "name",
        "match",
        "metric",
        ("comparison", "threshold"),
        "sustain_seconds",
        "cooldown_seconds",
        "repeat_minutes",
        "group_by",
        ("group_wait", "group_interval"),
        "level",
        "recipient_group",
        "recipient_user",
        "enabled",
        "silenced_until",
        "firing",
        "last_fired_at",
        "last_resolved_at",
        "acknowledged_at",
        "acknowledged_by",
        "silenced_by",
    ]

    @admin.display(description=_("recipients"))
    def recipients(self, obj):
        if obj.recipient_user_id:
            return obj.recipient_user.get_username()
        return (
            _("group %(name)s") % {"name": obj.recipient_group.name}
            if obj.recipient_group_id
            else _("everyone")
        )

    @admin.display(description=_("condition"), ordering="threshold")
    def condition(self, obj):
        unit = f" {obj.unit}" if obj.unit else ""
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

    def save_model(self, request, obj, form, change):
        # A maintenance window set here is the admin's: say who set it.
        if "silenced_until" in form.changed_data:
            obj.silenced_by = request.user if obj.silenced_until else None
        super().save_model(request, obj, form, change)


@admin.register(SeriesAlert)
class SeriesAlertAdmin(admin.ModelAdmin):
    """Each series' alert under its rule: firing or not, acknowledged, silenced."""

    list_display = ["rule", "series", "firing", "value", "last_fired_at", "acknowledged_by", "silenced_until"]
    list_filter = ["firing", "rule"]
    search_fields = ["series", "rule__name", "rule__match"]
    list_select_related = ["rule__metric", "acknowledged_by"]
    readonly_fields = [
        "rule",
        "series",
        "labels",
        "firing",
        "value",
        "last_fired_at",
        "last_resolved_at",
        "acknowledged_at",
        "acknowledged_by",
        "silenced_by",
    ]
    fields = [*readonly_fields[:-1], "silenced_until", "silenced_by"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        if "silenced_until" in form.changed_data:
            obj.silenced_by = request.user if obj.silenced_until else None
        super().save_model(request, obj, form, change)


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    """The alert history: fired, repeated, resolved, acknowledged, silenced, and by whom."""

    list_display = ["at", "rule", "series", "kind", "actor_name", "detail"]
    list_filter = ["kind", "at", "rule"]
    search_fields = ["rule__name", "rule__match", "series", "actor_name", "detail"]
    date_hierarchy = "at"
    list_select_related = ["rule__metric"]
    fields = ["at", "rule", "series", "kind", "actor_name", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    """Markers and bands on the charts (also `POST /api/v1/annotations`)."""

    list_display = ["time", "end", "text", "match", "created_by"]
    list_filter = ["time"]
    search_fields = ["text", "match", "created_by"]
    date_hierarchy = "time"
    fields = ["time", "end", "text", "tags", "match", "created_by"]
    readonly_fields = ["created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    """One-off or recurring (RFC 5545 RRULE or cron, in a time zone) windows: alerts recorded, not sent."""

    list_display = ["name", "match", "starts_at", "duration_minutes", "rrule", "cron", "timezone", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "match"]


@admin.register(EscalationStep)
class EscalationStepAdmin(admin.ModelAdmin):
    """A rule's steps: a channel told when an alert is still unacknowledged after a delay.
    Apart from the rule's page, so a rule's form posts just its own fields."""

    list_display = ["rule", "delay_minutes", "channel"]
    list_filter = ["rule"]
    list_select_related = ["rule__metric", "channel"]

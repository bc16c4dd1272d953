from django.contrib import admin

from dashboard.models import Metric


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = (
        "key",
        "label",
        "unit",
        "source",
        "enabled",
        "warning_threshold",
        "critical_threshold",
        "display_order",
    )
    # Everything an operator tunes day to day is editable straight from the list.
    list_editable = ("label", "unit", "enabled", "warning_threshold", "critical_threshold", "display_order")
    list_filter = ("source", "enabled")
    search_fields = ("key", "label")
    ordering = ("display_order", "key")
    fieldsets = (
        (None, {"fields": ("key", "label", "unit", "source", "enabled", "display_order")}),
        ("Thresholds", {"fields": ("warning_threshold", "critical_threshold")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # The key is the metric's identity in every frame, history and alert rule,
        # and the source says who creates it: renaming either would orphan data.
        if obj is not None:
            return ("key", "source")
        return ()

from django import forms
from django.contrib import admin

from dashboard.models import Metric


class MetricListForm(forms.ModelForm):
    """The list's inline fields, sized to their content: the admin's default text
    inputs are 610 px wide each, which pushed the threshold columns off the screen."""

    class Meta:
        model = Metric
        fields = ("label", "unit", "enabled", "warning_threshold", "critical_threshold")
        widgets = {
            "label": forms.TextInput(attrs={"size": 18}),
            "unit": forms.TextInput(attrs={"size": 5}),
            # Text inputs (still parsed as numbers) take a size; no inline style, which the CSP forbids.
            "warning_threshold": forms.TextInput(attrs={"size": 6, "inputmode": "decimal"}),
            "critical_threshold": forms.TextInput(attrs={"size": 6, "inputmode": "decimal"}),
        }


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    # Source and order are left to the filter and the change form, so the list fits a
    # laptop screen beside the admin's navigation and filter columns.
    list_display = ("key", "label", "unit", "enabled", "warning_threshold", "critical_threshold")
    # Everything an operator tunes day to day is editable straight from the list.
    list_editable = ("label", "unit", "enabled", "warning_threshold", "critical_threshold")
    list_filter = ("source", "enabled")

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=MetricListForm, **kwargs)

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

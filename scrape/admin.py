from django import forms
from django.contrib import admin
from django.utils.text import Truncator

from scrape.models import ScrapeTarget

ERROR_SHOWN_IN_LIST = 120


class ScrapeTargetForm(forms.ModelForm):
    """The token is write-only: the form takes a new one, keeps the stored one when the
    field is left empty, and never renders it back (not even masked into the page)."""

    bearer_token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as Authorization: Bearer. Stored encrypted and never shown again; "
        "leave empty to keep the current one.",
    )
    clear_bearer_token = forms.BooleanField(required=False, label="Remove the bearer token")

    class Meta:
        model = ScrapeTarget
        fields = ("job", "url", "interval", "labels", "enabled")
        widgets = {"url": forms.URLInput(attrs={"size": 60})}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("bearer_token") and cleaned.get("clear_bearer_token"):
            self.add_error("bearer_token", "Give a new token or remove it, not both.")
        return cleaned

    def save(self, commit=True):
        target = super().save(commit=False)
        if self.cleaned_data.get("clear_bearer_token"):
            target.set_bearer_token("")
        elif self.cleaned_data.get("bearer_token"):
            target.set_bearer_token(self.cleaned_data["bearer_token"])
        if commit:
            target.save()
        return target


@admin.register(ScrapeTarget)
class ScrapeTargetAdmin(admin.ModelAdmin):
    form = ScrapeTargetForm
    list_display = ("job", "url", "interval", "enabled", "state", "last_scrape_at", "error")
    list_filter = ("enabled", "job")
    search_fields = ("job", "url", "last_error")
    readonly_fields = (
        "instance",
        "token_state",
        "last_scrape_at",
        "last_up",
        "last_duration_seconds",
        "last_samples",
        "last_error",
    )
    fieldsets = (
        (None, {"fields": ("job", "url", "instance", "interval", "labels", "enabled")}),
        ("Authentication", {"fields": ("token_state", "bearer_token", "clear_bearer_token")}),
        (
            "Last scrape",
            {"fields": ("last_scrape_at", "last_up", "last_duration_seconds", "last_samples", "last_error")},
        ),
    )

    @admin.display(description="state")
    def state(self, target):
        if target.last_up is None:
            return "not scraped yet"
        return "up" if target.last_up else "down"

    @admin.display(description="last error")
    def error(self, target):
        return Truncator(target.last_error).chars(ERROR_SHOWN_IN_LIST)

    @admin.display(description="bearer token")
    def token_state(self, target):
        return "set (hidden)" if target.has_bearer_token else "none"

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "metric_patterns",
        "notify",
        "scrape",
        "read",
        "dashboards",
        "enroll",
        "host",
        "created_at",
        "last_used_at",
        "last_used_from",
        "revoked",
    )
    list_filter = ("revoked", "notify", "scrape", "read", "dashboards", "enroll")
    search_fields = ("name", "prefix", "host")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "last_used_from", "revoked_at")
    fields = (
        "name",
        "metric_patterns",
        "host",
        "notify",
        "scrape",
        "read",
        "dashboards",
        "enroll",
        "revoked",
        *readonly_fields,
    )
    actions = ["revoke_tokens"]

    def save_model(self, request, obj, form, change):
        if not change:
            # The secret is drawn here and shown once by response_add; only its hash is saved.
            obj._new_token = obj.set_new_secret()
            obj.created_by = request.user
        if "revoked" in form.changed_data:
            obj.revoked_at = timezone.now() if obj.revoked else None
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        # Rendered straight away rather than put in a message: messages may travel in a cookie.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "raw_token": obj._new_token,
            "title": f"API token {obj.name} created",
        }
        return TemplateResponse(request, "admin/api/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        tokens = list(queryset.filter(revoked=False))
        for token in tokens:
            token.revoke()
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)

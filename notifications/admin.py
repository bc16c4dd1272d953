from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count

from notifications.delivery import DeliveryError, retry_now, send_test
from notifications.models import Delivery, DeliveryChannel, Notification
from notifications.services import send_on_commit


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

    list_display = ["title", "level", "audience", "created_at", "created_by", "read_count"]
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
    def audience(self, obj):
        return obj.audience_display

    @admin.display(description="read by", ordering="read_total")
    def read_count(self, obj):
        return obj.read_total

    def save_model(self, request, obj, form, change):
        if change:
            return  # Sent notifications are not edited (every field is read-only).
        obj.created_by = request.user
        with transaction.atomic():
            obj.save()
            send_on_commit(obj)


@admin.register(DeliveryChannel)
class DeliveryChannelAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "owner", "min_level", "paused", "created_at"]
    list_filter = ["kind", "min_level", "paused"]
    list_editable = ["paused"]
    search_fields = ["target", "owner_user__username", "owner_group__name"]
    list_select_related = ["owner_user", "owner_group"]
    autocomplete_fields = ["owner_user", "owner_group"]
    fields = ["kind", "target", "owner_user", "owner_group", "min_level", "secret", "paused"]
    actions = ["send_test"]

    @admin.display(description="owner")
    def owner(self, obj):
        return obj.audience_display

    @admin.action(description="Send a test to the selected channels")
    def send_test(self, request, queryset):
        """Sent now, from this request, outside the delivery queue (a test is nobody's
        notification): the page says at once whether each channel took it."""
        for channel in queryset:
            try:
                send_test(channel, sent_by=request.user)
            except DeliveryError as exc:
                self.message_user(request, f"{channel}: the test failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{channel}: the test was sent.", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """The delivery log: what went where, how many tries, the last error. Rows are
    written by `notify()` and the senders only; the one thing to do here is retry."""

    list_display = [
        "notification",
        "channel",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "short_error",
    ]
    list_filter = ["state", "channel__kind", "created_at"]
    search_fields = ["notification__title", "channel__target", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["notification", "channel"]
    actions = ["retry"]
    readonly_fields = [
        "notification",
        "channel",
        "state",
        "attempts",
        "created_at",
        "next_attempt_at",
        "retry_until",
        "lease_until",
        "last_error",
        "delivered_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # History: viewable, not editable.

    @admin.display(description="last error")
    def short_error(self, obj):
        return obj.last_error[:80]

    @admin.action(description="Retry the selected deliveries now", permissions=["retry"])
    def retry(self, request, queryset):
        count = retry_now(queryset)
        self.message_user(request, f"{count} deliveries will be sent again now.")

    def has_retry_permission(self, request):
        return request.user.has_perm("notifications.change_delivery")

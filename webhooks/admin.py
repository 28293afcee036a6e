"""The delivery log for administrators: webhooks, their deliveries (replay failed ones from
here) and people's notification preferences. Webhooks are written through the API, whose
services check URLs and encrypt secrets; the admin only reads them."""

from django.contrib import admin, messages

from audit.admin import ReadOnlyAdmin
from core import access
from core.errors import ApplicationError
from webhooks import services
from webhooks.models import NotificationPreference, Webhook, WebhookDelivery


class AdminsOnly(ReadOnlyAdmin):
    def has_view_permission(self, request, obj=None):
        return request.user.is_active and access.is_admin(request.user)


@admin.register(Webhook)
class WebhookAdmin(AdminsOnly):
    list_display = (
        "name",
        "webhook_id",
        "model",
        "status",
        "format",
        "consecutive_failures",
        "owner",
    )
    list_filter = ("status", "format")
    search_fields = ("name", "webhook_id", "url")
    exclude = ("secret_encrypted",)
    list_select_related = ("model", "owner")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AdminsOnly):
    list_display = (
        "delivery_id",
        "webhook",
        "event",
        "status",
        "attempts",
        "response_status",
        "latency_ms",
        "created_at",
        "delivered_at",
        "last_error",
    )
    list_filter = ("status", "event")
    search_fields = ("delivery_id", "webhook__name", "webhook__webhook_id", "ordering_key")
    list_select_related = ("webhook",)
    ordering = ("-id",)
    show_full_result_count = False
    actions = ["replay"]

    def get_actions(self, request):
        # The replay action changes state: shown to those who may view (admins) even though
        # the rows themselves are read-only.
        return super().get_actions(request) if self.has_view_permission(request) else {}

    @admin.action(description="Replay the selected failed deliveries (same delivery id)")
    def replay(self, request, queryset):
        done = 0
        for delivery in queryset:
            try:
                services.delivery_replay(delivery=delivery)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
        if done:
            self.message_user(request, f"Replaying {done} deliveries.", messages.SUCCESS)


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(AdminsOnly):
    list_display = ("user", "review_requests", "decisions", "webhook_disabled")
    search_fields = ("user__username",)

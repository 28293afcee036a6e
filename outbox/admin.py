from django.contrib import admin

from outbox.models import OutboxJob


@admin.register(OutboxJob)
class OutboxJobAdmin(admin.ModelAdmin):
    """Read-only, for administrators: what is waiting, what keeps failing and why. Jobs are
    written and settled by outbox.services only."""

    list_display = (
        "id",
        "task",
        "created_at",
        "available_at",
        "attempts",
        "dispatched_at",
        "done_at",
        "last_error",
    )
    list_filter = ("task", ("done_at", admin.EmptyFieldListFilter))
    search_fields = ("task", "dedupe_key", "last_error")
    ordering = ("-id",)
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        from core import access

        return request.user.is_active and access.is_admin(request.user)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

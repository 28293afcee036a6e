from django.contrib import admin

from audit.models import AuditCheckpoint, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """The trail is append-only: the admin shows it and offers no way to change it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        from core import access

        user = request.user
        return user.is_active and (access.is_admin(user) or access.is_compliance(user))

    def has_module_permission(self, request):
        return self.has_view_permission(request)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "created_at",
        "actor_username",
        "action",
        "outcome",
        "object_type",
        "object_name",
        "model_name",
        "model_version",
    )
    list_filter = ("outcome", "object_type", "action", "auth_method")
    search_fields = ("actor_username", "action", "object_name", "model_name", "object_id")
    date_hierarchy = "created_at"
    ordering = ("-seq",)
    show_full_result_count = False
    actions = ["export_csv", "export_jsonl"]

    def _export(self, queryset, fmt: str):
        from django.http import StreamingHttpResponse

        from audit.export import export_lines

        body = export_lines(
            queryset.order_by("seq"),
            fmt=fmt,
            filters={"selection": "admin"},  # a selection: not contiguous
        )
        kind = "text/csv" if fmt == "csv" else "application/x-ndjson"
        response = StreamingHttpResponse(body, content_type=kind)
        response["Content-Disposition"] = f'attachment; filename="custody-audit-selection.{fmt}"'
        return response

    @admin.action(description="Export the selected events as CSV")
    def export_csv(self, request, queryset):
        return self._export(queryset, "csv")

    @admin.action(description="Export the selected events as JSON Lines")
    def export_jsonl(self, request, queryset):
        return self._export(queryset, "jsonl")


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "hash")
    ordering = ("-seq",)

from django.contrib import admin

from registry.models import Deployment, ModelVersion, RegisteredModel


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("version", "current_stage", "run_id", "source", "deleted")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ("name", "last_version", "user_id")
    search_fields = ("name",)
    readonly_fields = (
        "name",
        "name_key",
        "creation_timestamp",
        "last_updated_timestamp",
        "user_id",
        "last_version",
    )
    inlines = [ModelVersionInline]

    def has_delete_permission(self, request, obj=None):
        return False  # deletes go through the registry service (audited, Production-safe)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """The stage is read-only here: stages move only through the registry's transition
    service (and, for promotions, the review workflow)."""

    list_display = ("registered_model", "version", "current_stage", "run_id", "deleted")
    list_select_related = ("registered_model",)
    list_filter = ("current_stage", "deleted")
    search_fields = ("registered_model__name", "run_id")
    readonly_fields = (
        "registered_model",
        "version",
        "current_stage",
        "source",
        "storage_location",
        "run_id",
        "model_id",
        "user_id",
        "creation_timestamp",
        "last_updated_timestamp",
        "deleted",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("endpoint", "version", "since", "until", "recorded_by")
    list_select_related = ("version__registered_model",)
    readonly_fields = ("endpoint", "version", "model_uri", "since", "until", "recorded_by")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

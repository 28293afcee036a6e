"""The registry in the admin is a view: every field is read-only and nothing saves here.
Changes go through the API and the web UI, whose services audit them."""

from django.contrib import admin

from registry.models import Deployment, ModelVersion, RegisteredModel


class ViewOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a POST to a change form is refused (403); the page shows the values

    def has_delete_permission(self, request, obj=None):
        return False  # deletes go through the registry service (audited, Production-safe)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.concrete_fields if not f.auto_created]


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fields = ("version", "current_stage", "run_id", "source", "deleted")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ViewOnlyAdmin):
    list_display = ("name", "last_version", "user_id")
    search_fields = ("name",)
    inlines = [ModelVersionInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(ViewOnlyAdmin):
    """The stage is read-only here: stages move only through the registry's transition
    service (and, for promotions, the review workflow)."""

    list_display = ("registered_model", "version", "current_stage", "run_id", "deleted")
    list_select_related = ("registered_model",)
    list_filter = ("current_stage", "deleted")
    search_fields = ("registered_model__name", "run_id")


@admin.register(Deployment)
class DeploymentAdmin(ViewOnlyAdmin):
    list_display = ("endpoint", "version", "since", "until", "recorded_by")
    list_select_related = ("version__registered_model",)

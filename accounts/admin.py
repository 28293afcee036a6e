"""The admin for identity state. Users and groups (roles) are Django's own, but every change
made here goes through the audited services in accounts.services: Django's stock UserAdmin
and GroupAdmin save with plain model saves, which would leave no trace in the trail."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm
from django.contrib.auth.models import Group

from accounts import services
from accounts.models import ApiToken, Role

User = get_user_model()


class AuditedPasswordChangeForm(AdminPasswordChangeForm):
    def save(self, commit=True):
        password = (
            self.cleaned_data["password1"] if self.cleaned_data["set_usable_password"] else None
        )
        return services.user_set_password(user=self.user, password=password)


class UserCreationWithRoleForm(AdminUserCreationForm):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DATA_SCIENTIST)


class AuditedUserAdmin(DjangoUserAdmin):
    add_form = UserCreationWithRoleForm
    change_password_form = AuditedPasswordChangeForm
    # Not among the fields user_update saves: editable, an edit would be dropped silently.
    readonly_fields = ("last_login", "date_joined")
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "role", "usable_password", "password1", "password2"),
            },
        ),
    )

    def save_model(self, request, obj, form, change):
        if change:
            services.user_update(user=obj)
            return
        usable = form.cleaned_data.get("set_usable_password", True)
        created = services.user_create(
            username=obj.get_username(),
            role=form.cleaned_data["role"],
            password=form.cleaned_data.get("password1") if usable else None,
            email=obj.email,
        )
        # The admin goes on with `obj` (the log entry, the redirect): make it the stored row.
        obj.pk = created.pk
        obj._state.adding = False
        obj._state.db = created._state.db
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        if change:
            if "groups" in form.cleaned_data:
                services.user_set_roles(user=form.instance, groups=form.cleaned_data["groups"])
            if "user_permissions" in form.cleaned_data:
                services.user_set_permissions(
                    user=form.instance, permissions=form.cleaned_data["user_permissions"]
                )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        services.user_delete(user=obj)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            services.user_delete(user=user)


class AuditedGroupAdmin(DjangoGroupAdmin):
    def save_model(self, request, obj, form, change):
        services.group_save(group=obj)

    def save_related(self, request, form, formsets, change):
        if "permissions" in form.cleaned_data:
            services.group_set_permissions(
                group=form.instance, permissions=form.cleaned_data["permissions"]
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        services.group_delete(group=obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            services.group_delete(group=group)


for model, model_admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "display_prefix",
        "name",
        "user",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("user",)
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "display_prefix")
    readonly_fields = (
        "user",
        "name",
        "display_prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are shown once; create them from the UI, API or create_user

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.select_related("user"):
            services.token_revoke(token=token)
        messages.success(request, f"Revoked {queryset.count()} token(s).")

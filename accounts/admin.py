"""The admin for identity state. Users and groups (roles) are Django's own, but every change
made here goes through the audited services in accounts.services: Django's stock UserAdmin
and GroupAdmin save with plain model saves, which would leave no trace in the trail."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
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


class UserRoleChangeForm(UserChangeForm):
    """A user's roles and teams, not Django's raw permission list: what a user may do in
    Custody follows from the roles (and per-object grants), and the staff and superuser flags
    follow from the roles too (services.role_flags)."""

    roles = forms.MultipleChoiceField(
        choices=Role.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="admin: everything; reviewer: reviews promotions; compliance: reads "
        "everything and the audit trail, decides nothing; data-scientist: tracking and "
        "registry. Reviewers, compliance officers and admins may sign in to this console.",
    )
    teams = forms.ModelMultipleChoiceField(
        queryset=Group.objects.exclude(name__in=Role.values).order_by("name"),
        required=False,
        widget=FilteredSelectMultiple("teams", is_stacked=False),
        help_text="Groups that are not roles: grant a team access to an experiment or a model "
        "once, on its Access page, instead of each member.",
    )

    class Meta(UserChangeForm.Meta):
        fields = ("username", "first_name", "last_name", "email", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = set(self.instance.groups.values_list("name", flat=True))
        held = [role for role in Role.values if role in names]
        if self.instance.is_superuser and Role.ADMIN not in held:
            held.append(Role.ADMIN)
        self.fields["roles"].initial = held
        self.fields["teams"].initial = list(self.instance.groups.exclude(name__in=Role.values))


class AuditedUserAdmin(DjangoUserAdmin):
    add_form = UserCreationWithRoleForm
    form = UserRoleChangeForm
    change_password_form = AuditedPasswordChangeForm
    # Not among the fields user_update saves: editable, an edit would be dropped silently.
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Role and teams", {"fields": ("roles", "teams", "is_active")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    list_display = ("username", "email", "role_names", "is_active", "last_login")
    list_filter = ("groups", "is_active")

    @admin.display(description="roles and teams")
    def role_names(self, obj):
        return ", ".join(sorted(g.name for g in obj.groups.all())) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

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
        if change and "roles" in form.cleaned_data:
            services.user_set_roles_and_teams(
                user=form.instance,
                roles=form.cleaned_data["roles"],
                teams=form.cleaned_data.get("teams") or [],
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

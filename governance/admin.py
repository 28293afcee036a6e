"""The reviewers' console: an approval queue and, for each request, one screen with
everything needed to decide (source run, policy checks, model card, comparison with the
current Production version) and approve/reject buttons that call the same services as the
API. Nothing here writes a stage or a review directly."""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core import access, refusals
from core.errors import ApplicationError, ResourceDoesNotExist
from governance import approvals
from governance import policy as rules
from governance.models import CARD_FIELDS, ModelCard, ModelPolicy, TransitionRequest
from governance.selectors import requests as request_selectors
from governance.selectors import reviews as review_selectors
from governance.services import cards as card_services
from governance.services import policy as policy_services
from governance.services import reviews as review_services
from registry import admin as registry_admin
from registry import permissions as model_permissions
from registry.models import RegisteredModel

CONSOLE_ROLES = {"reviewer", "compliance"}


def console_user(request) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (access.is_admin(user) or CONSOLE_ROLES & set(access.roles(user)))
    )


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(s, s) for s in request_selectors.STATUSES]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


class ConsoleReadOnly:
    """Seen by the console's users; changed only through the services (API, forms)."""

    def has_module_permission(self, request):
        return console_user(request)

    def has_view_permission(self, request, obj=None):
        return console_user(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TransitionRequest)
class TransitionRequestAdmin(ConsoleReadOnly, admin.ModelAdmin):
    list_display = (
        "id",
        "model_name",
        "version_number",
        "move",
        "status",
        "requested_by",
        "created_at",
        "review_link",
    )
    list_filter = (StatusFilter, "to_stage")
    search_fields = ("version__registered_model__name", "requested_by__username")
    list_select_related = ("version__registered_model", "requested_by")
    ordering = ("-created_at",)

    # -- who sees what: reviewers the models they review, compliance and admins everything
    def get_queryset(self, request):
        qs = request_selectors.requests_qs(request.user)
        user = request.user
        if not (access.is_admin(user) or access.is_compliance(user)):
            qs = qs.filter(request_selectors.reviewable_q(user))
        return qs

    def get_changelist_instance(self, request):
        if "status" not in request.GET and "status__exact" not in request.GET:
            # The queue: open requests first is what a reviewer came for.
            request.GET = request.GET.copy()
            request.GET["status"] = "open"
        return super().get_changelist_instance(request)

    @admin.display(description="model", ordering="version__registered_model__name")
    def model_name(self, obj):
        return obj.version.registered_model.name

    @admin.display(description="version", ordering="version__version")
    def version_number(self, obj):
        return obj.version.version

    @admin.display(description="move")
    def move(self, obj):
        return f"{obj.from_stage} → {obj.to_stage}"

    @admin.display(description="")
    def review_link(self, obj):
        url = reverse("admin:governance_transitionrequest_change", args=[obj.pk])
        return format_html('<a href="{}">Review</a>', url)

    # -- the review screen
    def get_urls(self):
        extra = [
            path(
                "<int:request_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="governance_transitionrequest_decide",
            )
        ]
        return extra + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not console_user(request):
            raise DjangoPermissionDenied
        try:
            req = self.get_queryset(request).get(pk=int(object_id))
        except (TransitionRequest.DoesNotExist, ValueError):
            messages.error(request, f"Transition request {object_id} not found.")
            return redirect("admin:governance_transitionrequest_changelist")
        screen = review_selectors.review_screen(req)
        policy = rules.policy_for(req.version.registered_model)
        refusal = approvals.review_refusal(request.user, policy, req)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Review request #{req.pk}: {req.version.registered_model.name} "
            f"v{req.version.version} → {req.to_stage}",
            "req": req,
            "screen": screen,
            "card_fields": [(label, screen["card"][name]) for name, label in CARD_FIELDS.items()],
            "can_decide": screen["request"]["status"] == "open" and refusal is None,
            "why_not": refusal,
            "approve_waits_for": approvals.approval_waits_for(policy, req),
            "decide_url": reverse("admin:governance_transitionrequest_decide", args=[req.pk]),
        }
        return TemplateResponse(request, "admin/governance/review.html", context)

    def decide_view(self, request, request_id: int):
        if request.method != "POST" or not console_user(request):
            raise DjangoPermissionDenied
        decision = request.POST.get("decision")
        comment = request.POST.get("comment", "")
        back = reverse("admin:governance_transitionrequest_change", args=[request_id])
        try:
            messages.info(
                request,
                review_services.decide(
                    user=request.user,
                    request_id=request_id,
                    action=decision or "",
                    comment=comment,
                    reason=request.POST.get("reason", ""),
                    basis=request.POST.get("basis") or None,
                ),
            )
        except ResourceDoesNotExist:
            messages.error(request, f"Transition request {request_id} not found.")
            return redirect("admin:governance_transitionrequest_changelist")
        except ApplicationError as exc:
            refusals.show(request, exc)
        return redirect(back)


GATE = re.compile(r"^\s*(\S+)\s*(>=|<=|==|>|<)\s*(\S+)\s*$")
STRICTER_ONLY = (
    "Admins may change anything. A model's managers may only make its policy stricter: never "
    "fewer approvals (an empty 'approvals to leave Production' counts as the Production number), "
    "required tags or protected aliases, never a metric gate dropped or loosened, never a switch "
    "turned off, and never a change of reviewers. A loosening is refused with each one listed."
)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class PolicyForm(forms.ModelForm):
    """A policy as text fields for people (tags and aliases comma-separated, one gate per line)
    and numbers; validated by the same rules as the API (governance.policy), and saved through
    policy_services.policy_update, which enforces "managers only stricter" again and audits."""

    required_tags_text = forms.CharField(
        label="Required lineage tags", required=False, help_text="comma-separated"
    )
    metric_gates_text = forms.CharField(
        label="Metric gates",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 40}),
        help_text="one per line, e.g. val_auc >= 0.9 (operators >=, >, <=, <, ==)",
    )
    protected_aliases_text = forms.CharField(
        label="Protected aliases",
        required=False,
        help_text="comma-separated; they may only point at the Production version",
    )
    reviewer_names = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        label="Designated reviewers",
        help_text="empty: anyone with the reviewer role who may read the model (admins only)",
    )

    class Meta:
        model = ModelPolicy
        fields = ("model", *rules.SCALAR_FIELDS)
        labels = {"demotion_approvals": "Approvals to leave Production"}
        help_texts = {
            "demotion_approvals": "empty: as many as to enter Production",
            "archive_grace_seconds": "empty: the server's default",
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        policy = self.instance
        if policy.pk is None:
            for key, value in rules.default_values().items():
                if key in self.fields:
                    self.fields[key].initial = value
            policy = ModelPolicy(**rules.default_values())
        else:
            self.fields["model"].disabled = True
            self.fields["reviewer_names"].initial = list(policy.reviewers.all())
        if policy.demotion_approvals is None:
            self.fields["demotion_approvals"].help_text = (
                "empty: as many as to enter Production "
                f"(now {policy.production_approvals} (same as Production))"
            )
        self.fields["required_tags_text"].initial = ", ".join(policy.required_tags)
        self.fields["protected_aliases_text"].initial = ", ".join(policy.protected_aliases)
        self.fields["metric_gates_text"].initial = "\n".join(
            f"{g['metric']} {g['op']} {g['value']:g}" for g in policy.metric_gates
        )
        if user is not None and not access.is_admin(user):
            self.fields["reviewer_names"].disabled = True
            self.fields["model"].queryset = RegisteredModel.objects.filter(
                model_permissions.readable_models_q(user)
            )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        gates = []
        for line in (cleaned.get("metric_gates_text") or "").splitlines():
            if not line.strip():
                continue
            match = GATE.match(line)
            try:
                value = float(match.group(3)) if match else None
            except ValueError:
                value = None
            if value is None:
                raise forms.ValidationError(
                    f"Metric gate {line.strip()[:60]!r}: write it as metric operator number, "
                    "e.g. val_auc >= 0.9."
                )
            gates.append({"metric": match.group(1), "op": match.group(2), "value": value})
        data = {
            "required_tags": _names(cleaned.get("required_tags_text") or ""),
            "protected_aliases": _names(cleaned.get("protected_aliases_text") or ""),
            "metric_gates": gates,
            **{key: cleaned.get(key) for key in rules.SCALAR_FIELDS if key in cleaned},
        }
        if self.user is not None and access.is_admin(self.user):
            data["reviewers"] = [u.username for u in cleaned.get("reviewer_names") or []]
        model = cleaned.get("model") or self.instance.model
        try:
            changes = rules.clean_policy(data)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None
        if self.user is not None and not access.is_admin(self.user):
            current = rules.payload(rules.policy_for(model))
            proposed = {**current, **changes}
            looser = rules.loosenings(current, proposed)
            if looser:
                raise forms.ValidationError(
                    f"Only an admin can loosen the policy of '{model.name}': "
                    + "; ".join(looser)
                    + ". Managers may only make it stricter."
                )
        self.policy_data = data
        return cleaned


@admin.register(ModelPolicy)
class ModelPolicyAdmin(ConsoleReadOnly, admin.ModelAdmin):
    """Policies: admins edit anything; a model's managers (with console access) only make it
    stricter (the rule in governance.policy, explained on the form). Saved through the same
    audited service as PUT /api/v1/models/<name>/policy."""

    form = PolicyForm
    list_display = (
        "model",
        "production_approvals",
        "approvals_to_leave_production",
        "staging_approvals",
        "require_model_card",
    )
    fieldsets = (
        (None, {"fields": ("model",), "description": STRICTER_ONLY}),
        (
            "Approvals",
            {
                "fields": (
                    "staging_approvals",
                    "production_approvals",
                    "demotion_approvals",
                    "rollback_approvals",
                    "reviewer_names",
                    "exclude_run_author",
                )
            },
        ),
        (
            "Conditions",
            {
                "fields": (
                    "required_tags_text",
                    "require_tags_at_registration",
                    "metric_gates_text",
                    "require_model_card",
                    "protected_aliases_text",
                    "archive_grace_seconds",
                )
            },
        ),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(request_selectors.console_models_q(request.user, "model"))
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class BoundToUser(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=user, **kw)

        return BoundToUser

    def _manages(self, request, obj) -> bool:
        user = request.user
        if not console_user(request):
            return False
        if access.is_admin(user):
            return True
        if access.is_compliance(user) or obj is None:
            return False
        level = model_permissions.model_level(user, obj.model_id)
        return access.RANK[level] >= access.RANK[access.MANAGE]

    def has_add_permission(self, request):
        return console_user(request) and access.is_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return self._manages(request, obj)

    def save_model(self, request, obj, form, change):
        policy_services.policy_update(user=request.user, name=obj.model.name, data=form.policy_data)
        stored = ModelPolicy.objects.get(model=obj.model)
        obj.pk = stored.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # the reviewers were saved by the service

    @admin.display(description="approvals to leave Production")
    def approvals_to_leave_production(self, obj):
        # demotion_approvals, or (null) as many as production_approvals.
        if obj.demotion_approvals is None:
            return f"{obj.production_approvals} (same as Production)"
        return obj.demotion_approvals


@admin.register(ModelCard)
class ModelCardAdmin(admin.ModelAdmin):
    """Cards are edited here through the same service as the API (audited), by users who
    may edit the model."""

    list_display = ("version", "updated_by", "updated_at", "complete")
    list_select_related = ("version__registered_model",)
    fields = ("version", *CARD_FIELDS, "updated_by", "updated_at")
    readonly_fields = ("version", "updated_by", "updated_at")

    @admin.display(boolean=True)
    def complete(self, obj):
        return not obj.missing_fields()

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(request_selectors.console_models_q(request.user, "version__registered_model"))
        )

    def has_module_permission(self, request):
        return console_user(request)

    def has_view_permission(self, request, obj=None):
        return console_user(request)

    def has_add_permission(self, request):
        return False  # a card starts from its version (the API or the web UI)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return console_user(request) and not access.is_compliance(request.user)
        level = model_permissions.model_level(request.user, obj.version.registered_model_id)
        return access.RANK[level] >= access.RANK[access.EDIT] and not (
            access.is_compliance(request.user) and not access.is_admin(request.user)
        )

    def save_model(self, request, obj, form, change):
        card_services.card_update(
            user=request.user,
            name=obj.version.registered_model.name,
            version=obj.version.version,
            fields={name: form.cleaned_data.get(name, "") for name in CARD_FIELDS},
        )


class ConsoleVersionInline(registry_admin.ModelVersionInline):
    def has_view_permission(self, request, obj=None):
        return console_user(request)


# The registry's read-only model pages, shown to the console's users (reviewers, compliance
# officers, admins) for the models they see, with each model's timeline from the audit trail.
admin.site.unregister(RegisteredModel)


@admin.register(RegisteredModel)
class RegisteredModelConsoleAdmin(ConsoleReadOnly, registry_admin.RegisteredModelAdmin):
    change_form_template = "admin/governance/registered_model_timeline.html"
    inlines = [ConsoleVersionInline]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).filter(request_selectors.console_models_q(request.user))
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from governance.timeline import model_timeline

        model = self.get_object(request, object_id)
        extra = {**(extra_context or {})}
        if model is not None:
            extra["timeline"] = model_timeline(model)
        return super().change_view(request, object_id, form_url, extra_context=extra)

"""Access pages: the grants on one experiment or registered model, with forms (for those who
MANAGE it) to add a grant for a user or a group (a role or a team), change its level or remove
it. They call the same audited services as the API's POST/DELETE …/permissions."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import Group
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from core import access, refusals
from core.errors import ApplicationError
from registry import permissions as model_permissions
from registry import selectors as registry_selectors
from registry.models import RegisteredModel, RegisteredModelPermission
from tracking import permissions as experiment_permissions
from tracking import selectors as tracking_selectors
from tracking.models import Experiment, ExperimentPermission
from web.pages import page

LEVEL_MEANINGS = {
    access.NONE: "no access, even where the default or a role would give some",
    access.READ: "see it",
    access.EDIT: "log runs, register versions, request promotions",
    access.MANAGE: "all of that, and change these grants",
}


def _change(request, put, remove) -> None:
    """One grant change from the form: add/change (`put`) or remove."""
    kind = request.POST.get("kind", "user")
    principal = request.POST.get("principal", "").strip()
    if kind not in ("user", "group") or not principal:
        messages.error(request, "Name a user or a group.")
        return
    try:
        if request.POST.get("action") == "remove":
            remove(**{kind: principal})
            messages.success(request, f"Removed the grant of {kind} {principal}.")
        else:
            level = request.POST.get("level", "")
            outcome = put({kind: principal, "level": level})
            messages.success(request, f"{kind.capitalize()} {principal}: {level} ({outcome}).")
    except ApplicationError as exc:
        if exc.status == 404:
            raise
        refusals.show(request, exc)


def _render(request, *, title: str, back: str, grants, can_manage: bool, nav: str):
    return render(
        request,
        "web/access.html",
        {
            "nav": nav,
            "title": title,
            "back": back,
            "grants": grants,
            "can_manage": can_manage,
            "levels": LEVEL_MEANINGS,
            "groups": Group.objects.order_by("name").values_list("name", flat=True),
        },
    )


@page(access.MODEL_READ)
def model_access(request, name: str):
    model = registry_selectors.registered_model_get(name)
    if request.method == "POST":
        access.authorize(request, access.MODEL_MANAGE, {"name": name})
        _change(
            request,
            lambda grant: model_permissions.model_grant_put(name=model.name, grant=grant),
            lambda **who: model_permissions.model_grant_remove(name=model.name, **who),
        )
        return HttpResponseRedirect(reverse("web:model-access", args=[model.name]))
    level = model_permissions.model_level(request.user, model.pk)
    return _render(
        request,
        title=f"Access to model {model.name}",
        back=reverse("web:model", args=[model.name]),
        grants=model_permissions.grants_payload(model.pk),
        can_manage=access.RANK[level] >= access.RANK[access.MANAGE],
        nav="models",
    )


@page(access.EXPERIMENT_READ)
def experiment_access(request, experiment_id: str):
    experiment = tracking_selectors.experiment_get(experiment_id)
    pk = experiment.experiment_id
    if request.method == "POST":
        access.authorize(request, access.EXPERIMENT_MANAGE, {"experiment_id": experiment_id})
        _change(
            request,
            lambda grant: experiment_permissions.experiment_grant_put(
                experiment_id=pk, grant=grant
            ),
            lambda **who: experiment_permissions.experiment_grant_remove(experiment_id=pk, **who),
        )
        return HttpResponseRedirect(reverse("web:experiment-access", args=[pk]))
    level = experiment_permissions.experiment_level(request.user, pk)
    return _render(
        request,
        title=f"Access to experiment {experiment.name}",
        back=reverse("web:experiment", args=[pk]),
        grants=experiment_permissions.grants_payload(pk),
        can_manage=access.RANK[level] >= access.RANK[access.MANAGE],
        nav="access",
    )


@page(access.AUTHENTICATED)
def access_index(request):
    """The experiments and models whose access the user manages (admins: all, newest 200)."""
    user = request.user
    mine = Q(user=user) | Q(group_id__in=access.group_ids(user))
    experiments = Experiment.objects.filter(lifecycle_stage="active").order_by("-pk")
    models = RegisteredModel.objects.order_by("name")
    if not access.is_admin(user):
        experiments = experiments.filter(
            pk__in=ExperimentPermission.objects.filter(mine, level=access.MANAGE).values(
                "experiment_id"
            )
        )
        models = models.filter(
            pk__in=RegisteredModelPermission.objects.filter(mine, level=access.MANAGE).values(
                "model_id"
            )
        )
    return render(
        request,
        "web/access_index.html",
        {
            "nav": "access",
            "experiments": experiments[:200],
            "models": models[:200],
            "levels": LEVEL_MEANINGS,
        },
    )

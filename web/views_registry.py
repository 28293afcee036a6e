"""Pages for the registry: the models list, a model's page and a version's page. Each list
is a fixed number of queries whatever its length."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from core import access, refusals
from core.errors import ApplicationError
from governance.timeline import model_timeline
from registry import permissions as model_permissions
from registry import resolution
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import (
    Deployment,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from registry.transitions import Stage, is_rollback, may_move
from web.pages import Links, page
from web.views_governance import governance_context

MAX_MODELS = 500


@page(access.AUTHENTICATED)
def model_list(request):
    query = request.GET.get("q", "").strip()[:200]
    models = RegisteredModel.objects.filter(
        model_permissions.readable_models_q(request.user)
    ).order_by("name")
    if query:
        models = models.filter(name__icontains=query)
    models = list(models[:MAX_MODELS])
    ids = [m.pk for m in models]
    serving: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for model_id, stage, version in (
        ModelVersion.objects.filter(
            registered_model_id__in=ids,
            deleted=False,
            current_stage__in=[Stage.PRODUCTION, Stage.STAGING],
        )
        .order_by("-version")
        .values_list("registered_model_id", "current_stage", "version")
    ):
        serving[model_id][stage].append(version)
    aliases: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for model_id, alias, version in (
        RegisteredModelAlias.objects.filter(model_id__in=ids)
        .order_by("alias")
        .values_list("model_id", "alias", "version__version")
    ):
        aliases[model_id].append((alias, version))
    rows = [
        {
            "model": m,
            "production": serving[m.pk][Stage.PRODUCTION],
            "staging": serving[m.pk][Stage.STAGING],
            "aliases": aliases[m.pk],
        }
        for m in models
    ]
    return render(
        request,
        "web/model_list.html",
        {"nav": "models", "rows": rows, "q": query, "truncated": len(models) == MAX_MODELS},
    )


@page(access.MODEL_READ)
def model_detail(request, name: str):
    from governance import policy as rules

    model = registry_selectors.registered_model_get(name)
    versions = list(
        ModelVersion.objects.filter(registered_model=model, deleted=False).order_by("-version")
    )
    aliases: dict[int, list[str]] = defaultdict(list)
    for version_id, alias in RegisteredModelAlias.objects.filter(model=model).values_list(
        "version_id", "alias"
    ):
        aliases[version_id].append(alias)
    deployments = list(
        Deployment.objects.filter(version__registered_model=model, until__isnull=True)
        .select_related("version")
        .order_by("endpoint")
    )
    live = resolution.deployment_resolutions(deployments)
    for deployment in deployments:
        deployment.resolves_to = live[deployment.pk]["resolves_to"]
        deployment.drifted = live[deployment.pk]["drifted"]
    level = model_permissions.model_level(request.user, model.pk)
    can_edit = access.RANK[level] >= access.RANK[access.EDIT] and not (
        access.is_compliance(request.user) and not access.is_admin(request.user)
    )
    production = next((mv for mv in versions if mv.current_stage == Stage.PRODUCTION), None)
    version_link, run_link = Links("web:version", model.name), Links("web:run")
    context = {
        "nav": "models",
        "model": model,
        "versions": [
            {
                "mv": mv,
                "url": version_link(mv.version),
                "run_url": run_link(mv.run_id) if mv.run_id else "",
                "aliases": sorted(aliases[mv.pk]),
                # Archived → Production, for a version that was in Production before: opens a
                # rollback request (the policy's rollback_approvals) on the usual route.
                "can_roll_back": can_edit
                and is_rollback(mv.current_stage, Stage.PRODUCTION)
                and may_move(
                    mv.current_stage, Stage.PRODUCTION, was_in_production=mv.was_in_production
                ),
            }
            for mv in versions
        ],
        "production": production,
        "tags": sorted(RegisteredModelTag.objects.filter(model=model).values_list("key", "value")),
        "deployments": deployments,
        "policy": rules.payload(rules.policy_for(model)),
        "can_manage": access.RANK[level] >= access.RANK[access.MANAGE],
        "can_edit": can_edit,
    }
    context["serving"] = _serving_table(request, model, versions, aliases)
    context["timeline"] = model_timeline(model)
    return render(request, "web/model_detail.html", context)


def _serving_table(request, model, versions, aliases) -> list[dict]:
    """What each `models:/` URI a serving layer may use answers now, with snippets; from the
    rows the page already loaded (no query of its own), by the rules of /api/v1/resolve."""
    from urllib.parse import quote

    stages = {mv.version: mv.current_stage for mv in versions}
    number_of = {mv.pk: mv.version for mv in versions}
    alias_map = {
        alias: number_of[version_id]
        for version_id, names in aliases.items()
        if version_id in number_of
        for alias in names
    }
    base = request.build_absolute_uri("/").rstrip("/")
    uris = [f"models:/{model.name}/{ref}" for ref in ("Production", "Staging", "latest")]
    uris += [f"models:/{model.name}@{alias}" for alias in sorted(alias_map)]
    rows = []
    for uri in uris:
        number = resolution.resolve_in(uri, stages, alias_map)
        rows.append(
            {
                "uri": uri,
                "version": number,
                "stage": stages.get(number) if number is not None else None,
                "python": f'mlflow.pyfunc.load_model("{uri}")',
                "curl": f'curl -u "$USER:$TOKEN" "{base}/api/v1/resolve?uri={quote(uri, safe=":/@")}"',
            }
        )
    return rows


@page(access.MODEL_READ)
def version_detail(request, name: str, version: str):
    mv = registry_selectors.model_version_by_name(name, version)
    context = governance_context(request.user, mv)
    context.update(
        {
            "nav": "models",
            "model": mv.registered_model,
            "tags": sorted(ModelVersionTag.objects.filter(version=mv).values_list("key", "value")),
            "aliases": sorted(
                RegisteredModelAlias.objects.filter(version=mv).values_list("alias", flat=True)
            ),
            "deployments": list(Deployment.objects.filter(version=mv).order_by("-since")),
            "other_versions": list(
                ModelVersion.objects.filter(registered_model=mv.registered_model, deleted=False)
                .exclude(pk=mv.pk)
                .order_by("-version")
                .values_list("version", "current_stage")[:200]
            ),
            # The other registered versions built from the same logged model (what its
            # mlflow.modelVersions tag lists), of models the viewer may read.
            "logged_model_backs": list(
                ModelVersion.objects.filter(
                    model_permissions.readable_models_q(request.user, "registered_model_id"),
                    model_id=mv.model_id,
                    deleted=False,
                )
                .exclude(pk=mv.pk)
                .order_by("creation_timestamp", "pk")
                .values_list("registered_model__name", "version")[:50]
            )
            if mv.model_id
            else [],
        }
    )
    return render(request, "web/version_detail.html", context)


@page(access.MODEL_READ)
def version_diff(request, name: str, a: str, b: str):
    from lineage.diff import version_diff as diff

    va = registry_selectors.model_version_by_name(name, a)
    vb = registry_selectors.model_version_by_name(name, b)
    return render(
        request,
        "web/version_diff.html",
        {"nav": "models", "model": va.registered_model, "diff": diff(va, vb, request.user)},
    )


@page(access.MODEL_READ)
def version_diff_pick(request, name: str, version: str):
    from django.http import HttpResponseRedirect
    from django.urls import reverse

    other = registry_selectors.parse_version(request.GET.get("other", ""))
    mv = registry_selectors.model_version_by_name(name, version)
    # It reads "what changed from A to B": from the Production version when one of the two
    # is, else from the older one.
    theirs = registry_selectors.model_version_by_name(name, other)
    older, newer = sorted((theirs, mv), key=lambda v: (v.current_stage != "Production", v.version))
    return HttpResponseRedirect(
        reverse("web:version-diff", args=[mv.registered_model.name, older.version, newer.version])
    )


@page(access.MODEL_EDIT)
def alias_change(request, name: str):
    """Point an alias at a version, or remove it, from the model page. A protected alias is
    refused here as on every route: it moves with Production, through a request."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    alias = request.POST.get("alias", "")
    try:
        if request.POST.get("action") == "delete":
            registry_services.registered_model_delete_alias(name=name, alias=alias)
            messages.success(request, f"Alias @{alias} removed.")
        else:
            version = request.POST.get("version", "")
            registry_services.registered_model_set_alias(name=name, alias=alias, version=version)
            messages.success(request, f"@{alias} now points at version {version}.")
    except ApplicationError as exc:
        if exc.status == 404:
            raise
        refusals.show(request, exc)
    return HttpResponseRedirect(reverse("web:model", args=[name]) + "#serving")

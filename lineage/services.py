"""Declared links: who may declare and remove them, and the audited writes."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit import services as audit
from core import access, identifiers, refusals
from core.errors import PermissionDenied, ResourceAlreadyExists, ResourceDoesNotExist
from lineage.models import LineageLink
from registry.models import Deployment, ModelVersion
from registry.permissions import model_level
from tracking.models import LoggedModel, Run
from tracking.permissions import experiment_level

OBJECT_KINDS = ("run", "logged-model", "version", "deployment")


def _endpoint_model(endpoint: str) -> tuple[int, str] | None:
    """(model id, name) of the newest deployment at an endpoint: the endpoint's owner."""
    return (
        Deployment.objects.filter(endpoint=endpoint)
        .order_by("-since")
        .values_list("version__registered_model_id", "version__registered_model__name")
        .first()
    )


def authorize_ends(request: HttpRequest, ends: list[tuple[str, str]]) -> None:
    """Declaring a link needs EDIT on what stands at each end: the run's or the logged model's
    experiment, the version's model, the model an endpoint serves (its newest deployment).
    Unreadable or missing objects answer 404. A link between datasets and commits only needs
    the right to write at all (the "create" level: every role but compliance)."""
    for kind, key in ends:
        if kind == "run":
            # The access layer fails closed: a missing run or model is its 404.
            access.authorize(request, access.RUN_EDIT, {"run_id": key})
        elif kind == "logged-model":
            access.authorize(request, access.EXPERIMENT_EDIT, {"model_id": key})
        elif kind == "version":
            name, _, number = key.rpartition("/")
            model = access.authorize(request, access.MODEL_EDIT, {"name": name})
            if not ModelVersion.objects.filter(
                registered_model=model, version=identifiers.model_version(number), deleted=False
            ).exists():
                raise ResourceDoesNotExist(f"Model version {name}/{number} not found")
        elif kind == "deployment":
            owner = _endpoint_model(key)
            try:
                if owner is None:
                    raise ResourceDoesNotExist("")
                access.authorize(request, access.MODEL_EDIT, {"name": owner[1]})
            except ResourceDoesNotExist:
                raise ResourceDoesNotExist(f"No deployment at endpoint {key!r}") from None
    if not any(kind in OBJECT_KINDS for kind, _ in ends):
        access.authorize(request, access.EXPERIMENT_CREATE)


def may_edit_end(user, kind: str, key: str) -> bool:
    """EDIT on the object at one end of a link (False for datasets and commits)."""
    level = None
    if kind == "run":
        experiment = Run.objects.filter(run_id=key).values_list("experiment_id", flat=True).first()
        level = experiment_level(user, experiment) if experiment is not None else None
    elif kind == "logged-model":
        experiment = (
            LoggedModel.objects.filter(model_id=key).values_list("experiment_id", flat=True).first()
        )
        level = experiment_level(user, experiment) if experiment is not None else None
    elif kind == "version":
        name, _, number = key.rpartition("/")
        model = (
            ModelVersion.objects.filter(
                registered_model__name_key=identifiers.name_key(identifiers.model_name(name)),
                version=identifiers.model_version(number),
            )
            .values_list("registered_model_id", flat=True)
            .first()
        )
        level = model_level(user, model) if model is not None else None
    elif kind == "deployment":
        owner = _endpoint_model(key)
        level = model_level(user, owner[0]) if owner is not None else None
    return level is not None and access.RANK[level] >= access.RANK[access.EDIT]


def _snapshot(link: LineageLink) -> dict:
    return {
        "source": link.source,
        "target": link.target,
        "kind": link.kind,
        "created_by": link.created_by.username,
    }


def link_create(*, source: str, target: str, kind: str, user) -> LineageLink:
    try:
        with transaction.atomic():
            link = LineageLink.objects.create(
                source=source, target=target, kind=kind, created_by=user, created_at=timezone.now()
            )
            audit.record(
                action="lineage.link.create",
                object_type="lineage_link",
                object_id=link.pk,
                object_name=f"{link.source} -> {link.target}",
                after={"source": link.source, "target": link.target, "kind": link.kind},
            )
    except IntegrityError:
        raise ResourceAlreadyExists("This link is already declared.") from None
    return link


def link_delete(*, link: LineageLink, user, path: str) -> None:
    """The link's creator, an administrator, or someone with EDIT on an object at either end
    may remove it; compliance officers change nothing."""
    from lineage.graph import split_node

    allowed = access.is_admin(user) or (
        not access.is_compliance(user)
        and (
            link.created_by_id == user.pk
            or any(may_edit_end(user, *split_node(end)) for end in (link.source, link.target))
        )
    )
    if not allowed:
        reason = (
            "Removing a declared link needs its creator, an administrator, or EDIT on the run, "
            "logged model, version or endpoint at one of its ends."
        )
        raise PermissionDenied(
            reason,
            refusal=refusals.denial(
                "lineage.link_delete.denied",
                reason,
                object_type="lineage",
                object_id=path[:255],
            ),
        )
    with transaction.atomic():
        before = _snapshot(link)
        link_id = link.pk
        link.delete()
        audit.record(
            action="lineage.link.delete",
            object_type="lineage_link",
            object_id=link_id,
            object_name=f"{before['source']} -> {before['target']}",
            before=before,
        )

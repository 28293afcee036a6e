"""Access to registered models and their versions: the resolver for the central decision,
the read filter for searches, and grants."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from audit import services as audit
from core import access
from core import grants as grant_helpers
from core.errors import PermissionDenied, ResourceDoesNotExist
from registry.models import RegisteredModel, RegisteredModelPermission


def model_level(user, model_id: int) -> str:
    return access.effective_level(
        user,
        grant_helpers.grant_rows(RegisteredModelPermission, "model_id", model_id),
        settings.CUSTODY_DEFAULT_PERMISSION,
    )


def not_found_message(name: str) -> str:
    return f"Registered Model with name={name} not found"


def check_model(user, required: str, model_id: int, name: str) -> None:
    level = model_level(user, model_id)
    if access.RANK[level] < access.RANK[access.READ]:
        raise ResourceDoesNotExist(not_found_message(name))
    if access.RANK[level] < access.RANK[required]:
        raise PermissionDenied(
            f"Permission denied: this needs {required} on registered model '{name}'; "
            f"you have {level}."
        )


def _target_value(target: Any, key: str) -> Any:
    """`key` from what a route hands the access decision: URL kwargs, a DRF request's data
    or the parsed MLflow message."""
    value = None
    for source in (getattr(target, "kwargs", None), getattr(target, "data", None), target):
        if isinstance(source, dict) and source.get(key):
            value = source[key]
            break
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def _model_subject(target: Any) -> dict[str, Any]:
    """The model (and version) a refused request named, for its audit event."""
    name = _target_value(target, "name")
    if not isinstance(name, str):
        return {}
    version = _target_value(target, "version")
    if isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 10:
        version = int(version)
    elif not (isinstance(version, int) and not isinstance(version, bool) and version < 2**31):
        version = None
    return {"model_name": name, "model_version": version}


def _resolve_model(user, required: str, target: Any) -> None:
    name = _target_value(target, "name")
    if not isinstance(name, str):
        return  # the handler answers the missing parameter
    model_id = RegisteredModel.objects.filter(name=name).values_list("pk", flat=True).first()
    if model_id is not None:
        check_model(user, required, model_id, name)


def register() -> None:
    access.register_resolver("model", _resolve_model)
    access.register_subject("model", _model_subject)


def readable_models_q(user, field: str = "pk") -> Q:
    hidden = grant_helpers.hidden_ids(
        user,
        RegisteredModelPermission,
        "model",
        RegisteredModel.objects.all(),
        settings.CUSTODY_DEFAULT_PERMISSION,
    )
    return ~Q(**{f"{field}__in": hidden}) if hidden else Q()


def grants_payload(model_id: int) -> list[dict[str, str]]:
    return grant_helpers.grants_payload(RegisteredModelPermission, "model_id", model_id)


@transaction.atomic
def model_grants_replace(*, name: str, grants: list[dict[str, str]]) -> None:
    model = RegisteredModel.objects.select_for_update().filter(name=name).first()
    if model is None:
        raise ResourceDoesNotExist(not_found_message(name))
    rows = grant_helpers.build_grants(RegisteredModelPermission, "model", model, grants)
    before = grants_payload(model.pk)
    RegisteredModelPermission.objects.filter(model=model).delete()
    RegisteredModelPermission.objects.bulk_create(rows)
    audit.record(
        action="registered_model.permissions.update",
        object_type="registered_model",
        object_id=model.pk,
        object_name=model.name,
        model_name=model.name,
        before={"grants": before},
        after={"grants": grants_payload(model.pk)},
    )


def grant_creator(model: RegisteredModel, user) -> None:
    if user is not None and user.is_authenticated:
        RegisteredModelPermission.objects.get_or_create(
            model=model, user=user, defaults={"level": access.MANAGE}
        )

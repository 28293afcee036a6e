"""Access to registered models and their versions: the resolver for the central decision,
the read filter for searches, and grants."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from audit import services as audit
from core import access, identifiers, process_cache
from core import grants as grant_helpers
from core.errors import PermissionDenied, ResourceDoesNotExist
from core.prepared import PreparedQuery
from registry.models import RegisteredModel, RegisteredModelPermission


def model_level(user, model_id: int) -> str:
    if access.is_admin(user):
        return access.MANAGE
    return access.effective_level(
        user,
        grant_helpers.grant_rows(RegisteredModelPermission, "model_id", model_id),
        settings.CUSTODY_DEFAULT_PERMISSION,
    )


def not_found_message(name: str) -> str:
    return f"Registered Model with name={name} not found"


def check_model(user, required: str, model_id: int, name: str) -> None:
    """`name` is the caller's own (parsed) spelling: an unreadable model answers exactly as a
    missing one would, without revealing how the stored name is spelled."""
    level = model_level(user, model_id)
    if access.RANK[level] < access.RANK[access.READ]:
        raise ResourceDoesNotExist(not_found_message(name))
    if access.RANK[level] < access.RANK[required]:
        raise PermissionDenied(
            f"Permission denied: this needs {required} on registered model '{name}'; "
            f"you have {level}."
        )


def _model_subject(target: Any) -> dict[str, Any]:
    """The model (and version) a refused request named, for its audit event."""
    name = access.target_value(target, "name")
    if not isinstance(name, str):
        return {}
    version = access.target_value(target, "version")
    if isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 10:
        version = int(version)
    elif not (isinstance(version, int) and not isinstance(version, bool) and version < 2**31):
        version = None
    return {"model_name": name, "model_version": version}


def resolve_model(user, required: str, target: Any) -> RegisteredModel:
    """The registered model a request names (`name`), parsed once, found by its identity,
    decided on; the request then carries the stored name. A missing name is the handler's
    400, a missing or unreadable model its 404."""
    raw = access.target_value(target, "name")
    given = identifiers.model_name(raw)
    model = _model_by_key(identifiers.name_key(given))
    if model is None:
        raise ResourceDoesNotExist(not_found_message(given))
    check_model(user, required, model.pk, given)
    access.set_target_value(target, "name", model.name)
    return model


# name key -> the model, for requests that checked the cache versions themselves (serving
# reads: resolve, latest versions, aliases); any change to a model bumps `resolution`.
_MODELS = process_cache.Store(process_cache.RESOLUTION, "models")
# name_key is unique: at most one row, so no ORDER BY is needed.
_MODEL_BY_KEY: PreparedQuery[RegisteredModel] = PreparedQuery(
    lambda key: RegisteredModel.objects.filter(name_key=key), str
)


def _model_by_key(key: str) -> RegisteredModel | None:
    if not process_cache.checked_in_this_request():
        return _MODEL_BY_KEY.first(key)
    model = _MODELS.get_or_load(key, lambda: _MODEL_BY_KEY.first(key), keep_none=False)
    return process_cache.request_copy(model) if model is not None else None


def register() -> None:
    access.register_resolver("model", resolve_model)
    access.register_subject("model", _model_subject)
    # Grants are cached per process (core.grants); any saved or deleted grant row bumps.
    process_cache.bump_on_change(RegisteredModelPermission, process_cache.ACCESS)
    # What a name, stage or alias resolves to, and the versions' payloads, are cached per
    # process (registry.selectors, registry.api_v1): any saved or deleted registry row that
    # can change an answer bumps `resolution` in its own transaction.
    from registry.models import (
        Deployment,
        ModelVersion,
        ModelVersionTag,
        RegisteredModelAlias,
        RegisteredModelTag,
    )

    for model in (
        RegisteredModel,
        ModelVersion,
        RegisteredModelAlias,
        Deployment,
        ModelVersionTag,
        RegisteredModelTag,
    ):
        process_cache.bump_on_change(model, process_cache.RESOLUTION)


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


def _audit_grants(action: str, model: RegisteredModel, before: list, **extra: Any) -> None:
    process_cache.bump(process_cache.ACCESS)  # bulk writes send no signal
    audit.record(
        action=action,
        object_type="registered_model",
        object_id=model.pk,
        object_name=model.name,
        model_name=model.name,
        before={"grants": before},
        after={"grants": grants_payload(model.pk), **extra},
    )


@transaction.atomic
def model_grants_replace(*, name: str, grants: list[dict[str, str]]) -> RegisteredModel:
    from registry.selectors import registered_model_get

    model = registered_model_get(name, for_update=True)
    rows = grant_helpers.build_grants(RegisteredModelPermission, "model", model, grants)
    before = grants_payload(model.pk)
    RegisteredModelPermission.objects.filter(model=model).delete()
    RegisteredModelPermission.objects.bulk_create(rows)
    _audit_grants("registered_model.permissions.update", model, before)
    return model


@transaction.atomic
def model_grant_put(*, name: str, grant: dict[str, str]) -> str:
    """Adds one grant on a model, or changes the level of the user's or group's grant there;
    the others stay. Audited `registered_model.permissions.grant`."""
    from registry.selectors import registered_model_get

    model = registered_model_get(name, for_update=True)
    before = grants_payload(model.pk)
    outcome = grant_helpers.grant_put_one(RegisteredModelPermission, "model", model, grant)
    if outcome != "unchanged":
        _audit_grants("registered_model.permissions.grant", model, before, granted=grant)
    return outcome


@transaction.atomic
def model_grant_remove(*, name: str, user: str = "", group: str = "") -> None:
    """Removes one user's or group's grant on a model. Audited
    `registered_model.permissions.revoke`."""
    from registry.selectors import registered_model_get

    model = registered_model_get(name, for_update=True)
    before = grants_payload(model.pk)
    grant_helpers.grant_remove_one(
        RegisteredModelPermission, "model", model, user=user, group=group
    )
    removed = {"user": user} if user else {"group": group}
    _audit_grants("registered_model.permissions.revoke", model, before, removed=removed)


def grant_creator(model: RegisteredModel, user) -> None:
    if user is not None and user.is_authenticated:
        RegisteredModelPermission.objects.get_or_create(
            model=model, user=user, defaults={"level": access.MANAGE}
        )

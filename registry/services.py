"""Writes to the registry. Each function is one transaction that writes its audit event;
stage changes happen only in `model_version_transition_stage`, holding the registered
model's row lock."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from core import access, identifiers, process_cache
from core.errors import (
    Conflict,
    InvalidParameterValue,
    InvalidState,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
)
from core.mlflow_api import check_text, clean_name, name_identity
from outbox import services as outbox
from registry import hooks, permissions, selectors
from registry.models import (
    Deployment,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
)
from registry.source import resolve_source
from registry.transitions import Stage, canonical_stage
from registry.transitions import refusal as transition_refusal
from tracking import selectors as tracking_selectors
from tracking import services as tracking
from tracking.permissions import check_experiment
from tracking.services import now_ms
from tracking.validation import parse_key_values

MAX_NAME = 500
MAX_TAG_VALUE = 100_000
MAX_DESCRIPTION = 20_000
_ALIAS = re.compile(r"^[\w\-]*$")
_RESERVED_ALIAS = re.compile(r"^(latest|v\d+)$", re.IGNORECASE)


def _clean_model_name(name: Any) -> str:
    name = clean_name(name, "registered model name", max_length=MAX_NAME)
    if "/" in name or ":" in name:
        raise InvalidParameterValue(
            f"Invalid registered model name {name!r}: it must not contain '/' or ':'."
        )
    return name


def _description(value: Any) -> str:
    return check_text(value or "", "description", max_length=MAX_DESCRIPTION)


def _model_snapshot(model: RegisteredModel) -> dict[str, Any]:
    return {"name": model.name, "description": model.description}


def _version_snapshot(version: ModelVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "current_stage": version.current_stage,
        "description": version.description,
        "source": version.source,
        "run_id": version.run_id,
        "deleted": version.deleted,
    }


def _audit_model(action: str, model: RegisteredModel, **kwargs: Any) -> None:
    audit.record(
        action=action,
        object_type="registered_model",
        object_id=model.pk,
        object_name=model.name,
        model_name=model.name,
        **kwargs,
    )


def _audit_version(action: str, version: ModelVersion, model_name: str, **kwargs: Any) -> None:
    audit.record(
        action=action,
        object_type="model_version",
        object_id=version.pk,
        object_name=f"{model_name}/{version.version}",
        model_name=model_name,
        model_version=version.version,
        **kwargs,
    )


def _sync_version_links(model_ids: Any) -> None:
    """Keep each logged model's `mlflow.modelVersions` tag equal to the live versions built
    from it (MLflow's client and UI read the tag to show which registered versions a logged
    model backs). Called inside the transaction of the change. The logged model's row is
    locked before its versions are read, so a concurrent change from the same logged model
    under another registered model's lock is waited for and then seen, not overwritten.
    (Today registrations also serialize earlier, on the `resolution` cache version row.)"""
    for model_id in sorted({m for m in model_ids if m}):
        try:
            tracking_selectors.logged_model_get(model_id, for_update=True, allow_deleted=True)
        except ResourceDoesNotExist:
            continue
        links = [
            (name, str(number))
            for name, number in ModelVersion.objects.filter(model_id=model_id, deleted=False)
            .order_by("creation_timestamp", "pk")
            .values_list("registered_model__name", "version")
        ]
        tracking.logged_model_set_version_links(model_id=model_id, links=links)


def _logged_model_ids(model: RegisteredModel) -> list[str]:
    return list(
        ModelVersion.objects.filter(registered_model=model)
        .exclude(model_id="")
        .values_list("model_id", flat=True)
        .distinct()
    )


def _touch(model: RegisteredModel) -> None:
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["last_updated_timestamp"])


# ---------------------------------------------------------------------------------------------
# Registered models


def _insert_registered_model(*, name: str, **fields: Any) -> RegisteredModel:
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(name=name, name_key=name_identity(name), **fields)
    except IntegrityError:
        existing = (
            RegisteredModel.objects.filter(name_key=name_identity(name))
            .values_list("name", flat=True)
            .first()
        )
        detail = f" (as '{existing}')" if existing and existing != name else ""
        raise ResourceAlreadyExists(
            f"Registered Model (name={name}) already exists{detail}."
        ) from None


@transaction.atomic
def registered_model_create(
    *,
    name: Any,
    description: Any = "",
    tags: Sequence[dict] = (),
    user=None,
) -> RegisteredModel:
    name = _clean_model_name(name)
    parsed_tags = dict(
        parse_key_values(list(tags), "tag", value_limit=MAX_TAG_VALUE, truncate_values=False)
    )
    now = now_ms()
    model = _insert_registered_model(
        name=name,
        description=_description(description),
        creation_timestamp=now,
        last_updated_timestamp=now,
        user_id=user.get_username() if user is not None else "",
    )
    RegisteredModelTag.objects.bulk_create(
        [RegisteredModelTag(model=model, key=k, value=v) for k, v in parsed_tags.items()]
    )
    permissions.grant_creator(model, user)
    _audit_model("registered_model.create", model, after=_model_snapshot(model))
    return model


@transaction.atomic
def registered_model_rename(*, name: str, new_name: Any) -> RegisteredModel:
    model = selectors.registered_model_get(name, for_update=True)
    new_name = _clean_model_name(new_name)
    if ModelVersion.objects.filter(
        registered_model=model, current_stage=Stage.PRODUCTION, deleted=False
    ).exists():
        raise InvalidParameterValue(
            f"Cannot rename '{name}': version in Production is served under this name. "
            "Move it out of Production first."
        )
    before = _model_snapshot(model)
    model.name, model.name_key = new_name, name_identity(new_name)
    model.last_updated_timestamp = now_ms()
    try:
        with transaction.atomic():
            model.save(update_fields=["name", "name_key", "last_updated_timestamp"])
    except IntegrityError:
        raise ResourceAlreadyExists(f"Registered Model (name={new_name}) already exists.") from None
    _sync_version_links(_logged_model_ids(model))
    _audit_model("registered_model.rename", model, before=before, after=_model_snapshot(model))
    return model


@transaction.atomic
def registered_model_update(*, name: str, description: Any) -> RegisteredModel:
    model = selectors.registered_model_get(name, for_update=True)
    before = _model_snapshot(model)
    model.description = _description(description)
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["description", "last_updated_timestamp"])
    _audit_model("registered_model.update", model, before=before, after=_model_snapshot(model))
    return model


# A Production version leaves serving only by a stage move, which the model's policy governs
# (it may need approvals), so deletion never shortcuts it.
_LEAVE_PRODUCTION_FIRST = (
    "Request that the version leave Production first (transition-stage to Archived; the "
    "model's policy may ask for approvals), then delete."
)


@transaction.atomic
def registered_model_delete(*, name: str) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    if ModelVersion.objects.filter(
        registered_model=model, current_stage=Stage.PRODUCTION, deleted=False
    ).exists():
        raise InvalidState(
            f"Cannot delete '{name}': it has a version in Production, which deleting would take "
            f"out of serving. {_LEAVE_PRODUCTION_FIRST}"
        )
    if Deployment.objects.filter(version__registered_model=model, until__isnull=True).exists():
        raise InvalidParameterValue(f"Cannot delete '{name}': one of its versions is deployed.")
    before = _model_snapshot(model)
    _audit_model("registered_model.delete", model, before=before)
    Deployment.objects.filter(version__registered_model=model).delete()
    linked = _logged_model_ids(model)
    model.delete()
    _sync_version_links(linked)


@transaction.atomic
def registered_model_set_tag(*, name: str, key: Any, value: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    ((key, value),) = parse_key_values(
        [{"key": key, "value": value}], "tag", value_limit=MAX_TAG_VALUE, truncate_values=False
    )
    previous = RegisteredModelTag.objects.filter(model=model, key=key).first()
    RegisteredModelTag.objects.update_or_create(model=model, key=key, defaults={"value": value})
    _touch(model)
    _audit_model(
        "registered_model.tag.set",
        model,
        before={key: previous.value} if previous else None,
        after={key: value},
    )


@transaction.atomic
def registered_model_delete_tag(*, name: str, key: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    tag = RegisteredModelTag.objects.filter(model=model, key=key).first()
    if tag is None:
        raise ResourceDoesNotExist(f"No tag with key {key!r} on registered model {name!r}.")
    tag.delete()
    _touch(model)
    _audit_model("registered_model.tag.delete", model, before={key: tag.value})


def _clean_alias(alias: Any) -> str:
    alias = check_text(alias or "", "alias", max_length=255)
    if not alias or not _ALIAS.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {alias!r}: aliases are 1-255 letters, digits, '_' or '-'."
        )
    if _RESERVED_ALIAS.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias {alias!r}: 'latest' and 'v<number>' are reserved."
        )
    return alias


@transaction.atomic
def registered_model_set_alias(*, name: str, alias: Any, version: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    alias = _clean_alias(alias)
    target = selectors.model_version_get(model, version)
    # As in MLflow, an alias may point at any version, archived included; the aliases the
    # layer above governs (a model policy's protected aliases) are checked by the hook.
    hooks.check_alias(model, alias, target)
    existing = RegisteredModelAlias.objects.filter(model=model, alias=alias).first()
    before = {"alias": alias, "version": existing.version.version} if existing else None
    RegisteredModelAlias.objects.update_or_create(
        model=model, alias=alias, defaults={"version": target}
    )
    _touch(model)
    _audit_version(
        "model_version.alias.set",
        target,
        model.name,
        before=before,
        after={"alias": alias, "version": target.version},
    )


@transaction.atomic
def registered_model_delete_alias(*, name: str, alias: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    row = (
        RegisteredModelAlias.objects.select_related("version")
        .filter(model=model, alias=alias)
        .first()
    )
    if row is None:
        raise InvalidParameterValue(f"Registered model alias {alias} not found.")
    row.delete()
    _touch(model)
    _audit_version(
        "model_version.alias.delete",
        row.version,
        model.name,
        before={"alias": alias, "version": row.version.version},
    )


# ---------------------------------------------------------------------------------------------
# Model versions


@transaction.atomic
def model_version_create(
    *,
    name: str,
    source: str | None,
    run_id: str | None = None,
    model_id: str | None = None,
    description: Any = "",
    run_link: str | None = None,
    tags: list[dict] = (),  # type: ignore[assignment]
    user=None,
) -> ModelVersion:
    resolved = resolve_source(source, run_id=run_id, model_id=model_id)
    if user is not None:
        # Registering someone else's hidden run would leak it through the registry.
        check_experiment(
            user,
            access.READ,
            resolved.experiment_id,
            f"Run with id={resolved.run_id or source} not found",
        )
    parsed_tags = dict(
        parse_key_values(list(tags), "tag", value_limit=MAX_TAG_VALUE, truncate_values=False)
    )
    model = selectors.registered_model_get(name, for_update=True)
    hooks.check_registration(model, resolved.run_id)
    model.last_version += 1
    now = now_ms()
    version = ModelVersion.objects.create(
        registered_model=model,
        version=model.last_version,
        source=resolved.source,
        storage_location=resolved.storage_location,
        run_id=resolved.run_id,
        model_id=resolved.model_id,
        run_link=check_text(run_link or "", "run_link", max_length=1000),
        description=_description(description),
        user_id=user.get_username() if user is not None else "",
        creation_timestamp=now,
        last_updated_timestamp=now,
        stage_since=now,
    )
    model.last_updated_timestamp = now
    model.save(update_fields=["last_version", "last_updated_timestamp"])
    ModelVersionTag.objects.bulk_create(
        [ModelVersionTag(version=version, key=k, value=v) for k, v in parsed_tags.items()]
    )
    _sync_version_links([version.model_id])
    _audit_version("model_version.create", version, model.name, after=_version_snapshot(version))
    return version


@transaction.atomic
def model_version_update(*, name: str, version: Any, description: Any) -> ModelVersion:
    model = selectors.registered_model_get(name, for_update=True)
    mv = selectors.model_version_get(model, version)
    before = _version_snapshot(mv)
    mv.description = _description(description)
    mv.last_updated_timestamp = now_ms()
    mv.save(update_fields=["description", "last_updated_timestamp"])
    _audit_version(
        "model_version.update", mv, model.name, before=before, after=_version_snapshot(mv)
    )
    return mv


@transaction.atomic
def model_version_delete(*, name: str, version: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    mv = selectors.model_version_get(model, version)
    if mv.current_stage == Stage.PRODUCTION:
        raise InvalidState(
            f"Cannot delete version {mv.version} of '{name}': it is in Production, and deleting "
            f"it would take it out of serving. {_LEAVE_PRODUCTION_FIRST}"
        )
    if Deployment.objects.filter(version=mv, until__isnull=True).exists():
        raise InvalidParameterValue(f"Cannot delete version {mv.version}: it is deployed.")
    before = _version_snapshot(mv)
    RegisteredModelAlias.objects.filter(version=mv).delete()
    mv.deleted = True
    mv.last_updated_timestamp = now_ms()
    mv.save(update_fields=["deleted", "last_updated_timestamp"])
    _sync_version_links([mv.model_id])
    _touch(model)
    _audit_version(
        "model_version.delete", mv, model.name, before=before, after=_version_snapshot(mv)
    )
    hooks.stage_changed(mv, mv.current_stage)


@transaction.atomic
def model_version_set_tag(*, name: str, version: Any, key: Any, value: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    mv = selectors.model_version_get(model, version)
    ((key, value),) = parse_key_values(
        [{"key": key, "value": value}], "tag", value_limit=MAX_TAG_VALUE, truncate_values=False
    )
    previous = ModelVersionTag.objects.filter(version=mv, key=key).first()
    ModelVersionTag.objects.update_or_create(version=mv, key=key, defaults={"value": value})
    mv.last_updated_timestamp = now_ms()
    mv.save(update_fields=["last_updated_timestamp"])
    _audit_version(
        "model_version.tag.set",
        mv,
        model.name,
        before={key: previous.value} if previous else None,
        after={key: value},
    )


@transaction.atomic
def model_version_delete_tag(*, name: str, version: Any, key: Any) -> None:
    model = selectors.registered_model_get(name, for_update=True)
    mv = selectors.model_version_get(model, version)
    tag = ModelVersionTag.objects.filter(version=mv, key=key).first()
    if tag is None:
        raise ResourceDoesNotExist(f"No tag with key {key!r} on {name} version {mv.version}.")
    tag.delete()
    _audit_version("model_version.tag.delete", mv, model.name, before={key: tag.value})


def drop_aliases(
    mv: ModelVersion, model_name: str, *, reason: str, only: set[str] | None = None
) -> None:
    """Remove the aliases pointing at `mv` (or those of them named in `only`), each audited
    with `reason`; the caller holds the registered model's row lock."""
    rows = RegisteredModelAlias.objects.filter(version=mv)
    if only is not None:
        rows = rows.filter(alias__in=only)
    for alias in rows:
        alias.delete()
        _audit_version(
            "model_version.alias.delete",
            mv,
            model_name,
            before={"alias": alias.alias, "version": mv.version},
            reason=reason,
        )


def _move(
    mv: ModelVersion,
    target: str,
    model_name: str,
    *,
    reason: str = "",
    approval: dict[str, Any] | None = None,
) -> None:
    """One audited FSM move; the caller holds the registered model's row lock. `approval`
    (the transition request and who approved it) goes into the event's `after`."""
    before = _version_snapshot(mv)
    getattr(mv, ModelVersion.TRANSITION_METHODS[target])()
    mv.last_updated_timestamp = mv.stage_since = now_ms()
    fields = ["current_stage", "last_updated_timestamp", "stage_since"]
    if target == Stage.PRODUCTION and not mv.was_in_production:
        mv.was_in_production = True
        fields.append("was_in_production")
    mv.save(update_fields=fields)
    _audit_version(
        "model_version.transition",
        mv,
        model_name,
        before=before,
        after={**_version_snapshot(mv), **(approval or {})},
        reason=reason,
    )
    hooks.stage_changed(mv, before["current_stage"])


@transaction.atomic
def model_version_transition_stage(
    *,
    name: str,
    version: Any,
    stage: Any,
    archive_existing_versions: bool = False,
    approval: dict[str, Any] | None = None,
    reason: str = "",
) -> ModelVersion:
    """The only way a version's stage changes. Called by governance, which decides whether
    the move is allowed by the model's policy; this function keeps the state machine and the
    single-Production invariant.

    The registered model's row is locked for the whole move, so concurrent promotions of one
    model queue; a previous Production version leaves Production in this same transaction,
    and the partial unique index refuses a second Production row whatever happens."""
    target = canonical_stage(stage)
    if archive_existing_versions and target in (Stage.NONE, Stage.ARCHIVED):
        raise InvalidParameterValue(
            f"archive_existing_versions applies only to Staging and Production, not {target}."
        )
    model = selectors.registered_model_get(name, for_update=True)
    mv = selectors.model_version_get(model, version)
    if mv.current_stage == target:
        return mv
    refused = transition_refusal(
        name=model.name,
        version=mv.version,
        source=mv.current_stage,
        target=target,
        was_in_production=mv.was_in_production,
    )
    if refused:
        raise InvalidParameterValue(refused)
    others = ModelVersion.objects.filter(
        registered_model=model, deleted=False, current_stage=target
    ).exclude(pk=mv.pk)
    if target == Stage.PRODUCTION:
        for previous in others:
            _move(
                previous,
                Stage.ARCHIVED,
                model.name,
                reason=f"superseded in Production by version {mv.version}",
            )
    elif archive_existing_versions:
        for previous in others:
            _move(
                previous,
                Stage.ARCHIVED,
                model.name,
                reason=f"archive_existing_versions: version {mv.version} entered {target}",
            )
    try:
        with transaction.atomic():
            _move(mv, target, model.name, approval=approval, reason=reason)
    except IntegrityError:
        raise Conflict(
            f"Another version of '{name}' entered Production at the same moment; try again."
        ) from None
    _touch(model)
    if target == Stage.PRODUCTION:
        # In this transaction: a broker outage delays the archiving, never the answer.
        grace = hooks.archive_grace_seconds(model)
        outbox.enqueue(
            "registry.archive_superseded_versions",
            countdown=grace + 1 if grace else 0,
            registered_model_id=model.pk,
            production_version_id=mv.pk,
        )
    return mv


@transaction.atomic
def archive_superseded(*, registered_model_id: int, production_version_id: int) -> list[int]:
    """Archive Staging versions older than the Production version, once the grace period has
    passed. Idempotent: it re-reads everything and does nothing when nothing is left."""
    model = RegisteredModel.objects.select_for_update().filter(pk=registered_model_id).first()
    if model is None:
        return []
    production = ModelVersion.objects.filter(
        pk=production_version_id, current_stage=Stage.PRODUCTION, deleted=False
    ).first()
    if production is None:
        return []  # something else was promoted since; its own task handles it
    # The grace period counts from the promotion; until it has passed nothing is archived
    # (the delayed task or the periodic reconciliation comes back later).
    if now_ms() < production.stage_since + hooks.archive_grace_seconds(model) * 1000:
        return []
    archived = []
    for stale in ModelVersion.objects.filter(
        registered_model=model,
        current_stage=Stage.STAGING,
        deleted=False,
        version__lt=production.version,
        # Only what was already waiting when the promotion happened; a version put back into
        # Staging afterwards (say, for a rollback) was put there on purpose.
        stage_since__lte=production.stage_since,
    ):
        _move(
            stale,
            Stage.ARCHIVED,
            model.name,
            reason=f"superseded: version {production.version} is in Production",
        )
        archived.append(stale.version)
    return archived


# ---------------------------------------------------------------------------------------------
# Deployments


@transaction.atomic
def deployment_record(
    *, endpoint: str, model_uri: str | identifiers.ModelUri, user=None
) -> Deployment:
    endpoint = check_text(endpoint or "", "endpoint", max_length=255)
    if not endpoint.strip():
        raise InvalidParameterValue("An endpoint name such as '/predict' is required.")
    parsed = (
        model_uri
        if isinstance(model_uri, identifiers.ModelUri)
        else identifiers.model_uri(model_uri, "model_uri")
    )
    mv = selectors.resolve_model_uri(parsed, include_archived=True)
    # Recorded with the model's stored name, however the caller spelled it.
    model_uri = str(dataclasses.replace(parsed, name=mv.registered_model.name))
    if mv.current_stage == Stage.ARCHIVED:
        raise InvalidParameterValue(
            f"{model_uri} resolves to version {mv.version}, which is Archived; archived "
            "versions cannot be deployed."
        )
    now = timezone.now()
    closed = []
    for current in Deployment.objects.select_for_update().filter(
        endpoint=endpoint, until__isnull=True
    ):
        current.until = now
        current.save(update_fields=["until"])
        closed.append(current.pk)
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                endpoint=endpoint,
                version=mv,
                model_uri=model_uri,
                since=now,
                recorded_by=user.get_username() if user is not None else "",
            )
    except IntegrityError:
        # Two first deployments of one endpoint at the same instant: the index kept one.
        raise Conflict(
            f"Another deployment of {endpoint!r} was recorded at the same moment; try again."
        ) from None
    audit.record(
        action="deployment.record",
        object_type="deployment",
        object_id=deployment.pk,
        object_name=endpoint,
        model_name=mv.registered_model.name,
        model_version=mv.version,
        after={
            "endpoint": endpoint,
            "model_uri": model_uri,
            "version": mv.version,
            "closed": closed,
        },
    )
    return deployment


# ---------------------------------------------------------------------------------------------
# Imports from another MLflow server (mlflow_import). The registry's history is written as it
# was at the source: version numbers, times, users, stages and aliases. A stage or alias set
# here is not a promotion (no policy applies and no approval is invented); each is its own
# `*.import` audit event naming the source server and the source's time. Not reachable from
# any HTTP route.


@transaction.atomic
def registered_model_import(
    *,
    name: str,
    description: str,
    tags: dict[str, str],
    creation_timestamp: int,
    last_updated_timestamp: int,
    source: dict[str, Any],
    existing: RegisteredModel | None = None,
) -> RegisteredModel:
    name = _clean_model_name(name)
    before = _model_snapshot(existing) if existing else None
    if existing is None:
        model = _insert_registered_model(
            name=name,
            description=_description(description),
            creation_timestamp=creation_timestamp,
            last_updated_timestamp=last_updated_timestamp,
        )
    else:
        model = RegisteredModel.objects.select_for_update().get(pk=existing.pk)
        model.description = _description(description)
        model.last_updated_timestamp = last_updated_timestamp
        model.save(update_fields=["description", "last_updated_timestamp"])
        RegisteredModelTag.objects.filter(model=model).exclude(key__in=list(tags)).delete()
    RegisteredModelTag.objects.bulk_create(
        [RegisteredModelTag(model=model, key=k, value=v) for k, v in tags.items()],
        update_conflicts=True,
        unique_fields=["model", "key"],
        update_fields=["value"],
    )
    _audit_model(
        "registered_model.import",
        model,
        before=before,
        after={**_model_snapshot(model), "tags": tags, "source": source},
    )
    return model


@transaction.atomic
def model_version_import(
    *,
    model: RegisteredModel,
    version: int,
    stage: str,
    description: str,
    source_uri: str,
    storage_location: str,
    run_id: str,
    model_id: str,
    run_link: str,
    user_id: str,
    creation_timestamp: int,
    last_updated_timestamp: int,
    tags: dict[str, str],
    source: dict[str, Any],
) -> tuple[ModelVersion, str]:
    """Create or bring up to date one imported version, in the stage it has at the source.
    Answers the version and a note when the stage could not be kept: Custody holds one
    Production version per model, so a second one (MLflow allows several) is imported as
    Archived and the note says so."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    stage = canonical_stage(stage)
    note = ""
    if stage == Stage.PRODUCTION:
        holder = (
            ModelVersion.objects.filter(
                registered_model=model, current_stage=Stage.PRODUCTION, deleted=False
            )
            .exclude(version=version)
            .values_list("version", flat=True)
            .first()
        )
        if holder is not None:
            note = (
                f"version {version} is in Production at the source, as is version {holder}; "
                "Custody holds one Production version per model, so it was imported as Archived"
            )
            stage = Stage.ARCHIVED
    mv = ModelVersion.objects.filter(registered_model=model, version=version).first()
    before = _version_snapshot(mv) if mv else None
    fields = {
        "description": _description(description),
        "source": source_uri,
        "storage_location": storage_location,
        "run_id": run_id,
        "model_id": model_id,
        "run_link": run_link[:1000],
        "user_id": user_id,
        "creation_timestamp": creation_timestamp,
        "last_updated_timestamp": last_updated_timestamp,
        "stage_since": last_updated_timestamp,
    }
    if mv is None:
        # A new row may be created in any state; the state machine governs moves, and this
        # is a record of where the version already is.
        mv = ModelVersion.objects.create(
            registered_model=model,
            version=version,
            current_stage=stage,
            was_in_production=stage == Stage.PRODUCTION,
            **fields,
        )
    else:
        # The protected stage field is written by an UPDATE, the import's one narrow path.
        changed_stage = mv.current_stage != stage
        if not changed_stage:
            fields.pop("stage_since")
        ModelVersion.objects.filter(pk=mv.pk).update(
            current_stage=stage,
            was_in_production=mv.was_in_production or stage == Stage.PRODUCTION,
            **fields,
        )
        mv = ModelVersion.objects.get(pk=mv.pk)
        ModelVersionTag.objects.filter(version=mv).exclude(key__in=list(tags)).delete()
        # Neither this UPDATE nor the tags' upsert below sends the signals that drop the
        # cached answers showing this version (resolution, latest versions, the model).
        process_cache.bump(process_cache.RESOLUTION)
    ModelVersionTag.objects.bulk_create(
        [ModelVersionTag(version=mv, key=k, value=v) for k, v in tags.items()],
        update_conflicts=True,
        unique_fields=["version", "key"],
        update_fields=["value"],
    )
    if version > model.last_version:
        model.last_version = version
        model.save(update_fields=["last_version"])
    _audit_version(
        "model_version.import",
        mv,
        model.name,
        before=before,
        after={**_version_snapshot(mv), "user_id": user_id, "tags": tags, "source": source},
        reason=note,
    )
    return mv, note


@transaction.atomic
def model_aliases_import(
    *, model: RegisteredModel, aliases: dict[str, int], source: dict[str, Any]
) -> None:
    """Make the model's aliases those of the source ({alias: version number}), each change
    one `model_version.alias.import` event (or `.alias.delete` for one the source dropped)."""
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    versions = {
        mv.version: mv for mv in ModelVersion.objects.filter(registered_model=model, deleted=False)
    }
    current = {
        row.alias: row
        for row in RegisteredModelAlias.objects.select_related("version").filter(model=model)
    }
    for alias, row in current.items():
        if alias not in aliases:
            row.delete()
            _audit_version(
                "model_version.alias.delete",
                row.version,
                model.name,
                before={"alias": alias, "version": row.version.version},
                reason=f"import: the alias no longer exists at {source.get('server', '')}",
            )
    for alias, number in aliases.items():
        target = versions.get(number)
        existing = current.get(alias)
        if target is None or (existing is not None and existing.version_id == target.pk):
            continue
        RegisteredModelAlias.objects.update_or_create(
            model=model, alias=alias, defaults={"version": target}
        )
        _audit_version(
            "model_version.alias.import",
            target,
            model.name,
            before={"alias": alias, "version": existing.version.version} if existing else None,
            after={"alias": alias, "version": number, "source": source},
        )

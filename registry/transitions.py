"""The one table of allowed stage moves. The state machine on ModelVersion, the service that
moves stages and every error message read it from here."""

from __future__ import annotations

from django.db import models

from core.errors import InvalidParameterValue


class Stage(models.TextChoices):
    NONE = "None"
    STAGING = "Staging"
    PRODUCTION = "Production"
    ARCHIVED = "Archived"


# target -> the stages a version may come from. Archived → Production is a rollback: only a
# version that has been in Production before may take it (see `refusal`).
ALLOWED: dict[str, tuple[str, ...]] = {
    Stage.STAGING: (Stage.NONE, Stage.PRODUCTION),
    Stage.PRODUCTION: (Stage.STAGING, Stage.ARCHIVED),
    Stage.ARCHIVED: (Stage.NONE, Stage.STAGING, Stage.PRODUCTION),
    Stage.NONE: (Stage.STAGING, Stage.ARCHIVED),
}


def is_rollback(source: str, target: str) -> bool:
    """Archived → Production: a version that was in Production before goes back into it."""
    return source == Stage.ARCHIVED and target == Stage.PRODUCTION


def refusal(*, name: str, version: int, source: str, target: str, was_in_production: bool) -> str:
    """Why the table refuses moving `version` of `name` from `source` to `target` ('' when it
    allows it)."""
    if source not in ALLOWED[target]:
        targets = targets_from(source, was_in_production=was_in_production)
        return (
            f"Cannot move version {version} of '{name}' from {source} to {target}. From "
            f"{source} it may move to: {', '.join(targets) or 'nothing'}."
        )
    if is_rollback(source, target) and not was_in_production:
        return (
            f"Cannot move version {version} of '{name}' from Archived to Production: only a "
            "version that has been in Production before can be rolled back into it. Move it "
            "to None, then Staging, then request Production."
        )
    return ""


def sources_of(target: str) -> list[str]:
    return [str(s) for s in ALLOWED[target]]


def allowed_targets(source: str) -> list[str]:
    return [str(t) for t, sources in ALLOWED.items() if source in sources]


def targets_from(source: str, *, was_in_production: bool) -> list[str]:
    """The stages a version in `source` may move to now: the table's targets, the rollback
    only for a version that has been in Production before. What pages offer, and what
    `refusal` names when it refuses."""
    return [t for t in allowed_targets(source) if was_in_production or not is_rollback(source, t)]


def may_move(source: str, target: str, *, was_in_production: bool) -> bool:
    return target in targets_from(source, was_in_production=was_in_production)


def describe_allowed() -> str:
    return "; ".join(
        f"{' or '.join(str(s) for s in sources)} → {target}" for target, sources in ALLOWED.items()
    )


def canonical_stage(value: object) -> str:
    """MLflow's stage names in any letter case, stored in their canonical spelling."""
    if isinstance(value, str):
        for stage in Stage:
            if value.lower() == stage.value.lower():
                return stage.value
    raise InvalidParameterValue(
        f"Invalid Model Version stage: {str(value)[:40]!r}. Value must be one of "
        f"{', '.join(s.value for s in Stage)} (any letter case)."
    )

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


# target -> the stages a version may come from.
ALLOWED: dict[str, tuple[str, ...]] = {
    Stage.STAGING: (Stage.NONE, Stage.PRODUCTION),
    Stage.PRODUCTION: (Stage.STAGING,),
    Stage.ARCHIVED: (Stage.NONE, Stage.STAGING, Stage.PRODUCTION),
    Stage.NONE: (Stage.STAGING, Stage.ARCHIVED),
}


def sources_of(target: str) -> list[str]:
    return [str(s) for s in ALLOWED[target]]


def allowed_targets(source: str) -> list[str]:
    return [str(t) for t, sources in ALLOWED.items() if source in sources]


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

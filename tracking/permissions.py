"""Access to experiments, their runs, artifacts and logged models: resolvers for the central
decision in `core.access`, read filters for searches, and the grant service."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from audit import services as audit
from core import access
from core import grants as grant_helpers
from core.errors import PermissionDenied, ResourceDoesNotExist
from tracking.models import Experiment, ExperimentPermission, LoggedModel, Run

_DIGITS = re.compile(r"^\d{1,18}$")


def _field(target: Any, *names: str) -> Any:
    """Finds an identifier in an MLflow request message, URL kwargs or a plain dict."""
    sources = []
    if hasattr(target, "kwargs"):
        sources.append(target.kwargs)
    if hasattr(target, "data"):
        sources.append(target.data)
    if isinstance(target, dict):
        sources.append(target)
    for source in sources:
        for name in names:
            value = source.get(name)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return value
    return None


def _grants(experiment_id: int) -> list[tuple[int | None, int | None, str]]:
    return grant_helpers.grant_rows(ExperimentPermission, "experiment_id", experiment_id)


def experiment_level(user, experiment_id: int) -> str:
    return access.effective_level(user, _grants(experiment_id), settings.CUSTODY_DEFAULT_PERMISSION)


def check_experiment(user, required: str, experiment_id: int, not_found: str) -> None:
    level = experiment_level(user, experiment_id)
    if access.RANK[level] < access.RANK[access.READ]:
        raise ResourceDoesNotExist(not_found)
    if access.RANK[level] < access.RANK[required]:
        raise PermissionDenied(
            f"Permission denied: this needs {required} on experiment {experiment_id}; "
            f"you have {level}."
        )


def _resolve_experiment(user, required: str, target: Any) -> None:
    model_id = _field(target, "model_id")
    if model_id is not None and _field(target, "experiment_id") is None:
        experiment_id = (
            LoggedModel.objects.filter(pk=model_id).values_list("experiment_id", flat=True).first()
        )
        if experiment_id is not None:
            check_experiment(
                user, required, experiment_id, f"Logged model with id={model_id} not found"
            )
        return
    name = _field(target, "experiment_name")
    if name is not None:
        experiment_id = Experiment.objects.filter(name=name).values_list("pk", flat=True).first()
        if experiment_id is not None:
            check_experiment(
                user, required, experiment_id, f"Could not find experiment with name '{name}'"
            )
        return
    raw = _field(target, "experiment_id")
    if raw is None and getattr(getattr(target, "http", None), "path", "").endswith("runs/create"):
        raw = "0"  # runs/create without an experiment logs to Default
    if raw is not None and _DIGITS.match(str(raw)):
        experiment_id = int(raw)
        if Experiment.objects.filter(pk=experiment_id).exists():
            check_experiment(user, required, experiment_id, f"No Experiment with id={raw} exists")


def _resolve_run(user, required: str, target: Any) -> None:
    run_ids = []
    data = getattr(target, "data", None) or {}
    if isinstance(data.get("run_ids"), list):
        run_ids = [r for r in data["run_ids"] if isinstance(r, str)]
    else:
        run_id = _field(target, "run_id", "run_uuid")
        run_ids = [run_id] if isinstance(run_id, str) else []
    rows = dict(Run.objects.filter(pk__in=run_ids).values_list("run_id", "experiment_id"))
    for run_id in run_ids:
        if run_id in rows:
            check_experiment(user, required, rows[run_id], f"Run with id={run_id} not found")


def _resolve_artifact(user, required: str, target: Any) -> None:
    path = _field(target, "artifact_path", "path") or ""
    first = str(path).strip("/").split("/", 1)[0]
    if not first:
        if not access.is_admin(user):
            raise PermissionDenied(
                "Listing the artifact root is for administrators; list an experiment's or a "
                "run's artifacts instead."
            )
        return
    if _DIGITS.match(first) and Experiment.objects.filter(pk=int(first)).exists():
        check_experiment(user, required, int(first), f"No such artifact: {path}")


def register() -> None:
    access.register_resolver("experiment", _resolve_experiment)
    access.register_resolver("run", _resolve_run)
    access.register_resolver("artifact", _resolve_artifact)


# ---------------------------------------------------------------------------------------------
# Read filters for searches (nothing unreadable is returned or counted).


def unreadable_experiment_ids(user) -> set[int] | None:
    """Experiment ids hidden from this user, or None when nothing is hidden."""
    return grant_helpers.hidden_ids(
        user,
        ExperimentPermission,
        "experiment",
        Experiment.objects.all(),
        settings.CUSTODY_DEFAULT_PERMISSION,
    )


def readable_experiments_q(user, field: str = "experiment_id") -> Q:
    hidden = unreadable_experiment_ids(user)
    return ~Q(**{f"{field}__in": hidden}) if hidden else Q()


# ---------------------------------------------------------------------------------------------
# Grants


def grants_payload(experiment_id: int) -> list[dict[str, str]]:
    return grant_helpers.grants_payload(ExperimentPermission, "experiment_id", experiment_id)


@transaction.atomic
def experiment_grants_replace(*, experiment_id: int, grants: list[dict[str, str]]) -> None:
    experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if experiment is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    rows = grant_helpers.build_grants(ExperimentPermission, "experiment", experiment, grants)
    before = grants_payload(experiment_id)
    ExperimentPermission.objects.filter(experiment=experiment).delete()
    ExperimentPermission.objects.bulk_create(rows)
    audit.record(
        action="experiment.permissions.update",
        object_type="experiment",
        object_id=experiment_id,
        object_name=experiment.name,
        before={"grants": before},
        after={"grants": grants_payload(experiment_id)},
    )


def grant_creator(experiment: Experiment, user) -> None:
    if user is not None and user.is_authenticated:
        ExperimentPermission.objects.get_or_create(
            experiment=experiment, user=user, defaults={"level": access.MANAGE}
        )

"""Access to experiments, their runs, artifacts and logged models: resolvers for the central
decision in `core.access`, read filters for searches, and the grant service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from audit import services as audit
from core import access, identifiers, process_cache
from core import grants as grant_helpers
from core.errors import InvalidParameterValue, PermissionDenied, ResourceDoesNotExist
from core.prepared import PreparedQuery
from core.storage import clean_artifact_path
from tracking.artifact_locations import resolve_artifact_location
from tracking.models import Experiment, ExperimentPermission, LoggedModel, Run

_EXPERIMENT_FIELDS = [field.attname for field in Experiment._meta.concrete_fields]
# The experiment with its tags (a LEFT JOIN: one row per tag, one with NULLs when none), so
# that experiments/get answers from the row the access decision read: one query, not two.
_EXPERIMENT_WITH_TAGS: PreparedQuery[tuple] = PreparedQuery(
    lambda pk: Experiment.objects.filter(pk=pk).values_list(
        *_EXPERIMENT_FIELDS, "tags__key", "tags__value"
    ),
    int,
)
_NAMED_EXPERIMENT_WITH_TAGS: PreparedQuery[tuple] = PreparedQuery(
    lambda name_key: Experiment.objects.filter(name_key=name_key).values_list(
        *_EXPERIMENT_FIELDS, "tags__key", "tags__value"
    ),
    str,
)
_RUN_BY_ID: PreparedQuery[Run] = PreparedQuery(lambda run_id: Run.objects.filter(pk=run_id), str)
# run id -> the experiment it belongs to, from every run the resolver reads. A run never
# changes experiment, so an entry cannot go stale while the run exists; the writes decided
# from it check the experiment again in their own statement (DecidedRun).
_RUN_EXPERIMENTS = process_cache.Store(process_cache.ACCESS, "run experiments", size=50_000)


@dataclass(frozen=True)
class DecidedRun:
    """A run the access decision was taken on without reading it: its experiment came from
    `_RUN_EXPERIMENTS`. Only handlers marked `run_decided_from_cache` receive one; their
    write joins on the run being active in `experiment_id`, and when it is not (deleted,
    restored elsewhere, gone) they `forget_run` and decide again from the stored run."""

    run_id: str
    experiment_id: int


def forget_run(run_id: str) -> None:
    _RUN_EXPERIMENTS.discard(run_id)


def remember_run(run_id: str, experiment_id: int, epoch: Any) -> None:
    """A run this process has just created (committed): the first write to it is decided on
    its experiment without reading it back. `epoch`: process_cache.epoch(ACCESS) from before
    the run was written (an access change meanwhile leaves the entry out)."""
    _RUN_EXPERIMENTS.put(run_id, experiment_id, epoch)


def experiment_with_tags(pk: int | None = None, *, name_key: str = "") -> Experiment | None:
    """The experiment (by id, or by its name's identity key), its tags read with it as
    `prefetched_tags` (selectors.experiment_payloads uses them rather than reading the tags
    again)."""
    if pk is not None:
        rows = _EXPERIMENT_WITH_TAGS.all(pk)
    else:
        rows = _NAMED_EXPERIMENT_WITH_TAGS.all(name_key)
    if not rows:
        return None
    width = len(_EXPERIMENT_FIELDS)
    experiment = Experiment.from_db("default", _EXPERIMENT_FIELDS, rows[0][:width])
    experiment.prefetched_tags = [  # type: ignore[attr-defined]
        {"key": key, "value": value} for *_, key, value in rows if key is not None
    ]
    return experiment


def _grants(experiment_id: int) -> list[tuple[int | None, int | None, str]]:
    return grant_helpers.grant_rows(ExperimentPermission, "experiment_id", experiment_id)


def experiment_level(user, experiment_id: int) -> str:
    if access.is_admin(user):
        return access.MANAGE
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


def _experiment_of_logged_model(user, required: str, target: Any, raw: Any) -> int:
    model_id = identifiers.logged_model_id(raw)
    access.set_target_value(target, "model_id", model_id)
    experiment_id = (
        LoggedModel.objects.filter(pk=model_id).values_list("experiment_id", flat=True).first()
    )
    not_found = f"Logged model with id={model_id} not found"
    if experiment_id is None:
        raise ResourceDoesNotExist(not_found)
    check_experiment(user, required, experiment_id, not_found)
    return experiment_id


def resolve_experiment(user, required: str, target: Any) -> Experiment | None:
    """Every experiment identifier a request carries (`experiment_id`, `experiment_name`, a
    logged model's `model_id`) is parsed, found and decided on: a handler reading any one of
    them reads an object that was checked. Missing objects are 404s, never "allowed"."""
    decided: Experiment | None = None
    present = {
        key: access.target_value(target, key)
        for key in ("experiment_id", "experiment_name", "model_id")
    }
    present = {key: value for key, value in present.items() if value is not None}
    if not present:
        if getattr(getattr(target, "http", None), "path", "").endswith("runs/create"):
            present["experiment_id"] = "0"  # runs/create without an experiment logs to Default
        else:
            raise InvalidParameterValue(
                "Missing value for required parameter 'experiment_id' (or 'experiment_name')."
            )
    if "model_id" in present:
        _experiment_of_logged_model(user, required, target, present["model_id"])
    if "experiment_name" in present:
        given = identifiers.experiment_name(present["experiment_name"])
        decided = experiment_with_tags(name_key=identifiers.name_key(given))
        not_found = f"Could not find experiment with name '{given}'"
        if decided is None:
            raise ResourceDoesNotExist(not_found)
        check_experiment(user, required, decided.pk, not_found)
        access.set_target_value(target, "experiment_name", decided.name)
    if "experiment_id" in present:
        pk = identifiers.experiment_id(present["experiment_id"])
        decided = experiment_with_tags(pk)
        not_found = f"No Experiment with id={pk} exists"
        if decided is None:
            raise ResourceDoesNotExist(not_found)
        check_experiment(user, required, pk, not_found)
        access.set_target_value(target, "experiment_id", str(pk))
    return decided


def resolve_run(user, required: str, target: Any) -> Run | DecidedRun:
    """Every run a request names (`run_id`, the legacy `run_uuid`, a `run_ids` list), parsed,
    found and decided on; a missing run is a 404. For a handler marked
    `run_decided_from_cache` (PostgreSQL), a run whose experiment this process knows is
    decided on without reading it (a DecidedRun)."""
    given: list[str] = []
    # Every value counts: a query string may repeat `run_id` (the UI's get-history-bulk), and
    # each run it names is decided on, not only the first.
    for key in ("run_id", "run_uuid", "run_ids"):
        values = [value for value in access.target_values(target, key) if value is not None]
        if not values:
            continue
        canonical = [identifiers.run_id(value) for value in values]
        given += canonical
        for source in access.target_sources(target):
            if key in source:
                source[key] = canonical if isinstance(source[key], list) else canonical[0]
    if not given:
        raise InvalidParameterValue("Missing value for required parameter 'run_id'.")
    run_ids = list(dict.fromkeys(given))
    if (
        len(run_ids) == 1
        and getattr(target, "run_decided_from_cache", False)
        and connection.vendor == "postgresql"
    ):
        experiment_id = _RUN_EXPERIMENTS.get(run_ids[0])
        if experiment_id is not None:
            check_experiment(user, required, experiment_id, f"Run with id={run_ids[0]} not found")
            return DecidedRun(run_ids[0], experiment_id)
    started = process_cache.epoch(process_cache.ACCESS)
    found = _RUN_BY_ID.all(run_ids[0]) if len(run_ids) == 1 else Run.objects.filter(pk__in=run_ids)
    rows = {run.run_id: run for run in found}
    for run_id in run_ids:
        not_found = f"Run with id={run_id} not found"
        if run_id not in rows:
            raise ResourceDoesNotExist(not_found)
        _RUN_EXPERIMENTS.put(run_id, rows[run_id].experiment_id, started)
        check_experiment(user, required, rows[run_id].experiment_id, not_found)
    return rows[run_ids[0]]


def resolve_artifact(user, required: str, target: Any) -> Any:
    """The experiment (and run or logged model) an artifact path belongs to, found with the
    same location rules the artifact handlers use, after the one path validator."""
    raw = access.target_value(target, "artifact_path")
    if raw is None:
        raw = access.target_value(target, "path")
    path = clean_artifact_path("" if raw is None else raw, allow_empty=True)
    if not path:
        if not access.is_admin(user):
            raise PermissionDenied(
                "Listing the artifact root is for administrators; list an experiment's or a "
                "run's artifacts instead."
            )
        return None
    not_found = f"No such artifact: {path}"
    try:
        location = resolve_artifact_location(path, write=required != access.READ)
    except ResourceDoesNotExist:
        # A missing run or model below a readable experiment: the handler answers (a listing
        # of a missing path is empty, as in MLflow). A missing experiment is a 404 here.
        experiment_id = identifiers.experiment_id(path.split("/", 1)[0], "path")
        if not Experiment.objects.filter(pk=experiment_id).exists():
            raise
        check_experiment(user, required, experiment_id, not_found)
        return None
    check_experiment(user, required, location.experiment.pk, not_found)
    return location


def register() -> None:
    access.register_resolver("experiment", resolve_experiment)
    access.register_resolver("run", resolve_run)
    access.register_resolver("artifact", resolve_artifact)
    # Grants are cached per process (core.grants); any saved or deleted grant row bumps.
    process_cache.bump_on_change(ExperimentPermission, process_cache.ACCESS)
    # A run's experiment is cached (core.access decisions): a run or experiment deleted for
    # good must not be decided on from there.
    process_cache.bump_on_delete(Run, process_cache.ACCESS)
    process_cache.bump_on_delete(Experiment, process_cache.ACCESS)
    # Artifact owners are cached (tracking.artifact_locations); the database bumps their
    # family (tracking migration 0010) and this process drops them at once.
    watched = ("lifecycle_stage", "experiment", "experiment_id", "artifact_uri")
    for model, fields in (
        (Run, watched),
        (LoggedModel, (*watched, "source_run", "source_run_id")),
    ):
        process_cache.bump_on_change(
            model, process_cache.LIFECYCLE, fields=fields, on_create=False, bumped_by_database=True
        )


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


def _locked_experiment(experiment_id: int) -> Experiment:
    experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
    if experiment is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    return experiment


def _audit_grants(action: str, experiment: Experiment, before: list, **extra: Any) -> None:
    process_cache.bump(process_cache.ACCESS)  # bulk writes send no signal
    audit.record(
        action=action,
        object_type="experiment",
        object_id=experiment.pk,
        object_name=experiment.name,
        before={"grants": before},
        after={"grants": grants_payload(experiment.pk), **extra},
    )


@transaction.atomic
def experiment_grants_replace(*, experiment_id: int, grants: list[dict[str, str]]) -> None:
    experiment = _locked_experiment(experiment_id)
    rows = grant_helpers.build_grants(ExperimentPermission, "experiment", experiment, grants)
    before = grants_payload(experiment_id)
    ExperimentPermission.objects.filter(experiment=experiment).delete()
    ExperimentPermission.objects.bulk_create(rows)
    _audit_grants("experiment.permissions.update", experiment, before)


@transaction.atomic
def experiment_grant_put(*, experiment_id: int, grant: dict[str, str]) -> str:
    """Adds one grant on an experiment, or changes the level of the user's or group's grant
    there; the others stay. Audited `experiment.permissions.grant`."""
    experiment = _locked_experiment(experiment_id)
    before = grants_payload(experiment_id)
    outcome = grant_helpers.grant_put_one(ExperimentPermission, "experiment", experiment, grant)
    if outcome != "unchanged":
        _audit_grants("experiment.permissions.grant", experiment, before, granted=grant)
    return outcome


@transaction.atomic
def experiment_grant_remove(*, experiment_id: int, user: str = "", group: str = "") -> None:
    """Removes one user's or group's grant on an experiment. Audited
    `experiment.permissions.revoke`."""
    experiment = _locked_experiment(experiment_id)
    before = grants_payload(experiment_id)
    grant_helpers.grant_remove_one(
        ExperimentPermission, "experiment", experiment, user=user, group=group
    )
    removed = {"user": user} if user else {"group": group}
    _audit_grants("experiment.permissions.revoke", experiment, before, removed=removed)


def grant_creator(experiment: Experiment, user) -> None:
    if user is not None and user.is_authenticated:
        ExperimentPermission.objects.get_or_create(
            experiment=experiment, user=user, defaults={"level": access.MANAGE}
        )

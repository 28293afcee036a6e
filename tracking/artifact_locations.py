"""Where an artifact path belongs: the experiment, and the run or logged model whose artifact
directory holds it. Locations are server-assigned: writes and deletes must fall inside an
existing run's or logged model's artifact directory (`<exp>/<run>/artifacts/...`,
`<exp>/models/<model>/artifacts/...`); reads may also name the experiment directory and the
directories above those. The access resolver (tracking.permissions), the artifact handlers
(tracking.api_artifacts) and registry sources decide with these same rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import process_cache
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.prepared import PreparedQuery
from tracking.models import Experiment, LoggedModel, Run

SCHEME = "mlflow-artifacts:/"
_EXP = r"(?P<exp>0|[1-9]\d{0,17})"
_OWNER = r"(?:(?P<run>[0-9a-f]{32})|models/(?P<model>m-[0-9a-f]{32}))"
# Where files may be written: inside an owner's `artifacts` directory.
_OWNED = re.compile(rf"^{_EXP}/{_OWNER}/artifacts(?:/(?P<rest>.+))?$")
# What may be read or listed: the owned locations and the directories above them.
_READABLE = re.compile(rf"^{_EXP}(?:/models|/{_OWNER}(?:/artifacts(?:/(?P<rest>.+))?)?)?$")


# Looked up when the process has not seen the owner: compiled once.
_EXPERIMENT: PreparedQuery[Experiment] = PreparedQuery(
    lambda pk: Experiment.objects.filter(pk=pk), int
)
_RUN_FIELDS = [field.attname for field in Run._meta.concrete_fields]
_EXPERIMENT_FIELDS = [field.attname for field in Experiment._meta.concrete_fields]
# A run's path (the common case: every file a run logs) reads the run and its experiment in
# one query, a join on the run's foreign key.
_RUN_AND_EXPERIMENT: PreparedQuery[tuple] = PreparedQuery(
    lambda run_id, experiment_id: Run.objects.filter(
        pk=run_id, experiment_id=experiment_id
    ).values_list(*_RUN_FIELDS, *(f"experiment__{name}" for name in _EXPERIMENT_FIELDS)),
    str,
    int,
)
_LOGGED_MODEL: PreparedQuery[LoggedModel] = PreparedQuery(
    lambda model_id, experiment_id: LoggedModel.objects.filter(
        pk=model_id, experiment_id=experiment_id
    ),
    str,
    int,
)


@dataclass(frozen=True)
class ArtifactLocation:
    """What an artifact path belongs to. `owner` is None for the experiment directory and
    `<exp>/models`; `rest` is the path below the owner's `artifacts` directory."""

    experiment: Experiment
    owner: Run | LoggedModel | None
    rest: str
    path: str  # the cleaned path it was resolved from
    write: bool  # resolved with the write rules (an owner's artifact directory)


def _not_a_location(path: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"Invalid path: {path[:200]!r} is not inside a run's or a logged model's artifact "
        "location (<experiment>/<run>/artifacts/... or <experiment>/models/<model>/"
        "artifacts/...)."
    )


def resolve_artifact_location(path: str, *, write: bool) -> ArtifactLocation:
    """The experiment and run/logged model a (cleaned) artifact path belongs to.

    `write=True` requires an owner's artifact directory (PUT, DELETE, multipart); reads may
    name the directories above it. A wrong shape is 400; a well-formed path whose experiment,
    run or model does not exist is 404. The access layer can use this to decide
    per-experiment permissions."""
    match = (_OWNED if write else _READABLE).match(path)
    if match is None:
        raise _not_a_location(path)
    missing = ResourceDoesNotExist(f"No such artifact: {path}")
    owner: Run | LoggedModel | None = None
    experiment: Experiment | None
    if match["run"] or match["model"]:
        experiment, owner = _owner_and_experiment(
            match["run"] or match["model"], int(match["exp"]), is_run=bool(match["run"])
        )
    else:
        experiment = _EXPERIMENT.first(int(match["exp"]))
    if experiment is None or ((match["run"] or match["model"]) and owner is None):
        raise missing
    if owner is not None:
        # The row's own artifact_uri is the authority for where its files live.
        kind = match["run"] or f"models/{match['model']}"
        if owner.artifact_uri != f"{SCHEME}{match['exp']}/{kind}/artifacts":
            raise _not_a_location(path)
    return ArtifactLocation(experiment, owner, match["rest"] or "", path, write)


def _run_and_experiment(run_id: str, experiment_id: int) -> Run | None:
    """The run, with its experiment (one join on the run's foreign key)."""
    rows = _RUN_AND_EXPERIMENT.all(run_id, experiment_id)
    if not rows:
        return None
    width = len(_RUN_FIELDS)
    run = Run.from_db("default", _RUN_FIELDS, rows[0][:width])
    run.experiment = Experiment.from_db("default", _EXPERIMENT_FIELDS, rows[0][width:])
    return run


def _logged_model_and_experiment(model_id: str, experiment_id: int) -> LoggedModel | None:
    experiment = _EXPERIMENT.first(experiment_id)
    model = None if experiment is None else _LOGGED_MODEL.first(model_id, experiment.pk)
    if model is not None:
        model.experiment = experiment
    return model


# (run or logged model id, experiment id) -> the owner with its experiment, as last read.
# Every file a run or model logs, reads or lists names its owner, and what is decided on
# (the owner exists in that experiment with that artifact directory, and whether it is
# active) changes only with its lifecycle stage, experiment or artifact directory, or its
# deletion: in the database's own triggers, which bump the `lifecycle` family in the same
# statement (tracking migration 0010). So an upload is refused by every process within the
# poll interval of its run's deletion, and by the process that deleted it at once; an
# upload racing a deletion could always land just before it commits.
_OWNERS = process_cache.Store(process_cache.LIFECYCLE, "artifact owners", 50_000)


def _owner_and_experiment(
    owner_id: str, experiment_id: int, *, is_run: bool
) -> tuple[Experiment | None, Run | LoggedModel | None]:
    process_cache.refresh()
    load = _run_and_experiment if is_run else _logged_model_and_experiment
    cached = _OWNERS.get_or_load(
        (owner_id, experiment_id), lambda: load(owner_id, experiment_id), keep_none=False
    )
    if cached is None:
        return None, None
    # This request's own copies: the cached ones are shared between threads.
    owner = process_cache.request_copy(cached)
    owner.experiment = process_cache.request_copy(cached.experiment)
    return owner.experiment, owner


def artifact_owner(path: str) -> Run | LoggedModel:
    """The run or logged model whose artifact directory holds `path` (registry sources use
    this). Raises 400 for paths outside any owner's directory, 404 for a missing owner."""
    location = resolve_artifact_location(path, write=True)
    assert location.owner is not None
    return location.owner


def artifact_experiment_and_owner(path: str) -> tuple[Experiment, Run | LoggedModel | None]:
    """(experiment, run or logged model or None) for any readable artifact path."""
    location = resolve_artifact_location(path, write=False)
    return location.experiment, location.owner

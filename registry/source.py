"""Model version sources: only locations Custody itself assigned (reference/security.md §2.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.storage import clean_artifact_path
from tracking.models import LoggedModel, Run

_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})(?:/(?P<path>.*))?$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<model>m-[0-9a-f]{32})/?$")
_PROXY = "mlflow-artifacts:/"
ALLOWED = (
    "runs:/<run_id>/<path>, models:/<logged model id m-...>, or "
    "mlflow-artifacts:/<experiment>/<run>/artifacts/<path>"
)


@dataclass(frozen=True)
class Source:
    source: str
    storage_location: str
    run_id: str
    model_id: str
    experiment_id: int


def resolve_source(source: str | None, *, run_id: str | None, model_id: str | None) -> Source:
    if not source:
        raise InvalidParameterValue("Missing value for required parameter 'source'.")
    if any(ord(c) < 32 for c in source) or "\\" in source:
        raise InvalidParameterValue(
            f"Invalid model version source: control characters. Use {ALLOWED}."
        )
    match = _RUNS.match(source)
    if match:
        run = Run.objects.filter(pk=match["run"]).first()
        if run is None:
            raise ResourceDoesNotExist(f"Run with id={match['run']} not found")
        if match["path"]:
            clean_artifact_path(match["path"])
        if run_id and run_id != run.run_id:
            raise InvalidParameterValue("run_id does not match the run named in source.")
        return Source(source, source, run.run_id, model_id or "", run.experiment_id)
    match = _LOGGED_MODEL.match(source)
    if match:
        model = LoggedModel.objects.filter(pk=match["model"]).first()
        if model is None:
            raise ResourceDoesNotExist(f"Logged model with id={match['model']} not found")
        if model_id and model_id != model.model_id:
            raise InvalidParameterValue("model_id does not match the logged model in source.")
        return Source(
            source,
            model.artifact_uri,
            run_id or (model.source_run_id or ""),
            model.model_id,
            model.experiment_id,
        )
    if source.startswith(_PROXY):
        from tracking.artifact_locations import artifact_owner

        path = clean_artifact_path(source[len(_PROXY) :])
        owner = artifact_owner(path)
        owner_run = owner.run_id if isinstance(owner, Run) else (owner.source_run_id or "")
        return Source(source, source, run_id or owner_run, model_id or "", owner.experiment_id)
    raise InvalidParameterValue(f"Invalid model version source {source[:200]!r}: use {ALLOWED}.")

"""The logged-model page (MLflow 3 `m-…` models): what the model is (MLmodel: flavours,
signature, input example, requirements), its files, and the runs and registered versions that
use it."""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.shortcuts import render

from core import access
from core.errors import ResourceDoesNotExist
from tracking.models import LoggedModel, Run
from tracking.permissions import readable_experiments_q
from web.pages import page

MAX_FILE_BYTES = 256 * 1024
REQUIREMENT_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")


@page(access.EXPERIMENT_READ)
def logged_model_detail(request, model_id: str):
    from registry.models import ModelVersion
    from registry.permissions import readable_models_q
    from web.views_tracking import _artifacts

    model = (
        LoggedModel.objects.filter(pk=model_id)
        .select_related("experiment", "source_run")
        .prefetch_related("tags", "params")
        .first()
    )
    if model is None:
        raise ResourceDoesNotExist(f"Logged model with id={model_id} not found")
    root = model.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
    mlmodel_text = _read(root, "MLmodel")
    mlmodel = _parse_mlmodel(mlmodel_text)
    visible_runs = Run.objects.filter(readable_experiments_q(request.user, "experiment_id"))
    runs = list(
        visible_runs.filter(model_outputs__model=model)
        .union(visible_runs.filter(model_inputs__model=model))
        .values("run_id", "name")[:100]
    )
    versions = list(
        ModelVersion.objects.filter(model_id=model.model_id, deleted=False)
        .filter(readable_models_q(request.user, "registered_model"))
        .select_related("registered_model")
        .order_by("registered_model__name", "version")[:50]
    )
    tags = sorted(model.tags.all(), key=lambda t: t.key)
    return render(
        request,
        "web/logged_model.html",
        {
            "nav": "experiments",
            "model": model,
            "creator": _creator(model.creator_id),
            "source_run_visible": model.source_run_id
            and visible_runs.filter(pk=model.source_run_id).exists(),
            "user_tags": [t for t in tags if not t.key.startswith("mlflow.")],
            "system_tags": [t for t in tags if t.key.startswith("mlflow.")],
            "params": sorted(model.params.all(), key=lambda p: p.key),
            "mlmodel_text": mlmodel_text,
            "flavors": mlmodel.get("flavors", {}),
            "signature": _signature(mlmodel.get("signature")),
            "input_example": _input_example(root, mlmodel),
            "requirements": [(name, _read(root, name)) for name in REQUIREMENT_FILES],
            "runs": runs,
            "versions": versions,
            **_artifacts(model, request.GET.get("artifacts", "")),
        },
    )


def _creator(creator_id: str) -> str:
    """Who logged the model. The wire's creator_id is a user id (an int64 in MLflow's
    protocol): the API records the Custody user's pk, which a person reads as the username.
    An import keeps MLflow's own id and makes a user named by it, so an id that is also a
    username is shown as it is: never another person's name."""
    # ASCII digits (int() refuses "²"), at most 9: within any pk column.
    if not (creator_id.isascii() and creator_id.isdigit()) or len(creator_id) > 9:
        return creator_id
    users = get_user_model().objects
    if users.filter(username=creator_id).exists():
        return creator_id
    return users.filter(pk=int(creator_id)).values_list("username", flat=True).first() or creator_id


def _read(root: str, path: str) -> str | None:
    """A small text file of the model, or None when it is absent; cut at MAX_FILE_BYTES."""
    from core.storage import get_artifact_store

    store = get_artifact_store()
    full = f"{root}/{path}"
    if not store.is_file(full):
        return None
    chunks, _ = store.open(full)
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) >= MAX_FILE_BYTES:
            break
    return data[:MAX_FILE_BYTES].decode("utf-8", errors="replace")


def _parse_mlmodel(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        parsed = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError):  # a 5,000-digit int, deep nesting
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _signature(raw: Any) -> dict[str, list[dict]] | None:
    """MLmodel keeps the signature's inputs and outputs as JSON text: [{name, type}, ...]."""
    if not isinstance(raw, dict):
        return None
    result = {}
    for part in ("inputs", "outputs", "params"):
        value = raw.get(part)
        try:
            columns = json.loads(value) if isinstance(value, str) else value
        except (ValueError, RecursionError):
            columns = None
        if isinstance(columns, list):
            result[part] = [
                {
                    "name": c.get("name", ""),
                    "type": c.get("type", "")
                    if isinstance(c.get("type"), str)
                    else json.dumps(c.get("type")),
                    "required": c.get("required", True),
                }
                for c in columns
                if isinstance(c, dict)
            ]
    return result or None


def _input_example(root: str, mlmodel: dict) -> str | None:
    info = mlmodel.get("saved_input_example_info")
    path = info.get("artifact_path") if isinstance(info, dict) else None
    if not isinstance(path, str) or "/" in path or ".." in path:
        path = "input_example.json"
    return _read(root, path)

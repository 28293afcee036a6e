"""The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/...`), the run artifact listing and
server-info. Paths are relative to the artifact root, as in `mlflow-artifacts:/<path>`."""

from __future__ import annotations

import mimetypes
import posixpath
import re
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse

from core import access
from core.errors import InvalidParameterValue, NotImplementedOnServer, ResourceDoesNotExist
from core.mlflow_api import MlflowRequest, mlflow_route, raw_body
from tracking import selectors
from tracking.artifacts import clean_artifact_path, get_artifact_store
from tracking.models import LoggedModel, Run

ARTIFACTS = ("api/2.0/mlflow-artifacts/", "ajax-api/2.0/mlflow-artifacts/")
_OWNED = re.compile(
    r"^(?P<exp>\d{1,18})/(?:(?P<run>[0-9a-f]{32})|models/(?P<model>m-[0-9a-f]{32}))/artifacts"
    r"(?:/(?P<rest>.+))?$"
)


def artifact_owner(path: str) -> Run | LoggedModel:
    """The run or logged model whose storage `path` lies in; the server assigned it."""
    match = _OWNED.match(path)
    if match is None:
        raise InvalidParameterValue(
            f"Invalid path: {path!r} is not inside a run's or a logged model's artifact "
            "location (<experiment>/<run>/artifacts/... or <experiment>/models/<model>/"
            "artifacts/...)."
        )
    exp = int(match["exp"])
    if match["run"]:
        owner = Run.objects.filter(pk=match["run"], experiment_id=exp).first()
    else:
        owner = LoggedModel.objects.filter(pk=match["model"], experiment_id=exp).first()
    if owner is None:
        raise ResourceDoesNotExist(f"No run or logged model owns the artifact path {path!r}.")
    return owner


def _download(path: str) -> StreamingHttpResponse:
    chunks, size = get_artifact_store().open(path)
    name = posixpath.basename(path)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Length"] = str(size)
    # The name was validated (no control characters); quotes are escaped for the header.
    safe = name.replace("\\", "_").replace('"', "_")
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@mlflow_route(
    "artifacts/<path:artifact_path>", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS
)
def download_artifact(req: MlflowRequest):
    path = clean_artifact_path(req.kwargs["artifact_path"])
    return _download(path)


@raw_body
@mlflow_route(
    "artifacts/<path:artifact_path>", "PUT", access=access.ARTIFACT_EDIT, prefixes=ARTIFACTS
)
def upload_artifact(req: MlflowRequest) -> dict:
    path = clean_artifact_path(req.kwargs["artifact_path"])
    owner = artifact_owner(path)
    if not _OWNED.match(path)["rest"]:
        raise InvalidParameterValue("Invalid path: name a file inside the artifact directory.")
    if getattr(owner, "lifecycle_stage", "active") != "active":
        raise InvalidParameterValue(f"Cannot upload to {path!r}: its run or model is deleted.")
    get_artifact_store().put(path, req.http, settings.CUSTODY_MAX_ARTIFACT_BYTES)
    return {}


@mlflow_route(
    "artifacts/<path:artifact_path>", "DELETE", access=access.ARTIFACT_MANAGE, prefixes=ARTIFACTS
)
def delete_artifact(req: MlflowRequest) -> dict:
    path = clean_artifact_path(req.kwargs["artifact_path"])
    artifact_owner(path)
    get_artifact_store().delete(path)
    return {}


@mlflow_route("artifacts", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS)
def list_artifacts(req: MlflowRequest) -> dict:
    path = clean_artifact_path(req.str("path") or "", allow_empty=True)
    entries = get_artifact_store().list_dir(path)
    if not entries:
        return {}
    return {
        "files": [
            {"path": e.name, "is_dir": e.is_dir, **({} if e.is_dir else {"file_size": e.size})}
            for e in entries
        ]
    }


def _not_implemented(req: MlflowRequest) -> dict:
    raise NotImplementedOnServer(
        "Multipart and presigned transfers are not enabled on this server; upload and download "
        "through the artifact proxy (PUT/GET)."
    )


for _route in (
    "mpu/create/<path:artifact_path>",
    "mpu/complete/<path:artifact_path>",
    "mpu/abort/<path:artifact_path>",
):
    mlflow_route(_route, "POST", access=access.ARTIFACT_EDIT, prefixes=ARTIFACTS)(_not_implemented)
mlflow_route(
    "presigned/<path:artifact_path>", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS
)(_not_implemented)


@mlflow_route("artifacts/list", "GET", access=access.RUN_READ)
def list_run_artifacts(req: MlflowRequest) -> dict:
    run = selectors.run_get(req.run_id())
    sub = clean_artifact_path(req.str("path") or "", allow_empty=True)
    root = run.artifact_uri.removeprefix("mlflow-artifacts:/")
    entries = get_artifact_store().list_dir(f"{root}/{sub}" if sub else root) or []
    files: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"path": f"{sub}/{e.name}" if sub else e.name, "is_dir": e.is_dir}
        if not e.is_dir:
            item["file_size"] = e.size
        files.append(item)
    return {"root_uri": run.artifact_uri, "files": files}


@mlflow_route("server-info", "GET", access=access.AUTHENTICATED, prefixes=("api/3.0/mlflow/",))
def server_info(req: MlflowRequest) -> dict:
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "artifacts_presigned_only": False,
        "artifact_serving_enabled": True,
    }

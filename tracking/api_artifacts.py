"""The MLflow artifact proxy (`/api/2.0/mlflow-artifacts/...`), the run artifact listing and
server-info. Paths are relative to the artifact root, as in `mlflow-artifacts:/<path>`.

Locations are server-assigned: writes and deletes must fall inside an existing run's or
logged model's artifact directory (`<exp>/<run>/artifacts/...`,
`<exp>/models/<model>/artifacts/...`); reads may also name the experiment directory and
the directories above those, and administrators may list the root. Every path goes through
`clean_artifact_path` before anything touches storage."""

from __future__ import annotations

import mimetypes
import posixpath
import re
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from core import access
from core.errors import InvalidParameterValue, NotImplementedOnServer, ResourceDoesNotExist
from core.mlflow_api import MlflowRequest, mlflow_route, raw_body
from core.storage import clean_artifact_path, get_artifact_store
from tracking import selectors
from tracking.artifact_locations import SCHEME, ArtifactLocation, resolve_artifact_location
from tracking.models import LifecycleStage, LoggedModel, Run

ARTIFACTS = ("api/2.0/mlflow-artifacts/", "ajax-api/2.0/mlflow-artifacts/")
# Browsers must never render an artifact on our origin; these are served as plain text.
_ACTIVE_TYPES = re.compile(r"html|xml|svg|javascript|ecmascript", re.IGNORECASE)


def _content_type(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return "text/plain" if _ACTIVE_TYPES.search(guessed) else guessed


def _download(path: str) -> StreamingHttpResponse:
    chunks, size = get_artifact_store().open(path)
    name = posixpath.basename(path)
    response = StreamingHttpResponse(chunks, content_type=_content_type(name))
    response["Content-Length"] = str(size)
    # Django quotes `"` and `\` and switches to filename*=utf-8''... for anything not plain
    # ASCII; the validator already refused control characters, so no header can be split.
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _path_kwarg(req: MlflowRequest) -> str:
    return clean_artifact_path(req.kwargs["artifact_path"])


def _path_param(req: MlflowRequest, name: str) -> str:
    """A path from the query or body, straight to the one validator (which also refuses NUL
    and lone surrogates with the same "Invalid path" message)."""
    value = req.data.get(name)
    if isinstance(value, list) and req.http.method == "GET":
        value = value[0] if value else None
    return "" if value is None else clean_artifact_path(value, allow_empty=True)


def _location(req: MlflowRequest, path: str, *, write: bool) -> ArtifactLocation:
    """The location the access layer decided on, when it resolved this path with the same
    rules; otherwise found now."""
    resolved = req.resolved
    if isinstance(resolved, ArtifactLocation) and (resolved.path, resolved.write) == (path, write):
        return resolved
    return resolve_artifact_location(path, write=write)


@mlflow_route(
    "artifacts/<path:artifact_path>", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS
)
def download_artifact(req: MlflowRequest):
    path = _path_kwarg(req)
    _location(req, path, write=False)
    return _download(path)


def _body_stream(req: MlflowRequest) -> tuple[Any, int | None]:
    """The request body as a stream and its announced length. Django reads nothing of a
    body without Content-Length, so a chunked upload (empty files from the MLflow client
    come that way) is read from the WSGI input, which the server has de-chunked."""
    meta = req.http.META
    raw_length = meta.get("CONTENT_LENGTH")
    if raw_length not in (None, ""):
        try:
            length = int(raw_length)
        except ValueError:
            raise InvalidParameterValue("Invalid Content-Length header.") from None
        if length < 0:
            raise InvalidParameterValue("Invalid Content-Length header.")
        return req.http, length
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return meta["wsgi.input"], None
    return req.http, 0


@raw_body
@mlflow_route(
    "artifacts/<path:artifact_path>", "PUT", access=access.ARTIFACT_EDIT, prefixes=ARTIFACTS
)
def upload_artifact(req: MlflowRequest) -> dict:
    path = _path_kwarg(req)
    location = _location(req, path, write=True)
    if not location.rest:
        raise InvalidParameterValue("Invalid path: name a file inside the artifact directory.")
    if getattr(location.owner, "lifecycle_stage", LifecycleStage.ACTIVE) != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(f"Cannot upload to {path!r}: its run or model is deleted.")
    stream, length = _body_stream(req)
    get_artifact_store().put(path, stream, length)
    return {}


@mlflow_route(
    "artifacts/<path:artifact_path>", "DELETE", access=access.ARTIFACT_MANAGE, prefixes=ARTIFACTS
)
def delete_artifact(req: MlflowRequest) -> dict:
    path = _path_kwarg(req)
    _location(req, path, write=True)
    get_artifact_store().delete(path)
    return {}


@mlflow_route("artifacts", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS)
def list_artifacts(req: MlflowRequest) -> dict:
    path = _path_param(req, "path")
    if path:
        try:
            _location(req, path, write=False)
        except ResourceDoesNotExist:
            return {}  # MLflow answers a missing path with an empty listing
    entries = get_artifact_store().list_dir(path)
    if not entries:
        return {}
    return {
        "files": [
            {"path": e.name, "is_dir": e.is_dir, **({} if e.is_dir else {"file_size": e.size})}
            for e in entries
        ]
    }


def _not_implemented() -> NotImplementedOnServer:
    return NotImplementedOnServer(
        "Multipart and presigned transfers are not enabled on this server; upload and download "
        "through the artifact proxy (PUT/GET)."
    )


def _multipart(req: MlflowRequest) -> dict:
    # Validate exactly as a PUT would (the path, the file name in the body, the owner), so
    # these endpoints refuse the same payloads before saying they are not implemented.
    path = _path_kwarg(req)
    # The file name is required by the schema and is never "." (an upload target).
    path = clean_artifact_path(f"{path}/{clean_artifact_path(req.str('path'))}")
    resolve_artifact_location(path, write=True)
    raise _not_implemented()


for _route in (
    "mpu/create/<path:artifact_path>",
    "mpu/complete/<path:artifact_path>",
    "mpu/abort/<path:artifact_path>",
):
    mlflow_route(_route, "POST", access=access.ARTIFACT_EDIT, prefixes=ARTIFACTS)(_multipart)


@mlflow_route(
    "presigned/<path:artifact_path>", "GET", access=access.ARTIFACT_READ, prefixes=ARTIFACTS
)
def presigned_download(req: MlflowRequest) -> dict:
    resolve_artifact_location(_path_kwarg(req), write=False)
    raise _not_implemented()


def _owner_listing(owner: Run | LoggedModel, sub: str) -> dict[str, Any]:
    """One level of a run's or logged model's artifact directory, paths relative to it."""
    if not owner.artifact_uri.startswith(SCHEME):
        return {"root_uri": owner.artifact_uri, "files": []}
    root = owner.artifact_uri.removeprefix(SCHEME)
    entries = get_artifact_store().list_dir(f"{root}/{sub}" if sub else root) or []
    files: list[dict[str, Any]] = []
    for e in entries:
        item: dict[str, Any] = {"path": f"{sub}/{e.name}" if sub else e.name, "is_dir": e.is_dir}
        if not e.is_dir:
            item["file_size"] = e.size
        files.append(item)
    return {"root_uri": owner.artifact_uri, "files": files}


@mlflow_route("artifacts/list", "GET", access=access.RUN_READ)
def list_run_artifacts(req: MlflowRequest) -> dict:
    return _owner_listing(selectors.run_get(req.run_id()), _path_param(req, "path"))


# The UI's routes for a logged model's files (MLflow serves `directories` under both
# prefixes and `files` under ajax-api only; Custody serves both under both).
_BOTH = ("api/2.0/mlflow/", "ajax-api/2.0/mlflow/")


@mlflow_route(
    "logged-models/<str:model_id>/artifacts/directories",
    "GET",
    access=access.EXPERIMENT_READ,
    prefixes=_BOTH,
)
def list_logged_model_artifacts(req: MlflowRequest) -> dict:
    model = selectors.logged_model_get(req.kwargs["model_id"])
    return _owner_listing(model, _path_param(req, "artifact_directory_path"))


@mlflow_route(
    "logged-models/<str:model_id>/artifacts/files",
    "GET",
    access=access.EXPERIMENT_READ,
    prefixes=_BOTH,
)
def download_logged_model_artifact(req: MlflowRequest):
    model = selectors.logged_model_get(req.kwargs["model_id"])
    relative = _path_param(req, "artifact_file_path")
    if not relative:
        raise InvalidParameterValue(
            'Request must include the "artifact_file_path" query parameter.'
        )
    if not model.artifact_uri.startswith(SCHEME):
        raise ResourceDoesNotExist(f"No such artifact: {relative}")
    return _download(clean_artifact_path(f"{model.artifact_uri.removeprefix(SCHEME)}/{relative}"))


UI_UPLOAD_LIMIT = 10 * 1024 * 1024  # MLflow's limit for the UI's upload route


@raw_body
@mlflow_route("upload-artifact", "POST", access=access.RUN_EDIT, prefixes=_BOTH)
def upload_run_artifact(req: MlflowRequest) -> dict:
    """The UI's upload (`?run_uuid=&path=`, the file as the body) into the run's artifacts."""
    run = selectors.run_get(req.run_id())
    relative = _path_param(req, "path")
    if not relative:
        raise InvalidParameterValue("Request must specify path.")
    if run.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(f"Cannot upload to run {run.run_id}: it is deleted.")
    if not run.artifact_uri.startswith(SCHEME):
        raise InvalidParameterValue("This run's artifacts are not stored by this server.")
    stream, length = _body_stream(req)
    if length == 0:
        raise InvalidParameterValue("Request must specify data.")
    if length is not None and length > UI_UPLOAD_LIMIT:
        raise InvalidParameterValue("Artifact size is too large. Max size is 10MB.")
    path = clean_artifact_path(f"{run.artifact_uri.removeprefix(SCHEME)}/{relative}")
    get_artifact_store().put(path, stream, length, limit=UI_UPLOAD_LIMIT)
    return {}


@mlflow_route(
    "server-info",
    "GET",
    access=access.AUTHENTICATED,
    prefixes=("api/3.0/mlflow/", "ajax-api/3.0/mlflow/"),
)
def server_info(req: MlflowRequest) -> dict:
    # Multipart and presigned transfers answer 501, so they are never advertised: the
    # client then uses plain PUT/GET through the proxy.
    return {
        "store_type": "SqlStore",
        "workspaces_enabled": False,
        "multipart_uploads_enabled": False,
        "multipart_downloads_enabled": False,
        "artifacts_presigned_only": False,
        "artifact_serving_enabled": True,
    }

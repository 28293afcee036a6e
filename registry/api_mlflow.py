"""MLflow model registry endpoints (reference/mlflow-protocol.md §2.9, §2.10)."""

from __future__ import annotations

from typing import Any

from core import access, process_cache
from core.mlflow_api import MlflowRequest, fresh_caches, mlflow_route
from registry import permissions, selectors, services
from registry.models import RegisteredModel


def _resolved_model(req: MlflowRequest) -> RegisteredModel:
    """The model the access layer decided on (it wrote the stored name back into the
    request), or, for a route that resolved nothing, the model the name names."""
    name = _name(req)
    model = req.resolved
    if isinstance(model, RegisteredModel) and model.name == name:
        return model
    return selectors.registered_model_get(name)


# Serving reads (latest versions, aliases) and registered-models/get: answers by (route, model
# id, what was asked), dropped by any registry change in the change's own transaction; the
# handlers read the cache versions first (@fresh_caches), so an answer is never older than the
# request.
_ANSWERS = process_cache.Store(process_cache.RESOLUTION, "registry-answers")


def _model(name: str) -> dict:
    return selectors.model_payloads([selectors.registered_model_get(name)])[0]


def _version(mv) -> dict:
    return selectors.version_payloads([mv])[0]


def _name(req: MlflowRequest) -> str:
    return req.str("name", required=True)


@mlflow_route("registered-models/create", "POST", access=access.MODEL_CREATE)
def create_registered_model(req: MlflowRequest) -> dict:
    model = services.registered_model_create(
        name=req.str("name"),
        description=req.data.get("description") or "",
        tags=req.messages("tags"),
        user=req.http.user,
    )
    return {"registered_model": selectors.model_payloads([model])[0]}


@mlflow_route("registered-models/get", "GET", access=access.MODEL_READ)
@fresh_caches
def get_registered_model(req: MlflowRequest) -> dict:
    # Everything the payload shows is a registry row whose change bumps `resolution`.
    model = _resolved_model(req)
    return _ANSWERS.get_or_load(
        ("model", model.pk),
        lambda: {"registered_model": selectors.model_payloads([model])[0]},
    )


@mlflow_route("registered-models/rename", "POST", access=access.MODEL_MANAGE)
def rename_registered_model(req: MlflowRequest) -> dict:
    model = services.registered_model_rename(name=_name(req), new_name=req.str("new_name"))
    return {"registered_model": selectors.model_payloads([model])[0]}


@mlflow_route("registered-models/update", "PATCH", access=access.MODEL_EDIT)
def update_registered_model(req: MlflowRequest) -> dict:
    model = services.registered_model_update(
        name=_name(req), description=req.data.get("description") or ""
    )
    return {"registered_model": selectors.model_payloads([model])[0]}


@mlflow_route("registered-models/delete", "DELETE", access=access.MODEL_MANAGE)
def delete_registered_model(req: MlflowRequest) -> dict:
    services.registered_model_delete(name=_name(req))
    return {}


@mlflow_route("registered-models/search", ["GET", "POST"], access=access.AUTHENTICATED)
def search_registered_models(req: MlflowRequest) -> dict:
    models, token = selectors.models_search(
        filter_string=req.str("filter"),
        max_results=req.int64("max_results"),
        order_by=req.str_list("order_by"),
        page_token=req.str("page_token"),
        readable=permissions.readable_models_q(req.http.user),
    )
    result: dict[str, Any] = {"registered_models": selectors.model_payloads(models)}
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("registered-models/get-latest-versions", ["POST", "GET"], access=access.MODEL_READ)
@fresh_caches
def get_latest_versions(req: MlflowRequest) -> dict:
    model = _resolved_model(req)
    stages = req.str_list("stages")

    def answer() -> dict:
        versions = selectors.latest_versions(model, stages)
        return {"model_versions": selectors.version_payloads(versions)}

    return _ANSWERS.get_or_load(("latest", model.pk, tuple(stages)), answer)


@mlflow_route("registered-models/set-tag", "POST", access=access.MODEL_EDIT)
def set_registered_model_tag(req: MlflowRequest) -> dict:
    services.registered_model_set_tag(
        name=_name(req), key=req.data.get("key"), value=req.data.get("value")
    )
    return {}


@mlflow_route("registered-models/delete-tag", "DELETE", access=access.MODEL_EDIT)
def delete_registered_model_tag(req: MlflowRequest) -> dict:
    services.registered_model_delete_tag(name=_name(req), key=req.str("key", required=True))
    return {}


@mlflow_route("registered-models/alias", "POST", access=access.MODEL_EDIT)
def set_alias(req: MlflowRequest) -> dict:
    services.registered_model_set_alias(
        name=_name(req), alias=req.str("alias"), version=req.str("version", required=True)
    )
    return {}


@mlflow_route("registered-models/alias", "DELETE", access=access.MODEL_EDIT)
def delete_alias(req: MlflowRequest) -> dict:
    services.registered_model_delete_alias(name=_name(req), alias=req.str("alias", required=True))
    return {}


@mlflow_route("registered-models/alias", "GET", access=access.MODEL_READ)
@fresh_caches
def get_version_by_alias(req: MlflowRequest) -> dict:
    from core.errors import InvalidParameterValue, ResourceDoesNotExist

    alias = req.str("alias", required=True)
    model = _resolved_model(req)

    def answer() -> dict:
        try:
            mv = selectors.resolve_model_uri(f"models:/{model.name}@{alias}")
        except (ResourceDoesNotExist, InvalidParameterValue):
            # MLflow answers an unknown alias with INVALID_PARAMETER_VALUE, not a 404.
            raise InvalidParameterValue(f"Registered model alias {alias} not found.") from None
        return {"model_version": _version(mv)}

    return _ANSWERS.get_or_load(("alias", model.pk, alias), answer)


@mlflow_route("model-versions/create", "POST", access=access.MODEL_EDIT)
def create_model_version(req: MlflowRequest) -> dict:
    mv = services.model_version_create(
        name=_name(req),
        source=req.str("source", max_length=1000),
        run_id=req.str("run_id"),
        model_id=req.str("model_id"),
        description=req.data.get("description") or "",
        run_link=req.str("run_link"),
        tags=req.messages("tags"),
        user=req.http.user,
    )
    return {"model_version": _version(mv)}


@mlflow_route("model-versions/get", "GET", access=access.MODEL_READ)
def get_model_version(req: MlflowRequest) -> dict:
    return {
        "model_version": _version(
            selectors.model_version_get(_resolved_model(req), req.str("version"))
        )
    }


@mlflow_route("model-versions/update", "PATCH", access=access.MODEL_EDIT)
def update_model_version(req: MlflowRequest) -> dict:
    mv = services.model_version_update(
        name=_name(req), version=req.str("version"), description=req.data.get("description")
    )
    return {"model_version": _version(mv)}


@mlflow_route("model-versions/delete", "DELETE", access=access.MODEL_MANAGE)
def delete_model_version(req: MlflowRequest) -> dict:
    services.model_version_delete(name=_name(req), version=req.str("version"))
    return {}


@mlflow_route("model-versions/search", ["GET", "POST"], access=access.AUTHENTICATED)
def search_model_versions(req: MlflowRequest) -> dict:
    versions, token = selectors.versions_search(
        filter_string=req.str("filter"),
        max_results=req.int64("max_results"),
        order_by=req.str_list("order_by"),
        page_token=req.str("page_token"),
        readable=permissions.readable_models_q(req.http.user, "registered_model_id"),
    )
    result: dict[str, Any] = {"model_versions": selectors.version_payloads(versions)}
    if token:
        result["next_page_token"] = token
    return result


@mlflow_route("model-versions/set-tag", "POST", access=access.MODEL_EDIT)
def set_model_version_tag(req: MlflowRequest) -> dict:
    services.model_version_set_tag(
        name=_name(req),
        version=req.str("version"),
        key=req.data.get("key"),
        value=req.data.get("value"),
    )
    return {}


@mlflow_route("model-versions/delete-tag", "DELETE", access=access.MODEL_EDIT)
def delete_model_version_tag(req: MlflowRequest) -> dict:
    services.model_version_delete_tag(
        name=_name(req), version=req.str("version"), key=req.str("key", required=True)
    )
    return {}


@mlflow_route("model-versions/get-download-uri", "GET", access=access.MODEL_READ)
def get_download_uri(req: MlflowRequest) -> dict:
    mv = selectors.model_version_by_name(_name(req), req.str("version"))
    return {"artifact_uri": mv.storage_location}

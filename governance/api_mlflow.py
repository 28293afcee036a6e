"""The MLflow wire routes that go through the promotion workflow: `transition-stage`, and
the Databricks-style transition-request and comment endpoints mapped onto the same
services (reference/peers.md, Databricks workspace registry)."""

from __future__ import annotations

from typing import Any

from core import access
from core.errors import InvalidState
from core.mlflow_api import MlflowRequest, mlflow_route
from governance.models import Comment
from governance.models import TransitionRequest as TR
from governance.selectors import requests as request_selectors
from governance.services import comments as comment_services
from governance.services import common as common_services
from governance.services import requests as request_services
from governance.services import reviews as review_services
from registry import selectors as registry_selectors
from registry.transitions import Stage, is_rollback


def _ms(value) -> int | None:
    return int(value.timestamp() * 1000) if value else None


def pending_message(outcome: common_services.Outcome) -> str:
    req = outcome.request
    assert req is not None
    name = req.version.registered_model.name
    missing = "; ".join(m.message for m in outcome.missing)
    move = f"enter {req.to_stage}"
    if req.from_stage == Stage.PRODUCTION:
        move = f"leave Production for {req.to_stage}"
    elif is_rollback(req.from_stage, req.to_stage):
        move = "be rolled back into Production"
    return (
        f"Version {req.version.version} of '{name}' cannot {move} yet: "
        f"transition request {req.pk} is open (requested by "
        f"{req.requested_by.get_username()}). Still missing: {missing}. "
        "The move is applied by the last required approval; nothing else needs to call "
        "transition-stage again."
    )


@mlflow_route("model-versions/transition-stage", "POST", access=access.MODEL_EDIT)
def transition_stage(req: MlflowRequest) -> dict:
    outcome = request_services.request_transition(
        user=req.http.user,
        name=req.str("name", required=True),
        version=req.str("version", required=True),
        stage=req.str("stage", required=True),
        comment=req.data.get("comment") or "",
        archive_existing_versions=req.bool("archive_existing_versions"),
    )
    if not outcome.applied:
        # The request itself is committed: the error tells the client where it stands.
        raise InvalidState(pending_message(outcome))
    return {"model_version": registry_selectors.version_payloads([outcome.version])[0]}


def _request_object(tr: TR) -> dict[str, Any]:
    status = request_selectors.effective_status(tr)
    actions = ["APPROVE_TRANSITION_REQUEST", "REJECT_TRANSITION_REQUEST"]
    if status == TR.Status.OPEN:
        actions.append("CANCEL_TRANSITION_REQUEST")
    return {
        "id": str(tr.pk),
        "creation_timestamp": _ms(tr.created_at),
        "to_stage": tr.to_stage,
        "from_stage": tr.from_stage,
        "user_id": tr.requested_by.get_username(),
        "comment": tr.comment,
        "status": status,
        "available_actions": actions if status == TR.Status.OPEN else [],
    }


def _activity(outcome: common_services.Outcome, kind: str, user, comment: str) -> dict[str, Any]:
    tr = outcome.request
    return {
        "activity_type": kind,
        "from_stage": tr.from_stage if tr else outcome.version.current_stage,
        "to_stage": tr.to_stage if tr else outcome.version.current_stage,
        "user_id": user.get_username(),
        "comment": comment,
        "system_comment": "; ".join(m.message for m in outcome.missing),
        "request_id": str(tr.pk) if tr else None,
        "applied": outcome.applied,
        "current_stage": outcome.version.current_stage,
    }


@mlflow_route("transition-requests/create", "POST", access=access.MODEL_EDIT)
def create_transition_request(req: MlflowRequest) -> dict:
    outcome = request_services.request_transition(
        user=req.http.user,
        name=req.str("name", required=True),
        version=req.str("version", required=True),
        stage=req.str("stage", required=True),
        comment=req.data.get("comment") or "",
    )
    body: dict[str, Any] = {"missing": [m.as_dict() for m in outcome.missing]}
    if outcome.request is not None:
        body["request"] = _request_object(outcome.request)
    return body


@mlflow_route("transition-requests/list", "GET", access=access.MODEL_READ)
def list_transition_requests(req: MlflowRequest) -> dict:
    name = req.str("name", required=True)
    mv = registry_selectors.model_version_by_name(name, req.str("version", required=True))
    requests = [
        r
        for r in request_selectors.requests_list(req.http.user, model=name, version=mv.version)
        if request_selectors.effective_status(r) == TR.Status.OPEN
    ]
    return {"requests": [_request_object(r) for r in requests]}


def _open_request_id(req: MlflowRequest) -> int:
    return request_services.find_open_request(
        name=req.str("name", required=True),
        version=req.str("version", required=True),
        stage=req.str("stage", required=True),
    ).pk


@mlflow_route("transition-requests/approve", "POST", access=access.MODEL_READ)
def approve_transition_request(req: MlflowRequest) -> dict:
    comment = req.data.get("comment") or ""
    outcome = review_services.approve(
        user=req.http.user,
        request_id=_open_request_id(req),
        comment=comment,
        archive_existing_versions=req.bool("archive_existing_versions"),
    )
    return {"activity": _activity(outcome, "APPROVED_REQUEST", req.http.user, comment)}


@mlflow_route("transition-requests/reject", "POST", access=access.MODEL_READ)
def reject_transition_request(req: MlflowRequest) -> dict:
    comment = req.data.get("comment") or ""
    outcome = review_services.reject(
        user=req.http.user, request_id=_open_request_id(req), reason=comment
    )
    return {"activity": _activity(outcome, "REJECTED_REQUEST", req.http.user, comment)}


@mlflow_route("transition-requests/delete", "DELETE", access=access.MODEL_READ)
def delete_transition_request(req: MlflowRequest) -> dict:
    request_services.cancel(
        user=req.http.user,
        request_id=_open_request_id(req),
        comment=req.data.get("comment") or "",
    )
    return {}


def _comment_object(comment: Comment) -> dict[str, Any]:
    return {
        "id": str(comment.pk),
        "comment": comment.text,
        "user_id": comment.author.get_username(),
        "creation_timestamp": _ms(comment.created_at),
        "last_updated_timestamp": _ms(comment.updated_at),
        "available_actions": ["EDIT_COMMENT", "DELETE_COMMENT"],
    }


@mlflow_route("comments/create", "POST", access=access.MODEL_READ)
def create_comment(req: MlflowRequest) -> dict:
    comment = comment_services.comment_create(
        user=req.http.user,
        name=req.str("name", required=True),
        version=req.str("version", required=True),
        text=req.data.get("comment"),
    )
    return {"comment": _comment_object(comment)}


@mlflow_route("comments/update", "PATCH", access=access.AUTHENTICATED)
def update_comment(req: MlflowRequest) -> dict:
    comment = comment_services.comment_update(
        user=req.http.user, comment_id=req.str("id", required=True), text=req.data.get("comment")
    )
    return {"comment": _comment_object(comment)}


@mlflow_route("comments/delete", "DELETE", access=access.AUTHENTICATED)
def delete_comment(req: MlflowRequest) -> dict:
    comment_services.comment_delete(user=req.http.user, comment_id=req.str("id", required=True))
    return {}

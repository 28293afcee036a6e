"""Writes of the promotion workflow. Every stage change in Custody starts here: a move the
model's policy allows now happens at once; one that needs approvals opens (or reuses) a
transition request, and the approval that completes the quorum applies it, in one
transaction that re-checks every condition while holding the registered model's row lock.

Refused attempts (an approval that is not allowed, a promotion the policy refuses) are
audited in a transaction of their own, since the refused change has none."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from core import access
from core.errors import Conflict, InvalidParameterValue, PermissionDenied, ResourceDoesNotExist
from governance import policy as rules
from governance.approvals import evaluate
from governance.models import ModelPolicy
from governance.models import TransitionRequest as TR
from governance.selectors.reviews import decision_basis
from governance.services.comments import add_comment
from governance.services.common import (
    Outcome,
    audit_request,
    checked_text,
    int_or_none,
    lock_version,
    refusals_audited,
    request_snapshot,
)
from registry import permissions as model_permissions
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import ModelVersion, RegisteredModel
from registry.transitions import Stage, canonical_stage, is_rollback
from registry.transitions import refusal as transition_refusal


def _mark_stale(model_id: int) -> None:
    """Open requests of the model whose version has left the stage they started from."""
    for req in TR.objects.filter(
        version__registered_model_id=model_id, status=TR.Status.OPEN
    ).select_related("version__registered_model", "requested_by"):
        if req.version.current_stage != req.from_stage or req.version.deleted:
            req.status = TR.Status.STALE
            req.status_reason = (
                f"version {req.version.version} was deleted"
                if req.version.deleted
                else f"version {req.version.version} is now {req.version.current_stage}, "
                f"not {req.from_stage} as when requested"
            )
            req.resolved_at = timezone.now()
            req.save(update_fields=["status", "status_reason", "resolved_at"])
            audit_request(
                "transition_request.stale",
                req,
                req.version.registered_model.name,
                after=request_snapshot(req),
                reason=req.status_reason,
            )


def on_stage_change(mv: ModelVersion, from_stage: str) -> None:
    """The registry's stage hook, in the move's transaction: requests the move leaves behind
    go stale, and a version leaving Production (for Staging, None or Archived) takes no
    protected alias with it (a protected alias may only point at the Production version).
    Other aliases stay where they are, as in MLflow, archived versions included."""
    _mark_stale(mv.registered_model_id)
    if from_stage == Stage.PRODUCTION and mv.current_stage != Stage.PRODUCTION:
        model = mv.registered_model
        registry_services.drop_aliases(
            mv,
            model.name,
            reason="the version left Production; a protected alias follows Production",
            only=set(rules.policy_for(model).protected_aliases),
        )


def apply_if_ready(req: TR, policy: ModelPolicy, model: RegisteredModel, actor) -> Outcome:
    missing, approvers = evaluate(req, policy)
    if missing:
        return Outcome(version=req.version, request=req, missing=missing)
    # Frozen before the move, which changes what is in Production. Resolved before the move
    # too: the registry's stage hook marks requests the move leaves behind as stale, and
    # this one is not left behind.
    req.decided_basis = decision_basis(req)
    req.status = TR.Status.APPLIED
    req.resolved_at = timezone.now()
    req.resolved_by = actor
    req.save(update_fields=["status", "resolved_at", "resolved_by", "decided_basis"])
    approval: dict[str, Any] = {
        "transition_request": req.pk,
        "requested_by": req.requested_by.get_username(),
        "approved_by": approvers,
    }
    if is_rollback(req.from_stage, req.to_stage):
        # Recorded as what it is; with rollback_approvals 0 it is an immediate rollback, and
        # the record says so rather than leaving an empty approver list to interpretation.
        approval["rollback"] = True
        approval["immediate"] = rules.approvals_needed(policy, req.to_stage, req.from_stage) == 0
    mv = registry_services.model_version_transition_stage(
        name=model.name,
        version=req.version.version,
        stage=req.to_stage,
        archive_existing_versions=req.archive_existing_versions,
        approval=approval,
        reason=req.comment[:500] or ("rollback" if approval.get("rollback") else ""),
    )
    audit_request(
        "transition_request.apply",
        req,
        model.name,
        after={
            **request_snapshot(req),
            **{k: v for k, v in approval.items() if k not in ("transition_request",)},
        },
    )
    return Outcome(version=mv, request=req, applied=True)


@refusals_audited("transition_request.create")
@transaction.atomic
def request_transition(
    *,
    user,
    name: str,
    version: Any,
    stage: Any,
    comment: Any = "",
    archive_existing_versions: bool = False,
) -> Outcome:
    """Ask for `version` of `name` to enter `stage`. Applied at once when the policy needs
    no approvals and every condition holds; otherwise the open request lists what is
    missing."""
    target = canonical_stage(stage)
    comment = checked_text(comment, "comment")
    if archive_existing_versions and target in (Stage.NONE, Stage.ARCHIVED):
        raise InvalidParameterValue(
            f"archive_existing_versions applies only to Staging and Production, not {target}."
        )
    model, mv = lock_version(name, version)
    if mv.current_stage == target:
        return Outcome(version=mv, applied=True)
    refused = transition_refusal(
        name=model.name,
        version=mv.version,
        source=mv.current_stage,
        target=target,
        was_in_production=mv.was_in_production,
    )
    if refused:
        raise InvalidParameterValue(refused)
    _mark_stale(model.pk)
    policy = rules.policy_for(model)
    req = (
        TR.objects.select_related("version", "requested_by")
        .filter(version=mv, to_stage=target, status=TR.Status.OPEN)
        .first()
    )
    if req is None:
        req = TR.objects.create(
            version=mv,
            from_stage=mv.current_stage,
            to_stage=target,
            requested_by=user,
            comment=comment,
            archive_existing_versions=archive_existing_versions,
            created_at=timezone.now(),
        )
        audit_request(
            "transition_request.create",
            req,
            model.name,
            after={**request_snapshot(req), "comment": comment},
        )
    else:
        if user.pk != req.requested_by_id and not req.co_requesters.filter(pk=user.pk).exists():
            req.co_requesters.add(user)
            audit_request(
                "transition_request.join",
                req,
                model.name,
                after={**request_snapshot(req), "also_requested_by": user.get_username()},
            )
        if comment:
            add_comment(user, model, mv, req, comment)
    outcome = apply_if_ready(req, policy, model, user)
    if not outcome.applied:
        # A promotion the policy refused (for now) is part of the record, with the reasons.
        audit_request(
            "model_version.transition.refused",
            req,
            model.name,
            outcome=AuditEvent.Outcome.REFUSED,
            after={"missing": [m.as_dict() for m in outcome.missing]},
            reason="; ".join(m.message for m in outcome.missing)[:2000],
        )
    return outcome


def locked_request(request_id: Any) -> tuple[TR, RegisteredModel]:
    number = int_or_none(request_id)
    if number is None or number <= 0:
        raise InvalidParameterValue(
            f"A transition request id is a positive integer, not {request_id!r}."
        )
    model_id = (
        TR.objects.filter(pk=number).values_list("version__registered_model_id", flat=True).first()
    )
    if model_id is None:
        raise ResourceDoesNotExist(f"Transition request {number} not found.")
    # The model row first, as every stage change takes it, then the request.
    model = RegisteredModel.objects.select_for_update().get(pk=model_id)
    req = (
        TR.objects.select_for_update(of=("self",))
        .select_related("version", "requested_by", "version__registered_model")
        .get(pk=number)
    )
    return req, model


def check_readable(user, model: RegisteredModel, request_id: int) -> None:
    level = model_permissions.model_level(user, model.pk)
    if access.RANK[level] < access.RANK[access.READ]:
        raise ResourceDoesNotExist(f"Transition request {request_id} not found.")


def ensure_open(req: TR, model: RegisteredModel) -> None:
    if req.status == TR.Status.OPEN and (
        req.version.current_stage != req.from_stage or req.version.deleted
    ):
        _mark_stale(model.pk)
        req.refresh_from_db()
    if req.status != TR.Status.OPEN:
        detail = f" ({req.status_reason})" if req.status_reason else ""
        raise Conflict(
            f"Transition request {req.pk} is {req.status}{detail}; only open requests can be "
            "reviewed or cancelled. Open a new request if the move is still wanted."
        )


@refusals_audited("transition_request.cancel")
@transaction.atomic
def cancel(*, user, request_id: Any, comment: Any = "") -> Outcome:
    comment = checked_text(comment, "comment")
    req, model = locked_request(request_id)
    check_readable(user, model, req.pk)
    ensure_open(req, model)
    if user.pk != req.requested_by_id and not access.is_admin(user):
        raise PermissionDenied(
            f"Only the requester ({req.requested_by.get_username()}) or an admin can cancel "
            f"transition request {req.pk}."
        )
    req.decided_basis = decision_basis(req)
    req.status = TR.Status.CANCELLED
    req.status_reason = comment or f"cancelled by {user.get_username()}"
    req.resolved_at = timezone.now()
    req.resolved_by = user
    req.save(
        update_fields=["status", "status_reason", "resolved_at", "resolved_by", "decided_basis"]
    )
    audit_request("transition_request.cancel", req, model.name, after=request_snapshot(req))
    return Outcome(version=req.version, request=req)


def find_open_request(*, name: str, version: Any, stage: Any) -> TR:
    """The open request for (model, version, stage): how the Databricks-style API names one."""
    target = canonical_stage(stage)
    mv = registry_selectors.model_version_by_name(name, version)
    req = TR.objects.filter(version=mv, to_stage=target, status=TR.Status.OPEN).first()
    if req is None:
        raise ResourceDoesNotExist(
            f"No open transition request for version {mv.version} of '{name}' to {target}."
        )
    return req

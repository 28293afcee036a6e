"""Writes of the promotion workflow. Every stage change in Custody starts here: a move the
model's policy allows now happens at once; one that needs approvals opens (or reuses) a
transition request, and the approval that completes the quorum applies it, in one
transaction that re-checks every condition while holding the registered model's row lock.

Refused attempts (an approval that is not allowed, a promotion the policy refuses) are
audited in a transaction of their own, since the refused change has none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from core import access, refusals
from core.errors import (
    Conflict,
    InvalidParameterValue,
    InvalidState,
    PermissionDenied,
    ResourceDoesNotExist,
)
from core.mlflow_api import check_text
from governance import policy as rules
from governance import selectors
from governance.models import CARD_FIELDS, Comment, ModelCard, ModelPolicy, Review
from governance.models import TransitionRequest as TR
from registry import permissions as model_permissions
from registry import selectors as registry_selectors
from registry import services as registry_services
from registry.models import ModelVersion, RegisteredModel
from registry.transitions import Stage, canonical_stage, is_rollback
from registry.transitions import refusal as transition_refusal
from tracking.models import Run

F = TypeVar("F", bound=Callable[..., Any])
MAX_COMMENT = 10_000


@dataclass
class Outcome:
    """What a transition request or review led to."""

    version: ModelVersion
    request: TR | None = None
    applied: bool = False
    missing: list[rules.Missing] = field(default_factory=list)


def _refusals_audited(action: str, object_type: str = "transition_request") -> Callable[[F], F]:
    """Gives a refused call's error its audit record (see core.refusals): a permission or
    separation-of-duties denial is `<action>.denied`, a rule the request does not meet yet
    (INVALID_STATE, a stale review basis) `<action>.refused`. Input mistakes and missing
    objects are not refusals."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (PermissionDenied, InvalidState, Conflict) as exc:
                denied = isinstance(exc, PermissionDenied)
                refusals.mark(
                    exc,
                    (refusals.denial if denied else refusals.rule_refusal)(
                        f"{action}.{'denied' if denied else 'refused'}",
                        exc.message,
                        object_type=object_type,
                        object_id=str(kwargs.get("request_id") or ""),
                        object_name=str(kwargs.get("name") or ""),
                        model_name=str(kwargs.get("name") or ""),
                        model_version=_int_or_none(kwargs.get("version")),
                        after={
                            k: v
                            for k, v in kwargs.items()
                            if k in ("stage", "request_id", "comment", "data")
                        },
                    ),
                )
                raise

        return wrapper  # type: ignore[return-value]

    return decorator


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any, what: str, *, required: bool = False) -> str:
    text = check_text(value or "", what, max_length=MAX_COMMENT).strip()
    if required and not text:
        raise InvalidParameterValue(f"A {what} is required.")
    return text


def _request_snapshot(req: TR) -> dict[str, Any]:
    return {
        "id": req.pk,
        "version": req.version.version,
        "from_stage": req.from_stage,
        "to_stage": req.to_stage,
        "status": req.status,
        "requested_by": req.requested_by.get_username(),
    }


def _audit_request(action: str, req: TR, model_name: str, **kwargs: Any) -> None:
    audit.record(
        action=action,
        object_type="transition_request",
        object_id=req.pk,
        object_name=f"{model_name}/{req.version.version} → {req.to_stage}",
        model_name=model_name,
        model_version=req.version.version,
        **kwargs,
    )


def _lock(name: str, version: Any) -> tuple[RegisteredModel, ModelVersion]:
    model = registry_selectors.registered_model_get(name, for_update=True)
    return model, registry_selectors.model_version_get(model, version)


# ---------------------------------------------------------------------------------------------
# Who may review


def review_refusal(user, policy: ModelPolicy, req: TR) -> str | None:
    """Why `user` may not approve or reject `req` (None: they may)."""
    model = req.version.registered_model
    if not user.is_active:
        return "your account is disabled"
    if user.pk == req.requested_by_id:
        return (
            "you requested this transition, and a requester can never review their own "
            "request (separation of duties); cancel it instead if it is no longer wanted"
        )
    if req.pk and req.co_requesters.filter(pk=user.pk).exists():
        return (
            "you also asked for this transition while it was open, so you are one of its "
            "requesters, and a requester can never review it (separation of duties)"
        )
    if policy.exclude_run_author and req.version.run_id:
        author = Run.objects.filter(run_id=req.version.run_id).values_list("user_id", flat=True)
        if author.first() == user.get_username():
            return (
                f"you are the author of run {req.version.run_id}, which trained this version, "
                "and this model's policy excludes run authors from reviewing it"
            )
    if not access.is_reviewer(user):
        return "only users with the reviewer or admin role review transition requests"
    level = model_permissions.model_level(user, model.pk)
    if access.RANK[level] < access.RANK[access.READ]:
        return f"you may not read registered model '{model.name}'"
    if policy.pk is not None:
        designated = set(policy.reviewers.values_list("pk", flat=True))
        if designated and user.pk not in designated:
            return f"you are not one of the designated reviewers of '{model.name}'"
    return None


def who_can_approve(policy: ModelPolicy) -> str:
    names = rules.reviewer_names(policy)
    if names:
        return "designated reviewers: " + ", ".join(names)
    return "any user with the reviewer role who may read the model"


# ---------------------------------------------------------------------------------------------
# Requests


def _counts(review: Review, basis: str) -> bool:
    """An approval counts while what it approved is unchanged (reviews from before bases
    were recorded have none)."""
    return not review.basis or review.basis == basis


def _approvers(req: TR, policy: ModelPolicy, basis: str) -> tuple[list[str], list[str]]:
    """(usernames whose approval counts now, usernames whose approval predates a change to
    the run or the card). Re-checked each time: a reviewer who lost the role or the
    designation no longer counts."""
    counted: list[str] = []
    outdated: list[str] = []
    for review in req.reviews.filter(decision=Review.Decision.APPROVE).select_related("reviewer"):
        if review_refusal(review.reviewer, policy, req) is not None:
            continue
        name = review.reviewer.get_username()
        (counted if _counts(review, basis) else outdated).append(name)
    return counted, outdated


def evaluate(req: TR, policy: ModelPolicy) -> tuple[list[rules.Missing], list[str]]:
    missing = rules.conditions(policy, req.version, req.to_stage)
    approvers, outdated = _approvers(req, policy, rules.review_basis(req.version))
    needed = rules.approvals_needed(policy, req.to_stage, req.from_stage)
    if len(approvers) < needed:
        more = needed - len(approvers)
        leaving = (
            " to leave Production"
            if req.from_stage == Stage.PRODUCTION and req.to_stage != Stage.PRODUCTION
            else " to roll back into Production"
            if is_rollback(req.from_stage, req.to_stage)
            else ""
        )
        again = (
            f" ({', '.join(outdated)} approved before the source run or the model card "
            "changed, so that approval must be given again)"
            if outdated
            else ""
        )
        missing.append(
            rules.Missing(
                "approvals",
                f"{more} more approval{'s' if more > 1 else ''} needed{leaving} "
                f"({len(approvers)} of {needed}) from {who_can_approve(policy)}, other than the "
                f"requester{again}; "
                f"reviewers approve it on /reviews/{req.pk}/, in the reviewers' console at "
                f"/admin/governance/transitionrequest/{req.pk}/change/ or with POST "
                f"/api/v1/transition-requests/{req.pk}/approve",
            )
        )
    return missing, approvers


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
            _audit_request(
                "transition_request.stale",
                req,
                req.version.registered_model.name,
                after=_request_snapshot(req),
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


def _apply_if_ready(req: TR, policy: ModelPolicy, model: RegisteredModel, actor) -> Outcome:
    missing, approvers = evaluate(req, policy)
    if missing:
        return Outcome(version=req.version, request=req, missing=missing)
    # Frozen before the move, which changes what is in Production. Resolved before the move
    # too: the registry's stage hook marks requests the move leaves behind as stale, and
    # this one is not left behind.
    req.decided_basis = selectors.decision_basis(req)
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
    _audit_request(
        "transition_request.apply",
        req,
        model.name,
        after={
            **_request_snapshot(req),
            **{k: v for k, v in approval.items() if k not in ("transition_request",)},
        },
    )
    return Outcome(version=mv, request=req, applied=True)


@_refusals_audited("transition_request.create")
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
    comment = _text(comment, "comment")
    if archive_existing_versions and target in (Stage.NONE, Stage.ARCHIVED):
        raise InvalidParameterValue(
            f"archive_existing_versions applies only to Staging and Production, not {target}."
        )
    model, mv = _lock(name, version)
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
        _audit_request(
            "transition_request.create",
            req,
            model.name,
            after={**_request_snapshot(req), "comment": comment},
        )
    else:
        if user.pk != req.requested_by_id and not req.co_requesters.filter(pk=user.pk).exists():
            req.co_requesters.add(user)
            _audit_request(
                "transition_request.join",
                req,
                model.name,
                after={**_request_snapshot(req), "also_requested_by": user.get_username()},
            )
        if comment:
            _comment(user, model, mv, req, comment)
    outcome = _apply_if_ready(req, policy, model, user)
    if not outcome.applied:
        # A promotion the policy refused (for now) is part of the record, with the reasons.
        _audit_request(
            "model_version.transition.refused",
            req,
            model.name,
            outcome=AuditEvent.Outcome.REFUSED,
            after={"missing": [m.as_dict() for m in outcome.missing]},
            reason="; ".join(m.message for m in outcome.missing)[:2000],
        )
    return outcome


def _locked_request(request_id: Any) -> tuple[TR, RegisteredModel]:
    number = _int_or_none(request_id)
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


def _check_readable(user, model: RegisteredModel, request_id: int) -> None:
    level = model_permissions.model_level(user, model.pk)
    if access.RANK[level] < access.RANK[access.READ]:
        raise ResourceDoesNotExist(f"Transition request {request_id} not found.")


def _ensure_open(req: TR, model: RegisteredModel) -> None:
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


def approval_waits_for(policy: ModelPolicy, req: TR) -> list[str]:
    """What must be in place before `req` can be approved (empty: it can be now)."""
    return [m.message for m in rules.conditions(policy, req.version, req.to_stage)]


@_refusals_audited("transition_request.approve")
@transaction.atomic
def approve(
    *,
    user,
    request_id: Any,
    comment: Any = "",
    archive_existing_versions: bool = False,
    basis: str | None = None,
) -> Outcome:
    """`basis`, when given, is the digest of what the reviewer looked at (the review screen's
    `basis`): the approval is refused if the run or the card changed since."""
    comment = _text(comment, "comment")
    req, model = _locked_request(request_id)
    _check_readable(user, model, req.pk)
    current = rules.review_basis(req.version)
    mine = Review.objects.filter(request=req, reviewer=user).first()
    if mine is not None and mine.decision == Review.Decision.APPROVE and _counts(mine, current):
        # A replayed or double-submitted approval: the first one already had its effect. It
        # answers as the first did: what the request still misses, if it is still open.
        applied = req.status == TR.Status.APPLIED
        missing: list[rules.Missing] = []
        if req.status == TR.Status.OPEN:
            missing, _ = evaluate(req, rules.policy_for(model))
        return Outcome(version=req.version, request=req, applied=applied, missing=missing)
    _ensure_open(req, model)
    policy = rules.policy_for(model)
    refusal = review_refusal(user, policy, req)
    if refusal:
        raise PermissionDenied(f"You cannot approve transition request {req.pk}: {refusal}.")
    if mine is not None and mine.decision == Review.Decision.REJECT:
        raise Conflict(f"You already rejected transition request {req.pk}.")
    if basis and basis != current:
        raise Conflict(
            f"Version {req.version.version}'s source run or model card changed after you opened "
            f"transition request {req.pk}; reload it and review what it shows now."
        )
    unmet = approval_waits_for(policy, req)
    if unmet:
        # An approval is the last step and covers the version as it will be promoted, so it
        # waits until everything else the policy asks for is in place.
        raise InvalidState(
            f"Transition request {req.pk} cannot be approved yet: "
            + "; ".join(unmet)
            + ". Approve it once these are in place."
        )
    try:
        with transaction.atomic():
            Review.objects.update_or_create(
                request=req,
                reviewer=user,
                defaults={
                    "decision": Review.Decision.APPROVE,
                    "comment": comment,
                    "created_at": timezone.now(),
                    "basis": current,
                },
            )
    except IntegrityError:
        return Outcome(version=req.version, request=req)
    if archive_existing_versions and not req.archive_existing_versions:
        req.archive_existing_versions = True
        req.save(update_fields=["archive_existing_versions"])
    _audit_request(
        "transition_request.approve",
        req,
        model.name,
        after={"request": req.pk, "reviewer": user.get_username(), "comment": comment},
    )
    return _apply_if_ready(req, policy, model, user)


@_refusals_audited("transition_request.reject")
@transaction.atomic
def reject(*, user, request_id: Any, reason: Any, comment: Any = "") -> Outcome:
    reason = _text(reason, "reason for the rejection", required=True)
    comment = _text(comment, "comment")
    req, model = _locked_request(request_id)
    _check_readable(user, model, req.pk)
    _ensure_open(req, model)
    policy = rules.policy_for(model)
    refusal = review_refusal(user, policy, req)
    if refusal:
        raise PermissionDenied(f"You cannot reject transition request {req.pk}: {refusal}.")
    Review.objects.update_or_create(
        request=req,
        reviewer=user,
        defaults={
            "decision": Review.Decision.REJECT,
            "comment": f"{reason}\n\n{comment}".strip(),
            "created_at": timezone.now(),
            "basis": rules.review_basis(req.version),
        },
    )
    req.decided_basis = selectors.decision_basis(req)
    req.status = TR.Status.REJECTED
    req.status_reason = reason
    req.resolved_at = timezone.now()
    req.resolved_by = user
    req.save(
        update_fields=["status", "status_reason", "resolved_at", "resolved_by", "decided_basis"]
    )
    _audit_request(
        "transition_request.reject", req, model.name, after=_request_snapshot(req), reason=reason
    )
    return Outcome(version=req.version, request=req)


@_refusals_audited("transition_request.cancel")
@transaction.atomic
def cancel(*, user, request_id: Any, comment: Any = "") -> Outcome:
    comment = _text(comment, "comment")
    req, model = _locked_request(request_id)
    _check_readable(user, model, req.pk)
    _ensure_open(req, model)
    if user.pk != req.requested_by_id and not access.is_admin(user):
        raise PermissionDenied(
            f"Only the requester ({req.requested_by.get_username()}) or an admin can cancel "
            f"transition request {req.pk}."
        )
    req.decided_basis = selectors.decision_basis(req)
    req.status = TR.Status.CANCELLED
    req.status_reason = comment or f"cancelled by {user.get_username()}"
    req.resolved_at = timezone.now()
    req.resolved_by = user
    req.save(
        update_fields=["status", "status_reason", "resolved_at", "resolved_by", "decided_basis"]
    )
    _audit_request("transition_request.cancel", req, model.name, after=_request_snapshot(req))
    return Outcome(version=req.version, request=req)


def decide(
    *,
    user,
    request_id: Any,
    action: str,
    comment: Any = "",
    reason: Any = "",
    basis: str | None = None,
) -> str:
    """One reviewer or requester action from a form (the admin console or the web UI); answers
    what happened, in words. Refusals raise as from the services themselves."""
    if action == "approve":
        outcome = approve(user=user, request_id=request_id, comment=comment, basis=basis)
        if outcome.applied:
            return (
                f"Approved. Version {outcome.version.version} is now "
                f"{outcome.version.current_stage}."
            )
        return "Approval recorded. Still missing: " + "; ".join(m.message for m in outcome.missing)
    if action == "reject":
        reject(user=user, request_id=request_id, reason=reason, comment=comment)
        return f"Request #{request_id} rejected."
    if action == "cancel":
        cancel(user=user, request_id=request_id, comment=comment)
        return f"Request #{request_id} cancelled."
    raise InvalidParameterValue("Choose approve, reject or cancel.")


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


# ---------------------------------------------------------------------------------------------
# Comments


@transaction.atomic
def comment_create(*, user, name: str, version: Any, text: Any, request_id: Any = None) -> Comment:
    text = _text(text, "comment", required=True)
    if access.is_compliance(user) and not access.is_reviewer(user):
        raise PermissionDenied("Compliance officers read everything and change nothing.")
    model, mv = _lock(name, version)
    req = None
    if request_id not in (None, ""):
        pk = _int_or_none(request_id)
        req = TR.objects.filter(pk=pk, version=mv).first() if pk is not None else None
        if req is None:
            raise ResourceDoesNotExist(
                f"Transition request {request_id} of version {mv.version} of '{name}' not found."
            )
    return _comment(user, model, mv, req, text)


def _comment(user, model: RegisteredModel, mv: ModelVersion, req: TR | None, text: str) -> Comment:
    now = timezone.now()
    comment = Comment.objects.create(
        version=mv, request=req, author=user, text=text, created_at=now, updated_at=now
    )
    audit.record(
        action="comment.create",
        object_type="comment",
        object_id=comment.pk,
        object_name=f"{model.name}/{mv.version}",
        model_name=model.name,
        model_version=mv.version,
        after={"text": text, "request": req.pk if req else None},
    )
    return comment


def _own_comment(user, comment_id: Any, verb: str) -> Comment:
    comment = (
        Comment.objects.select_for_update(of=("self",))
        .select_related("version__registered_model", "author")
        .filter(pk=_int_or_none(comment_id) or 0)
        .first()
    )
    if (
        comment is None
        or access.RANK[model_permissions.model_level(user, comment.version.registered_model_id)]
        < access.RANK[access.READ]
    ):
        raise ResourceDoesNotExist(f"Comment {comment_id} not found.")
    if comment.author_id != user.pk and not (verb == "delete" and access.is_admin(user)):
        raise PermissionDenied(f"Only the author of comment {comment.pk} can {verb} it.")
    return comment


@transaction.atomic
def comment_update(*, user, comment_id: Any, text: Any) -> Comment:
    text = _text(text, "comment", required=True)
    comment = _own_comment(user, comment_id, "edit")
    before = comment.text
    comment.text, comment.updated_at = text, timezone.now()
    comment.save(update_fields=["text", "updated_at"])
    audit.record(
        action="comment.update",
        object_type="comment",
        object_id=comment.pk,
        model_name=comment.version.registered_model.name,
        model_version=comment.version.version,
        before={"text": before},
        after={"text": text},
    )
    return comment


@transaction.atomic
def comment_delete(*, user, comment_id: Any) -> None:
    comment = _own_comment(user, comment_id, "delete")
    audit.record(
        action="comment.delete",
        object_type="comment",
        object_id=comment.pk,
        model_name=comment.version.registered_model.name,
        model_version=comment.version.version,
        before={"text": comment.text, "author": comment.author.get_username()},
    )
    comment.delete()


# ---------------------------------------------------------------------------------------------
# Policies


def _policy_values(policy: ModelPolicy) -> dict[str, Any]:
    values = rules.payload(policy)
    return {k: v for k, v in values.items() if k not in ("model", "is_default")}


@_refusals_audited("policy.update", "model_policy")
@transaction.atomic
def policy_update(*, user, name: str, data: Any) -> ModelPolicy:
    """Admins may set anything; the model's managers may only make the policy stricter."""
    from django.contrib.auth import get_user_model

    model = registry_selectors.registered_model_get(name, for_update=True)
    changes = rules.clean_policy(data)
    policy = rules.policy_for(model)
    before = _policy_values(policy)
    proposed = {**before, **changes}
    reviewers = None
    if "reviewers" in (data or {}):
        names = data["reviewers"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidParameterValue("'reviewers' must be a list of usernames.")
        users = list(get_user_model().objects.filter(username__in=names, is_active=True))
        unknown = sorted(set(names) - {u.username for u in users})
        if unknown:
            raise InvalidParameterValue(f"Unknown or disabled reviewer(s): {', '.join(unknown)}.")
        reviewers = users
        proposed["reviewers"] = sorted(u.username for u in users)
    if not access.is_admin(user):
        looser = rules.loosenings(before, proposed)
        if looser:
            raise PermissionDenied(
                f"Only an admin can loosen the policy of '{model.name}': "
                + "; ".join(looser)
                + ". Managers may only make it stricter."
            )
    if "protected_aliases" in changes:
        astray = [
            f"'{alias}' points at version {number} ({stage})"
            for alias, number, stage in model.aliases.filter(alias__in=changes["protected_aliases"])
            .exclude(version__current_stage=Stage.PRODUCTION)
            .values_list("alias", "version__version", "version__current_stage")
        ]
        if astray:
            raise InvalidParameterValue(
                "A protected alias may only point at the Production version: "
                + "; ".join(astray)
                + ". Move or delete these aliases first."
            )
    if policy.pk is None:
        policy.save()
    for key, value in changes.items():
        setattr(policy, key, value)
    policy.save()
    if reviewers is not None:
        policy.reviewers.set(reviewers)
    after = _policy_values(policy)
    audit.record(
        action="policy.update",
        object_type="model_policy",
        object_id=policy.pk,
        object_name=model.name,
        model_name=model.name,
        before=before,
        after=after,
    )
    return policy


def archive_grace_of(model: RegisteredModel) -> int:
    grace = (
        ModelPolicy.objects.filter(model=model).values_list("archive_grace_seconds", flat=True)
    ).first()
    if grace is None:
        return settings.CUSTODY_ARCHIVE_GRACE_SECONDS
    return grace


def check_registration(model: RegisteredModel, run_id: str) -> None:
    policy = rules.policy_for(model)
    if not policy.require_tags_at_registration:
        return
    tags, _ = rules.run_facts(run_id)
    missing = rules.tag_check(policy, tags, run_id)
    if missing:
        message = (
            f"The policy of '{model.name}' requires lineage tags before registration: "
            + "; ".join(m.message for m in missing)
            + "."
        )
        raise InvalidParameterValue(
            message,
            refusal=_refusal(
                "model_version.create.refused", "model_version", model.name, message, run_id=run_id
            ),
        )


def check_alias(model: RegisteredModel, alias: str, mv: ModelVersion) -> None:
    """A protected alias may only point at the model's Production version: moving it is a
    promotion, and promotions go through review."""
    policy = rules.policy_for(model)
    if alias in policy.protected_aliases and mv.current_stage != Stage.PRODUCTION:
        message = (
            f"Alias '{alias}' of '{model.name}' is protected by the model's policy: it may only "
            f"point at the Production version, and version {mv.version} is {mv.current_stage}. "
            "Request a promotion to Production first (POST /api/v1/transition-requests)."
        )
        raise PermissionDenied(
            message,
            refusal=_refusal(
                "model_version.alias.set.refused",
                "model_version",
                model.name,
                message,
                version=mv.version,
                alias=alias,
            ),
        )


def _refusal(
    action: str,
    object_type: str,
    model_name: str,
    reason: str,
    *,
    version: int | None = None,
    **attempted: Any,
) -> dict[str, Any]:
    """The audit record of an attempt the policy refused (see core.refusals)."""
    return refusals.rule_refusal(
        action,
        reason,
        object_type=object_type,
        object_id="",
        object_name=model_name if version is None else f"{model_name}/{version}",
        model_name=model_name,
        model_version=version,
        after=attempted,
    )


# ---------------------------------------------------------------------------------------------
# Model cards


@transaction.atomic
def card_update(*, user, name: str, version: Any, fields: Any) -> ModelCard:
    if not isinstance(fields, dict):
        raise InvalidParameterValue("The model card must be a JSON object of its fields.")
    # What GET answers besides the fields may come back unchanged (a GET, edit, PUT round trip).
    read_only = {"complete", "missing", "saved", "fields", "updated_at", "updated_by"}
    unknown = sorted(set(fields) - set(CARD_FIELDS) - read_only)
    if unknown:
        raise InvalidParameterValue(
            f"Unknown model card field(s): {', '.join(unknown)}. Fields: {', '.join(CARD_FIELDS)}."
        )
    model, mv = _lock(name, version)
    card = ModelCard.objects.filter(version=mv).first()
    before = {f: getattr(card, f) for f in CARD_FIELDS} if card else None
    if card is None:
        from governance.selectors import card_draft

        card = card_draft(mv)
    for key in CARD_FIELDS:
        if key in fields:
            setattr(card, key, check_text(fields[key] or "", key, max_length=50_000))
    card.updated_at = timezone.now()
    card.updated_by = user.get_username()
    card.save()
    audit.record(
        action="model_card.update",
        object_type="model_card",
        object_id=card.pk,
        object_name=f"{model.name}/{mv.version}",
        model_name=model.name,
        model_version=mv.version,
        before=before,
        after={f: getattr(card, f) for f in CARD_FIELDS},
    )
    return card

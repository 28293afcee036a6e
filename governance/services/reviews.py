"""A reviewer's decision on a transition request: approve (the approval that completes the
quorum applies the move), reject, and the form action that dispatches to either (or to a
requester's cancel)."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, InvalidParameterValue, InvalidState, PermissionDenied
from governance import policy as rules
from governance.approvals import approval_waits_for, counts, evaluate, review_refusal
from governance.models import Review
from governance.models import TransitionRequest as TR
from governance.selectors.reviews import decision_basis
from governance.services.common import (
    Outcome,
    audit_request,
    checked_text,
    refusals_audited,
    request_snapshot,
)
from governance.services.requests import (
    apply_if_ready,
    cancel,
    check_readable,
    ensure_open,
    locked_request,
)


@refusals_audited("transition_request.approve")
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
    comment = checked_text(comment, "comment")
    req, model = locked_request(request_id)
    check_readable(user, model, req.pk)
    current = rules.review_basis(req.version)
    mine = Review.objects.filter(request=req, reviewer=user).first()
    if mine is not None and mine.decision == Review.Decision.APPROVE and counts(mine, current):
        # A replayed or double-submitted approval: the first one already had its effect. It
        # answers as the first did: what the request still misses, if it is still open.
        applied = req.status == TR.Status.APPLIED
        missing: list[rules.Missing] = []
        if req.status == TR.Status.OPEN:
            missing, _ = evaluate(req, rules.policy_for(model))
        return Outcome(version=req.version, request=req, applied=applied, missing=missing)
    ensure_open(req, model)
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
    audit_request(
        "transition_request.approve",
        req,
        model.name,
        after={"request": req.pk, "reviewer": user.get_username(), "comment": comment},
    )
    return apply_if_ready(req, policy, model, user)


@refusals_audited("transition_request.reject")
@transaction.atomic
def reject(*, user, request_id: Any, reason: Any, comment: Any = "") -> Outcome:
    reason = checked_text(reason, "reason for the rejection", required=True)
    comment = checked_text(comment, "comment")
    req, model = locked_request(request_id)
    check_readable(user, model, req.pk)
    ensure_open(req, model)
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
    req.decided_basis = decision_basis(req)
    req.status = TR.Status.REJECTED
    req.status_reason = reason
    req.resolved_at = timezone.now()
    req.resolved_by = user
    req.save(
        update_fields=["status", "status_reason", "resolved_at", "resolved_by", "decided_basis"]
    )
    audit_request(
        "transition_request.reject", req, model.name, after=request_snapshot(req), reason=reason
    )
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

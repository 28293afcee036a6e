"""Who may review a transition request and whether it has the approvals it needs: rules that
compute from the request and the policy (they read, never write), used by the services that
decide and by the selectors that show a request."""

from __future__ import annotations

from core import access
from governance import policy as rules
from governance.models import ModelPolicy, Review
from governance.models import TransitionRequest as TR
from registry import permissions as model_permissions
from registry.transitions import Stage, is_rollback
from tracking.models import Run

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
# Approvals


def counts(review: Review, basis: str) -> bool:
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
        (counted if counts(review, basis) else outdated).append(name)
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


def approval_waits_for(policy: ModelPolicy, req: TR) -> list[str]:
    """What must be in place before `req` can be approved (empty: it can be now)."""
    return [m.message for m in rules.conditions(policy, req.version, req.to_stage)]

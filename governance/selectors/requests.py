"""Reads of transition requests: lists and the reviewer's queue, request payloads with their
checks and history, and the review chain of a version."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from core import access, identifiers
from core.errors import InvalidParameterValue
from governance import policy as rules
from governance.approvals import evaluate, who_can_approve
from governance.effects import approval_effects
from governance.models import Comment, ModelCard, ModelPolicy, Review
from governance.models import TransitionRequest as TR
from registry import permissions as model_permissions
from registry.models import ModelVersion
from registry.transitions import Stage, canonical_stage, is_rollback
from tracking.models import LatestMetric, Param, RunTag

STATUSES = [s.value for s in TR.Status]


def effective_status(req: TR) -> str:
    """An open request whose version left its starting stage is stale, even before a write
    has recorded it so (the registry's archiving task does not know about requests)."""
    if req.status == TR.Status.OPEN and (
        req.version.current_stage != req.from_stage or req.version.deleted
    ):
        return TR.Status.STALE
    return req.status


def requests_qs(user) -> QuerySet[TR]:
    return (
        TR.objects.select_related("version__registered_model", "requested_by", "resolved_by")
        .filter(model_permissions.readable_models_q(user, "version__registered_model"))
        .order_by("-created_at", "-pk")
    )


def reviewable_q(user) -> Q:
    """Requests of the models `user` reviews: designated on the model's policy, or (for
    models without designated reviewers) any model they may read. Admins review all."""
    return _reviewed_models_q(user, "version__registered_model")


def console_models_q(user, path: str = "pk") -> Q:
    """Registered models (at `path`) that `user` sees in the reviewers' console: those they
    review; compliance officers (who read everything and decide nothing) see every model."""
    if access.is_compliance(user):
        return model_permissions.readable_models_q(user, path)
    return _reviewed_models_q(user, path)


def _reviewed_models_q(user, path: str) -> Q:
    if access.is_admin(user):
        return model_permissions.readable_models_q(user, path)
    designated_elsewhere = ModelPolicy.objects.filter(reviewers__isnull=False).exclude(
        reviewers=user
    )
    prefix = "" if path == "pk" else f"{path}__"
    return model_permissions.readable_models_q(user, path) & ~Q(
        **{f"{prefix}policy__in": designated_elsewhere}
    )


def requests_list(
    user,
    *,
    status: str | None = None,
    model: str | None = None,
    stage: str | None = None,
    requester: str | None = None,
    version: Any = None,
    queue: bool = False,
) -> QuerySet[TR]:
    qs = requests_qs(user)
    if status:
        if status not in STATUSES:
            raise InvalidParameterValue(
                f"Unknown status {status[:30]!r}; one of {', '.join(STATUSES)}."
            )
        qs = qs.filter(status=status)
    if model:
        given = identifiers.model_name(model, "model")
        qs = qs.filter(version__registered_model__name_key=identifiers.name_key(given))
    if version not in (None, ""):
        qs = qs.filter(version__version=_int(version))
    if stage:
        qs = qs.filter(to_stage=canonical_stage(stage))
    if requester:  # who opened the request, or asked for it while it was open
        qs = qs.filter(
            Q(requested_by__username=requester) | Q(co_requesters__username=requester)
        ).distinct()
    if queue:
        if not access.is_reviewer(user):
            return qs.none()  # only reviewers and admins review; their queue is empty
        qs = (
            qs.filter(reviewable_q(user), status=TR.Status.OPEN)
            .exclude(requested_by=user)
            .exclude(co_requesters=user)
        )
    return qs


def pending_count(user) -> int:
    """Open requests in `user`'s queue that they have not reviewed yet (the nav's badge)."""
    return requests_list(user, queue=True).exclude(reviews__reviewer=user).count()


def _int(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise InvalidParameterValue(f"'version' must be an integer, got {value!r}.") from None


def request_get(user, request_id: Any) -> TR:
    from core.errors import ResourceDoesNotExist

    try:
        number = int(str(request_id))
    except ValueError:
        number = 0
    req = requests_qs(user).filter(pk=number).first()
    if req is None:
        raise ResourceDoesNotExist(f"Transition request {request_id} not found.")
    return req


def request_payloads(requests: list[TR], *, detail: bool = False) -> list[dict[str, Any]]:
    """Request dicts in a fixed number of queries (reviews and, in detail, checks)."""
    ids = [r.pk for r in requests]
    reviews: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for review in Review.objects.filter(request_id__in=ids).select_related("reviewer"):
        reviews[review.request_id].append(
            {
                "reviewer": review.reviewer.get_username(),
                "decision": review.decision,
                "comment": review.comment,
                "at": review.created_at.isoformat(),
            }
        )
    out = []
    for req in requests:
        item = {
            "id": req.pk,
            "model": req.version.registered_model.name,
            "version": req.version.version,
            "from_stage": req.from_stage,
            "to_stage": req.to_stage,
            # Archived → Production: a version that was in Production before goes back.
            "rollback": is_rollback(req.from_stage, req.to_stage),
            "status": effective_status(req),
            "status_reason": req.status_reason,
            "requested_by": req.requested_by.get_username(),
            "comment": req.comment,
            "archive_existing_versions": req.archive_existing_versions,
            "created_at": req.created_at.isoformat(),
            "resolved_at": req.resolved_at.isoformat() if req.resolved_at else None,
            "resolved_by": req.resolved_by.get_username() if req.resolved_by else None,
            "reviews": reviews[req.pk],
        }
        if detail:
            item.update(request_checks(req))
            # What approving will do (versions archived, aliases removed or left on an archived
            # version, deployments that will answer another version); for open requests only.
            item["effects"] = (
                approval_effects(req) if effective_status(req) == TR.Status.OPEN else None
            )
            item["comments"] = [
                {
                    "id": c.pk,
                    "author": c.author.get_username(),
                    "text": c.text,
                    "at": c.created_at.isoformat(),
                }
                for c in Comment.objects.filter(request=req).select_related("author")
            ]
            item["history"] = request_history(req)
        out.append(item)
    return out


def request_checks(req: TR) -> dict[str, Any]:
    policy = rules.policy_for(req.version.registered_model)
    needed = rules.approvals_needed(policy, req.to_stage, req.from_stage)
    if effective_status(req) != TR.Status.OPEN:
        approvers = sorted(
            req.reviews.filter(decision=Review.Decision.APPROVE).values_list(
                "reviewer__username", flat=True
            )
        )
        return {
            "missing": [],
            "approvals": {"given": len(approvers), "needed": needed},
            "approved_by": approvers,
        }
    missing, approvers = evaluate(req, policy)
    return {
        "missing": [m.as_dict() for m in missing],
        # Only the approvals that count now (not outdated, from reviewers who still qualify).
        "approvals": {"given": len(approvers), "needed": needed},
        "approved_by": approvers,
        "who_can_approve": who_can_approve(policy),
    }


def queue_states(user, requests: list[TR]) -> dict[int, dict[str, Any]]:
    """For the queue, in a fixed number of queries: each open request's approvals ("n of m",
    counting every approval given; the review screen re-checks which still count), what
    blocks it other than approvals (tags, gates, the card), and whether it is ready for
    `user` (nothing blocks it and they have not approved it), waiting for other reviewers,
    or blocked."""
    if not requests:
        return {}
    model_ids = {r.version.registered_model_id for r in requests}
    policies = {
        p.model_id: p
        for p in ModelPolicy.objects.filter(model_id__in=model_ids).select_related("model")
    }
    run_ids = {r.version.run_id for r in requests if r.version.run_id}
    facts: dict[str, dict[str, str]] = {run_id: {} for run_id in run_ids}
    for run_id, key, value in Param.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "key", "value"
    ):
        facts[run_id][key] = value
    for run_id, key, value in RunTag.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "key", "value"
    ):
        facts[run_id][key] = value
    metrics: dict[str, dict[str, float | None]] = {run_id: {} for run_id in run_ids}
    for run_id, key, number, is_nan in LatestMetric.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "key", "value", "is_nan"
    ):
        metrics[run_id][key] = None if is_nan else number
    cards = {
        c.version_id: c
        for c in ModelCard.objects.filter(version_id__in={r.version_id for r in requests})
    }
    approvals: dict[int, set[str]] = {r.pk: set() for r in requests}
    for request_id, username in Review.objects.filter(
        request_id__in=approvals, decision=Review.Decision.APPROVE
    ).values_list("request_id", "reviewer__username"):
        approvals[request_id].add(username)
    server_default = ModelPolicy(**rules.default_values())
    out = {}
    for req in requests:
        mv = req.version
        policy = policies.get(mv.registered_model_id) or server_default
        blocked_on = []
        if req.to_stage in (Stage.STAGING, Stage.PRODUCTION):
            tags = facts.get(mv.run_id, {})
            blocked_on += [
                f"tag {key}" for key in policy.required_tags if not str(tags.get(key, "")).strip()
            ]
            blocked_on += [
                f"gate {m.message.removeprefix('metric gate ')}"
                for m in rules.gate_check(policy, metrics.get(mv.run_id, {}))
            ]
            if req.to_stage == Stage.PRODUCTION and policy.require_model_card:
                card = cards.get(mv.pk)
                if card is None or card.missing_fields():
                    blocked_on.append("model card incomplete")
        given = approvals[req.pk]
        state = "blocked" if blocked_on else "waiting"
        if not blocked_on and user.get_username() not in given:
            state = "ready"
        out[req.pk] = {
            "state": state,
            "blocked_on": blocked_on,
            "approvals": {
                "given": len(given),
                "needed": rules.approvals_needed(policy, req.to_stage, req.from_stage),
            },
        }
    return out


def request_history(req: TR) -> list[dict[str, Any]]:
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(
        object_type="transition_request", object_id=str(req.pk)
    ).order_by(*AuditEvent.CHAIN_ORDER)
    return [
        {
            "seq": e.seq,
            "at": e.created_at.isoformat(),
            "action": e.action,
            "outcome": e.outcome,
            "actor": e.actor_username,
            "reason": e.reason,
        }
        for e in events
    ]


def review_chain(version: ModelVersion) -> list[dict[str, Any]]:
    """Every request on `version` with its reviews: "is this approved, by whom, when"."""
    requests = list(
        TR.objects.filter(version=version)
        .select_related("version__registered_model", "requested_by", "resolved_by")
        .order_by("created_at", "pk")
    )
    return request_payloads(requests)

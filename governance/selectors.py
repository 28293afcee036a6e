"""Reads of the promotion workflow: requests with their history, the reviewer's queue,
model cards (pre-filled from lineage, exported as Markdown) and the review screen's facts."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from core import access, identifiers
from core.errors import InvalidParameterValue
from governance import policy as rules
from governance.effects import approval_effects
from governance.effects import describe as describe_effects
from governance.models import CARD_FIELDS, Comment, ModelCard, ModelPolicy, Review
from governance.models import TransitionRequest as TR
from registry import permissions as model_permissions
from registry.models import ModelVersion
from registry.transitions import Stage, canonical_stage
from tracking.models import LatestMetric, Param, Run, RunInput, RunTag

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
            "rollback": req.from_stage == Stage.ARCHIVED and req.to_stage == Stage.PRODUCTION,
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
    from governance.services import evaluate, who_can_approve

    policy = rules.policy_for(req.version.registered_model)
    needed = rules.approvals_needed(policy, req.to_stage, req.from_stage)
    if effective_status(req) != TR.Status.OPEN:
        given = req.reviews.filter(decision=Review.Decision.APPROVE).count()
        return {"missing": [], "approvals": {"given": given, "needed": needed}}
    missing, approvers = evaluate(req, policy)
    return {
        "missing": [m.as_dict() for m in missing],
        # Only the approvals that count now (not outdated, from reviewers who still qualify).
        "approvals": {"given": len(approvers), "needed": needed},
        "who_can_approve": who_can_approve(policy),
    }


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


# ---------------------------------------------------------------------------------------------
# Model cards


def _lineage_facts(mv: ModelVersion) -> tuple[str, str]:
    """(training data, evaluation results) pre-filled from the version's source run."""
    if not mv.run_id:
        return "", ""
    inputs = RunInput.objects.filter(run_id=mv.run_id).select_related("dataset")
    lines = [
        f"- {i.dataset.name} (digest {i.dataset.digest}"
        + (f", {i.context}" if i.context else "")
        + (f", source {i.dataset.source_type}" if i.dataset.source_type else "")
        + ")"
        for i in inputs
    ]
    tags = dict(RunTag.objects.filter(run_id=mv.run_id).values_list("key", "value"))
    params = dict(Param.objects.filter(run_id=mv.run_id).values_list("key", "value"))
    dataset_version = tags.get("dataset_version") or params.get("dataset_version")
    if dataset_version:
        lines.append(f"- dataset_version: {dataset_version}")
    metrics = [
        f"- {key}: {'NaN' if is_nan else f'{value:.6g}'}"
        for key, value, is_nan in LatestMetric.objects.filter(run_id=mv.run_id)
        .order_by("key")
        .values_list("key", "value", "is_nan")
    ]
    return "\n".join(lines), "\n".join(metrics)


def card_draft(mv: ModelVersion) -> ModelCard:
    """An unsaved card with training data and evaluation results from lineage."""
    training, evaluation = _lineage_facts(mv)
    return ModelCard(
        version=mv,
        training_data=training,
        evaluation_results=evaluation,
        updated_at=timezone.now(),
    )


def card_get(mv: ModelVersion) -> tuple[ModelCard, bool]:
    card = ModelCard.objects.filter(version=mv).first()
    if card is not None:
        return card, True
    return card_draft(mv), False


def card_payload(card: ModelCard, saved: bool) -> dict[str, Any]:
    missing = card.missing_fields()
    return {
        **{field: getattr(card, field) for field in CARD_FIELDS},
        "saved": saved,
        "complete": saved and not missing,
        "missing": missing if saved else list(CARD_FIELDS),
        "fields": [
            {"name": f, "label": label, "filled": bool(getattr(card, f).strip())}
            for f, label in CARD_FIELDS.items()
        ],
        "updated_at": card.updated_at.isoformat() if saved else None,
        "updated_by": card.updated_by if saved else None,
    }


def _yaml(value: Any) -> str:
    # A JSON scalar is a valid YAML scalar, and needs no YAML library.
    return json.dumps(value, ensure_ascii=False)


def card_markdown(card: ModelCard) -> str:
    """The card as Markdown with Hugging Face model-card YAML front matter."""
    mv = card.version
    name = mv.registered_model.name
    metrics = (
        list(
            LatestMetric.objects.filter(run_id=mv.run_id, is_nan=False)
            .order_by("key")
            .values_list("key", "value")
        )
        if mv.run_id
        else []
    )
    inputs = (
        list(RunInput.objects.filter(run_id=mv.run_id).values_list("dataset__name", "context"))
        if mv.run_id
        else []
    )
    named = (
        RunTag.objects.filter(run_id=mv.run_id, key="dataset_version")
        .values_list("value", flat=True)
        .first()
        if mv.run_id
        else None
    )
    datasets = sorted(
        {d for d, _ in inputs} | {t.strip() for t in (named or "").split("+") if t.strip()}
    )
    # Hugging Face's model-index wants the dataset each result was measured on: the
    # evaluation input when the run logged one, else its first dataset.
    evaluated = next((d for d, c in inputs if c == "evaluation"), None) or (
        datasets[0] if datasets else "unspecified"
    )
    front = [
        "---",
        "library_name: mlflow",
        "tags:",
        "  - custody",
        f"  - {_yaml(mv.current_stage)}",
    ]
    if datasets:
        front.append("datasets:")
        front += [f"  - {_yaml(d)}" for d in datasets]
    front += ["model-index:", f"  - name: {_yaml(f'{name} v{mv.version}')}", "    results:"]
    front += [
        "      - task:",
        '          type: "custom"',
        "        dataset:",
        f"          type: {_yaml(evaluated)}",
        f"          name: {_yaml(evaluated)}",
        "        metrics:",
    ]
    if metrics:
        for key, value in metrics:
            front += [
                f"          - type: {_yaml(key)}",
                f"            name: {_yaml(key)}",
                f"            value: {_yaml(value)}",
            ]
    else:
        front[-1] = "        metrics: []"
    front.append("---")
    body = [f"# {name}, version {mv.version}", ""]
    body.append(f"Stage: {mv.current_stage}. Source run: {mv.run_id or 'none'}.")
    for field, label in CARD_FIELDS.items():
        body += ["", f"## {label}", "", getattr(card, field).strip() or "_Not provided._"]
    return "\n".join(front + body) + "\n"


# ---------------------------------------------------------------------------------------------
# The review screen


def _run_summary(run_id: str) -> dict[str, Any]:
    if not run_id:
        return {"run_id": None, "params": {}, "metrics": {}, "tags": {}, "datasets": []}
    run = Run.objects.filter(run_id=run_id).first()
    tags = dict(
        RunTag.objects.filter(run_id=run_id)
        .exclude(key__startswith="mlflow.log-model")
        .values_list("key", "value")
    )
    return {
        "run_id": run_id,
        "author": run.user_id if run else "",
        "params": dict(
            Param.objects.filter(run_id=run_id).order_by("key").values_list("key", "value")
        ),
        "metrics": {
            k: (None if nan else v)
            for k, v, nan in LatestMetric.objects.filter(run_id=run_id)
            .order_by("key")
            .values_list("key", "value", "is_nan")
        },
        "tags": tags,
        "commit": tags.get("git_commit") or tags.get("mlflow.source.git.commit") or "",
        "datasets": [
            f"{name} ({digest})" + (f" [{context}]" if context else "")
            for name, digest, context in RunInput.objects.filter(run_id=run_id).values_list(
                "dataset__name", "dataset__digest", "context"
            )
        ],
    }


def _rows(candidate: dict[str, Any], current: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(candidate) | set(current))
    return [
        {
            "key": k,
            "candidate": candidate.get(k),
            "production": current.get(k),
            "differs": candidate.get(k) != current.get(k),
        }
        for k in keys
    ]


def review_screen(req: TR) -> dict[str, Any]:
    """Everything a reviewer needs to decide, for the admin and the web UI."""
    mv = req.version
    model = mv.registered_model
    production = (
        ModelVersion.objects.filter(
            registered_model=model, current_stage=Stage.PRODUCTION, deleted=False
        )
        .exclude(pk=mv.pk)
        .first()
    )
    candidate = _run_summary(mv.run_id)
    current = _run_summary(production.run_id) if production else None
    card, saved = card_get(mv)
    policy = rules.policy_for(model)
    tags, metrics = rules.run_facts(mv.run_id)
    checks = [
        {
            "what": f"lineage tag {key}",
            "ok": bool(str(tags.get(key, "")).strip()),
            "detail": tags.get(key, "missing"),
        }
        for key in policy.required_tags
    ] + [
        {
            "what": f"metric gate {g['metric']} {g['op']} {g['value']:g}",
            "ok": not rules.gate_check(ModelPolicy(metric_gates=[g]), metrics),
            "detail": metrics.get(g["metric"], "missing"),
        }
        for g in policy.metric_gates
    ]
    if req.to_stage == Stage.PRODUCTION and policy.require_model_card:
        checks.append(
            {
                "what": "model card complete",
                "ok": saved and not card.missing_fields(),
                "detail": "complete"
                if saved and not card.missing_fields()
                else "missing: " + ", ".join(card.missing_fields() if saved else CARD_FIELDS),
            }
        )
    payload = request_payloads([req], detail=True)[0]
    return {
        "request": payload,
        "policy": rules.payload(policy),
        "checks": checks,
        "candidate": candidate,
        "production": {"version": production.version, **(current or {})} if production else None,
        "compare": {
            "params": _rows(candidate["params"], current["params"] if current else {}),
            "metrics": _rows(candidate["metrics"], current["metrics"] if current else {}),
            "datasets": _rows(
                {d: True for d in candidate["datasets"]},
                {d: True for d in (current["datasets"] if current else [])},
            ),
            "commit": {
                "candidate": candidate.get("commit", ""),
                "production": current.get("commit", "") if current else "",
            },
        },
        "card": card_payload(card, saved),
        "card_markdown": card_markdown(card),
        # The request's effects in plain words (its `effects` has them field by field).
        "effects": describe_effects(payload["effects"]) if payload["effects"] else [],
        # What this screen shows, as a digest: an approval sent with it is refused if the run
        # or the card changed in the meantime (services.approve).
        "basis": rules.review_basis(mv),
    }

"""Reads of the promotion workflow: requests with their history, the reviewer's queue,
model cards (pre-filled from lineage, exported as Markdown) and the review screen's facts."""

from __future__ import annotations

import json
import math
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


def metric_goals(policy: ModelPolicy) -> dict[str, str]:
    """Which way is better for each gated metric: a `>=`/`>` gate says higher, `<=`/`<` lower
    (an `==` gate says neither)."""
    goals: dict[str, str] = {}
    for gate in policy.metric_gates:
        if gate["op"] in (">=", ">"):
            goals.setdefault(gate["metric"], "higher")
        elif gate["op"] in ("<=", "<"):
            goals.setdefault(gate["metric"], "lower")
    return goals


def _metric_rows(
    candidate: dict[str, Any], current: dict[str, Any], goals: dict[str, str]
) -> list[dict[str, Any]]:
    """Each metric of this version and of Production, the delta, and whether it is better by
    the metric's goal (None when there is no goal, no Production value or no change)."""
    rows = _rows(candidate, current)
    for row in rows:
        mine, theirs = row["candidate"], row["production"]
        row["goal"] = goals.get(row["key"])
        row["delta"] = mine - theirs if mine is not None and theirs is not None else None
        row["verdict"] = None
        if row["delta"] is not None and not math.isnan(row["delta"]):
            if row["delta"] == 0:
                row["verdict"] = "same"
            elif row["goal"]:
                row["verdict"] = (
                    "better" if (row["delta"] > 0) == (row["goal"] == "higher") else "worse"
                )
    return rows


def _lineage_changes(candidate: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """What changed in the version's lineage since Production: datasets, the commit and the
    dataset_version tag."""
    mine, theirs = set(candidate["datasets"]), set(current["datasets"] if current else [])
    commit, production_commit = candidate.get("commit", ""), (current or {}).get("commit", "")
    named = candidate["tags"].get("dataset_version", "")
    production_named = (current or {}).get("tags", {}).get("dataset_version", "")
    return {
        "datasets_added": sorted(mine - theirs) if current else [],
        "datasets_removed": sorted(theirs - mine),
        "commit": {
            "candidate": commit,
            "production": production_commit,
            "changed": bool(current) and commit != production_commit,
        },
        "dataset_version": {
            "candidate": named,
            "production": production_named,
            "changed": bool(current) and named != production_named,
        },
    }


def _checks(policy: ModelPolicy, req: TR, card: ModelCard, saved: bool) -> list[dict[str, Any]]:
    tags, metrics = rules.run_facts(req.version.run_id)
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
        complete = saved and not card.missing_fields()
        checks.append(
            {
                "what": "model card complete",
                "ok": complete,
                "detail": "complete"
                if complete
                else "missing: " + ", ".join(card.missing_fields() if saved else CARD_FIELDS),
            }
        )
    return checks


def _json_safe(value: Any) -> Any:
    """Infinite and NaN metric values (and deltas) as the strings "inf", "-inf" and "nan":
    strict JSON (the API's renderer, PostgreSQL's jsonb) has no numbers for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def decision_basis(req: TR) -> dict[str, Any]:
    """What a decision on `req` rests on, as the model stands now: this version's source run
    beside the current Production version's (metrics with delta and direction, params,
    datasets, commit), the policy checks, the model card and what approving would do. Frozen
    into the request when it is decided (services), and shown from there afterwards."""
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
    effects = approval_effects(req)
    basis = {
        "recorded_at": timezone.now().isoformat(),
        "policy": rules.payload(policy),
        "checks": _checks(policy, req, card, saved),
        "candidate": candidate,
        "production": {"version": production.version, **(current or {})} if production else None,
        "compare": {
            "params": _rows(candidate["params"], current["params"] if current else {}),
            "metrics": _metric_rows(
                candidate["metrics"], current["metrics"] if current else {}, metric_goals(policy)
            ),
            "datasets": _rows(
                {d: True for d in candidate["datasets"]},
                {d: True for d in (current["datasets"] if current else [])},
            ),
            "commit": {
                "candidate": candidate.get("commit", ""),
                "production": current.get("commit", "") if current else "",
            },
        },
        "lineage": _lineage_changes(candidate, current),
        "card": card_payload(card, saved),
        # What approving does (field by field, and in plain words), as the model stood.
        "effects_detail": effects,
        "effects": describe_effects(effects),
        # What this screen shows, as a digest: an approval sent with it is refused if the run
        # or the card changed in the meantime (services.approve).
        "basis": rules.review_basis(mv),
    }
    return _json_safe(basis)


def review_screen(req: TR) -> dict[str, Any]:
    """Everything a reviewer needs to decide, for the admin, the web UI and the API. Once the
    request is decided, the basis is the one frozen with the decision (`frozen: true`), not
    a comparison with whatever is in Production now."""
    payload = request_payloads([req], detail=True)[0]
    frozen = req.decided_basis
    basis = frozen if frozen is not None else decision_basis(req)
    if frozen is None and payload["effects"] is None:
        basis = {**basis, "effects": [], "effects_detail": None}
    card, saved = card_get(req.version)
    return {
        "request": payload,
        **basis,
        "frozen": frozen is not None,
        "card_markdown": card_markdown(card),
    }

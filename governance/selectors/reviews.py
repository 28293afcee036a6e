"""The review screen's facts: this version's source run beside Production's, the policy's
checks, the card and what approving would do; frozen into the request when it is decided."""

from __future__ import annotations

import math
from typing import Any

from django.utils import timezone

from governance import policy as rules
from governance.effects import approval_effects
from governance.effects import describe as describe_effects
from governance.models import CARD_FIELDS, ModelCard, ModelPolicy
from governance.models import TransitionRequest as TR
from governance.selectors.cards import card_get, card_markdown, card_payload
from governance.selectors.requests import request_payloads
from registry.models import ModelVersion
from registry.transitions import Stage
from tracking.models import LatestMetric, Param, Run, RunInput, RunTag


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

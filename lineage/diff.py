"""What differs between two versions of a model: datasets, code, params, metrics, tags,
model card and approvals. The "why did it regress" query."""

from __future__ import annotations

from typing import Any

from governance.models import CARD_FIELDS
from governance.selectors.cards import card_get
from governance.selectors.requests import review_chain
from lineage.graph import up
from registry.models import ModelVersion, ModelVersionTag
from tracking.models import LatestMetric, Param, Run, RunTag
from tracking.permissions import unreadable_experiment_ids


def _run_hidden(run_id: str, user) -> bool:
    hidden = unreadable_experiment_ids(user)
    return bool(
        run_id and hidden and Run.objects.filter(run_id=run_id, experiment_id__in=hidden).exists()
    )


def _facts(mv: ModelVersion, user) -> dict[str, Any]:
    """A version's facts; its run's (datasets, commit, params, metrics, run tags) only when
    the caller may read the run's experiment, else `run_redacted` and nothing from the run."""
    run_id = mv.run_id
    redacted = _run_hidden(run_id, user)
    if redacted:
        run_id = ""
    datasets = (
        sorted(
            {
                s.removeprefix("dataset:")
                for s, _, _ in up({f"run:{run_id}"})
                if s.startswith("dataset:")
            }
        )
        if run_id
        else []
    )
    tags = dict(RunTag.objects.filter(run_id=run_id).values_list("key", "value")) if run_id else {}
    card, saved = card_get(mv)
    return {
        "version": mv.version,
        "stage": mv.current_stage,
        "run_id": run_id or None,
        "run_redacted": redacted,
        "datasets": datasets,
        "commit": tags.get("git_commit") or tags.get("mlflow.source.git.commit") or None,
        "params": dict(Param.objects.filter(run_id=run_id).values_list("key", "value"))
        if run_id
        else {},
        "metrics": {
            k: (None if nan else v)
            for k, v, nan in LatestMetric.objects.filter(run_id=run_id).values_list(
                "key", "value", "is_nan"
            )
        }
        if run_id
        else {},
        "tags": {
            **{k: v for k, v in tags.items() if not k.startswith("mlflow.")},
            **{
                f"version.{k}": v
                for k, v in ModelVersionTag.objects.filter(version=mv).values_list("key", "value")
            },
        },
        "card": {f: getattr(card, f) for f in CARD_FIELDS} if saved else None,
        "approvals": [
            {
                "request": r["id"],
                "to_stage": r["to_stage"],
                "status": r["status"],
                "reviews": r["reviews"],
            }
            for r in review_chain(mv)
        ],
    }


def _mapping_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    keys = sorted(set(a) | set(b))
    return {
        "added": {k: b[k] for k in keys if k not in a},
        "removed": {k: a[k] for k in keys if k not in b},
        "changed": {
            k: {"from": a[k], "to": b[k]} for k in keys if k in a and k in b and a[k] != b[k]
        },
        "same": sorted(k for k in keys if k in a and k in b and a[k] == b[k]),
    }


def version_diff(a: ModelVersion, b: ModelVersion, user) -> dict[str, Any]:
    fa, fb = _facts(a, user), _facts(b, user)
    metric_changes = {}
    for key in sorted(set(fa["metrics"]) & set(fb["metrics"])):
        va, vb = fa["metrics"][key], fb["metrics"][key]
        if va != vb:
            metric_changes[key] = {
                "from": va,
                "to": vb,
                "delta": None if va is None or vb is None else vb - va,
            }
    metrics = _mapping_diff(fa["metrics"], fb["metrics"])
    metrics["changed"] = metric_changes
    return {
        "model": a.registered_model.name,
        "a": {k: fa[k] for k in ("version", "stage", "run_id", "run_redacted")},
        "b": {k: fb[k] for k in ("version", "stage", "run_id", "run_redacted")},
        "datasets": {
            "only_in_a": sorted(set(fa["datasets"]) - set(fb["datasets"])),
            "only_in_b": sorted(set(fb["datasets"]) - set(fa["datasets"])),
            "both": sorted(set(fa["datasets"]) & set(fb["datasets"])),
        },
        "commit": {"a": fa["commit"], "b": fb["commit"], "changed": fa["commit"] != fb["commit"]},
        "params": _mapping_diff(fa["params"], fb["params"]),
        "metrics": metrics,
        "tags": _mapping_diff(fa["tags"], fb["tags"]),
        "card": _mapping_diff(fa["card"] or {}, fb["card"] or {}),
        "approvals": {"a": fa["approvals"], "b": fb["approvals"]},
    }

"""Policies: the server default, validation of a new policy, what makes one looser than
another, and the checks a version must pass before it may enter a stage."""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings

from core.errors import InvalidParameterValue
from governance.models import CARD_FIELDS, ModelCard, ModelPolicy
from registry.models import ModelVersion, RegisteredModel
from registry.transitions import Stage, is_rollback
from tracking.models import LatestMetric, Param, RunInput, RunTag

OPERATORS: dict[str, Any] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_TAG_KEY = re.compile(r"^[\w.\-/ ]{1,250}$")
_ALIAS = re.compile(r"^[\w\-]{1,255}$")
SCALAR_FIELDS = (
    "require_tags_at_registration",
    "staging_approvals",
    "production_approvals",
    "demotion_approvals",
    "rollback_approvals",
    "exclude_run_author",
    "require_model_card",
    "archive_grace_seconds",
)
MAX_APPROVALS = 10


def policy_for(model: RegisteredModel) -> ModelPolicy:
    """The model's policy, or (unsaved) the server default when it has none of its own."""
    policy = ModelPolicy.objects.filter(model=model).first()
    if policy is None:
        policy = ModelPolicy(model=model, **default_values())
    return policy


def default_values() -> dict[str, Any]:
    return clean_policy(dict(settings.CUSTODY_DEFAULT_POLICY), partial=False)


def reviewer_names(policy: ModelPolicy) -> list[str]:
    if policy.pk is None:
        return []
    return sorted(policy.reviewers.values_list("username", flat=True))


def payload(policy: ModelPolicy) -> dict[str, Any]:
    return {
        "model": policy.model.name,
        "is_default": policy.pk is None,
        "required_tags": list(policy.required_tags),
        "require_tags_at_registration": policy.require_tags_at_registration,
        "metric_gates": list(policy.metric_gates),
        "staging_approvals": policy.staging_approvals,
        "production_approvals": policy.production_approvals,
        # null: the same as production_approvals.
        "demotion_approvals": policy.demotion_approvals,
        "rollback_approvals": policy.rollback_approvals,
        "reviewers": reviewer_names(policy),
        "exclude_run_author": policy.exclude_run_author,
        "require_model_card": policy.require_model_card,
        "protected_aliases": list(policy.protected_aliases),
        "archive_grace_seconds": policy.archive_grace_seconds
        if policy.archive_grace_seconds is not None
        else settings.CUSTODY_ARCHIVE_GRACE_SECONDS,
    }


def _strings(value: Any, field: str, pattern: re.Pattern, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterValue(f"'{field}' must be a list of {what}.")
    if len(value) > 50:
        raise InvalidParameterValue(f"'{field}' may list at most 50 entries.")
    for item in value:
        if not pattern.match(item):
            raise InvalidParameterValue(f"'{field}': {item[:60]!r} is not a valid {what[:-1]}.")
    return sorted(set(value))


def _gates(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > 50:
        raise InvalidParameterValue("'metric_gates' must be a list of at most 50 gates.")
    gates = []
    for gate in value:
        if not isinstance(gate, dict) or set(gate) != {"metric", "op", "value"}:
            raise InvalidParameterValue(
                "Each metric gate is an object with exactly 'metric', 'op' and 'value', "
                'e.g. {"metric": "val_auc", "op": ">=", "value": 0.9}.'
            )
        if not isinstance(gate["metric"], str) or not _TAG_KEY.match(gate["metric"]):
            raise InvalidParameterValue(f"Metric gate: {gate['metric']!r} is not a metric name.")
        if gate["op"] not in OPERATORS:
            raise InvalidParameterValue(
                f"Metric gate on {gate['metric']}: operator {gate['op']!r} is not one of "
                f"{', '.join(OPERATORS)}."
            )
        number = gate["value"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidParameterValue(f"Metric gate on {gate['metric']}: value must be a number.")
        try:
            number = float(number)  # a 400-digit integer overflows here, not in isfinite
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise InvalidParameterValue(
                f"Metric gate on {gate['metric']}: value must be a finite number "
                "(at most about 1.8e308)."
            )
        gates.append({"metric": gate["metric"], "op": gate["op"], "value": number})
    return sorted(gates, key=lambda g: (g["metric"], g["op"], g["value"]))


def _count(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_APPROVALS:
        raise InvalidParameterValue(f"'{field}' must be a whole number from 0 to {MAX_APPROVALS}.")
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterValue(f"'{field}' must be true or false.")
    return value


def clean_policy(data: Any, *, partial: bool = True) -> dict[str, Any]:
    """Validated policy fields (reviewers excluded: they are users, handled by the service)."""
    if not isinstance(data, dict):
        raise InvalidParameterValue("The policy must be a JSON object.")
    known = {
        "required_tags",
        "metric_gates",
        "protected_aliases",
        "reviewers",
        *SCALAR_FIELDS,
    }
    unknown = sorted(set(data) - known - {"model", "is_default"})
    if unknown:
        raise InvalidParameterValue(
            f"Unknown policy field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(known))}."
        )
    out: dict[str, Any] = {}
    if "required_tags" in data:
        out["required_tags"] = _strings(data["required_tags"], "required_tags", _TAG_KEY, "tags")
    if "protected_aliases" in data:
        out["protected_aliases"] = _strings(
            data["protected_aliases"], "protected_aliases", _ALIAS, "aliases"
        )
    if "metric_gates" in data:
        out["metric_gates"] = _gates(data["metric_gates"])
    for field in ("staging_approvals", "production_approvals", "rollback_approvals"):
        if field in data:
            out[field] = _count(data[field], field)
    if "demotion_approvals" in data:
        value = data["demotion_approvals"]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_APPROVALS
        ):
            raise InvalidParameterValue(
                "'demotion_approvals' must be null (the same as production_approvals) or a "
                f"whole number from 0 to {MAX_APPROVALS}."
            )
        out["demotion_approvals"] = value
    for field in ("require_tags_at_registration", "exclude_run_author", "require_model_card"):
        if field in data:
            out[field] = _flag(data[field], field)
    if "archive_grace_seconds" in data:
        grace = data["archive_grace_seconds"]
        if grace is not None and (
            isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 90 * 86400
        ):
            raise InvalidParameterValue(
                "'archive_grace_seconds' must be null (the server default) or 0 to 7776000."
            )
        out["archive_grace_seconds"] = grace
    if not partial:
        missing = [
            f
            for f in ("required_tags", "metric_gates", "protected_aliases", *SCALAR_FIELDS)
            if f not in out
        ]
        if missing:
            raise InvalidParameterValue(f"Policy is missing: {', '.join(missing)}.")
    return out


def _gate_covered(gate: dict[str, Any], gates: list[dict[str, Any]]) -> bool:
    """Is `gate` kept (same metric and direction, threshold at least as strict) in `gates`?"""
    for new in gates:
        if new["metric"] != gate["metric"]:
            continue
        if new["op"] == gate["op"]:
            if gate["op"] in (">=", ">") and new["value"] >= gate["value"]:
                return True
            if gate["op"] in ("<=", "<") and new["value"] <= gate["value"]:
                return True
            if gate["op"] == "==" and new["value"] == gate["value"]:
                return True
        if gate["op"] == ">=" and new["op"] == ">" and new["value"] >= gate["value"]:
            return True
        if gate["op"] == "<=" and new["op"] == "<" and new["value"] <= gate["value"]:
            return True
    return False


def loosenings(current: dict[str, Any], proposed: dict[str, Any]) -> list[str]:
    """Every way `proposed` is looser than `current`, in plain words (empty: not looser)."""
    found = []
    for field in ("staging_approvals", "production_approvals", "rollback_approvals"):
        if proposed[field] < current[field]:
            found.append(f"{field} from {current[field]} to {proposed[field]}")
    # Compared as the number it stands for: null means "as many as production_approvals".
    was, now = leave_production_count(current), leave_production_count(proposed)
    if now < was:
        found.append(f"approvals to leave Production (demotion_approvals) from {was} to {now}")
    dropped = sorted(set(current["required_tags"]) - set(proposed["required_tags"]))
    if dropped:
        found.append(f"required_tags drops {', '.join(dropped)}")
    unprotected = sorted(set(current["protected_aliases"]) - set(proposed["protected_aliases"]))
    if unprotected:
        found.append(f"protected_aliases drops {', '.join(unprotected)}")
    for gate in current["metric_gates"]:
        if not _gate_covered(gate, proposed["metric_gates"]):
            found.append(f"metric gate {gate['metric']} {gate['op']} {gate['value']:g} loosened")
    for field in ("require_tags_at_registration", "exclude_run_author", "require_model_card"):
        if current[field] and not proposed[field]:
            found.append(f"{field} switched off")
    if sorted(current.get("reviewers", [])) != sorted(proposed.get("reviewers", [])):
        found.append("the reviewer list changes (only admins choose reviewers)")
    return found


# ---------------------------------------------------------------------------------------------
# Checks


@dataclass(frozen=True)
class Missing:
    code: str  # tag | gate | card | approvals | source
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def run_facts(run_id: str) -> tuple[dict[str, str], dict[str, float | None]]:
    """(tags with params as fallback, latest metrics) of a run; three queries."""
    if not run_id:
        return {}, {}
    tags = dict(Param.objects.filter(run_id=run_id).values_list("key", "value"))
    tags.update(RunTag.objects.filter(run_id=run_id).values_list("key", "value"))
    metrics = {
        key: (None if is_nan else value)
        for key, value, is_nan in LatestMetric.objects.filter(run_id=run_id).values_list(
            "key", "value", "is_nan"
        )
    }
    return tags, metrics


def tag_check(policy: ModelPolicy, tags: dict[str, str], run_id: str) -> list[Missing]:
    missing = []
    for key in policy.required_tags:
        if not str(tags.get(key, "")).strip():
            where = f"run {run_id}" if run_id else "the version (it has no source run)"
            missing.append(
                Missing(
                    "tag",
                    f"lineage tag '{key}' is missing on {where}; set it with "
                    f"mlflow.set_tag('{key}', ...) on the run that trained this model",
                )
            )
    return missing


def gate_check(policy: ModelPolicy, metrics: dict[str, float | None]) -> list[Missing]:
    missing = []
    for gate in policy.metric_gates:
        wanted = f"{gate['metric']} {gate['op']} {gate['value']:g}"
        value = metrics.get(gate["metric"])
        if gate["metric"] not in metrics:
            missing.append(Missing("gate", f"metric gate {wanted}: the run has no such metric"))
        elif value is None or not OPERATORS[gate["op"]](value, gate["value"]):
            missing.append(
                Missing(
                    "gate",
                    f"metric gate {wanted} fails: the run has {value:g}"
                    if value is not None
                    else f"metric gate {wanted} fails: NaN",
                )
            )
    return missing


def card_check(version: ModelVersion) -> list[Missing]:
    card = ModelCard.objects.filter(version=version).first()
    name = quote(version.registered_model.name, safe="")
    where = (
        f"fill it in on /models/{name}/versions/{version.version}/card/ or with PUT "
        f"/api/v1/models/{name}/versions/{version.version}/card"
    )
    if card is None:
        return [Missing("card", f"the model card is missing; {where} before Production")]
    fields = card.missing_fields()
    if fields:
        return [
            Missing(
                "card", f"the model card is incomplete: {', '.join(fields)} left empty; {where}"
            )
        ]
    return []


# MLflow's own tags change as a client works (run name, notes, model history) and are not
# what a reviewer decides on, but for the code version.
_BASIS_SYSTEM_TAGS = ("mlflow.source.git.commit",)


def review_basis(version: ModelVersion) -> str:
    """A digest of what a reviewer sees and approves: the source run's params, its tags (but
    MLflow's own, the commit excepted), latest metrics and datasets, and the model card. When
    any of it changes, approvals given before no longer count."""
    run_id = version.run_id
    card = ModelCard.objects.filter(version=version).first()
    body: dict[str, Any] = {"run": run_id, "card": None}
    if card is not None:
        body["card"] = {f: getattr(card, f) for f in CARD_FIELDS}
    if run_id:
        body["params"] = dict(Param.objects.filter(run_id=run_id).values_list("key", "value"))
        body["tags"] = {
            k: v
            for k, v in RunTag.objects.filter(run_id=run_id).values_list("key", "value")
            if not k.startswith("mlflow.") or k in _BASIS_SYSTEM_TAGS
        }
        body["metrics"] = {
            k: "nan" if is_nan else repr(v)
            for k, v, is_nan in LatestMetric.objects.filter(run_id=run_id).values_list(
                "key", "value", "is_nan"
            )
        }
        body["datasets"] = sorted(
            RunInput.objects.filter(run_id=run_id).values_list(
                "dataset__name", "dataset__digest", "context"
            )
        )
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def conditions(policy: ModelPolicy, version: ModelVersion, target: str) -> list[Missing]:
    """Everything but approvals that `version` must satisfy to enter `target`."""
    if target not in (Stage.STAGING, Stage.PRODUCTION):
        return []
    tags, metrics = run_facts(version.run_id)
    missing = tag_check(policy, tags, version.run_id) + gate_check(policy, metrics)
    if target == Stage.PRODUCTION and policy.require_model_card:
        missing += card_check(version)
    return missing


def leave_production_count(values: dict[str, Any]) -> int:
    """Approvals to leave Production, from a policy's payload values."""
    if values.get("demotion_approvals") is None:
        return values["production_approvals"]
    return values["demotion_approvals"]


def approvals_needed(policy: ModelPolicy, target: str, source: str | None = None) -> int:
    """Approvals for a move from `source` to `target`. Leaving Production takes the version out
    of serving, so it needs the policy's approvals to leave Production, and, when it goes to
    Staging, at least as many as entering Staging needs."""
    if source is not None and is_rollback(source, target):
        # A rollback: the version was approved into Production before; the card and the gates
        # are checked again, the approvals are the policy's own count for rollbacks.
        return policy.rollback_approvals
    entering = 0
    if target == Stage.STAGING:
        entering = policy.staging_approvals
    elif target == Stage.PRODUCTION:
        entering = policy.production_approvals
    if source == Stage.PRODUCTION and target != Stage.PRODUCTION:
        return max(entering, policy.leave_production_approvals)
    return entering

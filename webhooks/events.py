"""The events a webhook can subscribe to, and how an audit event becomes them.

MLflow's registry events keep MLflow's names and payload shapes (mlflow.webhooks.types), so a
receiver written for MLflow reads Custody's deliveries unchanged. Custody's own events use
the same envelope: `{"entity", "action", "timestamp", "data"}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# MLflow 3 (mlflow.entities.webhook.VALID_ENTITY_ACTIONS), registry events only: Custody has no
# prompts or budget policies.
MLFLOW_EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
# Custody's governance events. Registry-wide only (admins): the audit chain's.
CUSTODY_MODEL_EVENTS = (
    "transition_request.created",
    "transition_request.approved",
    "transition_request.rejected",
    "transition_request.cancelled",
    "transition_request.applied",
    "transition_request.stale",
    "model_version.stage_changed",
    "model_version.rolled_back",
    "policy.updated",
)
CUSTODY_REGISTRY_EVENTS = (
    "audit_checkpoint.signed",
    "audit_verification.failed",
)
ALL_EVENTS = MLFLOW_EVENTS + CUSTODY_MODEL_EVENTS + CUSTODY_REGISTRY_EVENTS

# MLflow's payload examples (mlflow.webhooks.types), sent by `test`.
EXAMPLES: dict[str, dict[str, Any]] = {
    "registered_model.created": {
        "name": "example_model",
        "tags": {"example_key": "example_value"},
        "description": "An example registered model",
    },
    "model_version.created": {
        "name": "example_model",
        "version": "1",
        "source": "models:/123",
        "run_id": "abcd1234abcd5678",
        "tags": {"example_key": "example_value"},
        "description": "An example model version",
    },
    "model_version_tag.set": {
        "name": "example_model",
        "version": "1",
        "key": "example_key",
        "value": "example_value",
    },
    "model_version_tag.deleted": {"name": "example_model", "version": "1", "key": "example_key"},
    "model_version_alias.created": {
        "name": "example_model",
        "alias": "example_alias",
        "version": "1",
    },
    "model_version_alias.deleted": {"name": "example_model", "alias": "example_alias"},
}


def example(event: str) -> dict[str, Any]:
    if event in EXAMPLES:
        return EXAMPLES[event]
    return {"name": "example_model", "version": "1", "example": True}


@dataclass(frozen=True)
class Occurrence:
    """One webhook event an audit event stands for."""

    event: str
    data: dict[str, Any]
    model_name: str  # "" for registry-wide facts (audit chain)


_REQUEST_ACTIONS = {
    "transition_request.create": "transition_request.created",
    "transition_request.approve": "transition_request.approved",
    "transition_request.reject": "transition_request.rejected",
    "transition_request.cancel": "transition_request.cancelled",
    "transition_request.apply": "transition_request.applied",
    "transition_request.stale": "transition_request.stale",
}

# The audit actions that can become an event: others cost nothing (no query).
MAPPED_ACTIONS = frozenset(
    {
        "registered_model.create",
        "model_version.create",
        "model_version.tag.set",
        "model_version.tag.delete",
        "model_version.alias.set",
        "model_version.alias.delete",
        "model_version.transition",
        "policy.update",
        *_REQUEST_ACTIONS,
    }
)


def _version(event) -> str:
    return str(event.model_version) if event.model_version is not None else ""


def from_audit(event, load_tags) -> list[Occurrence]:
    """The occurrences one successful audit event stands for. `load_tags(kind, object_id)`
    reads the tags of a just-created model or version (MLflow's payloads carry them)."""
    action, after, before = event.action, event.after or {}, event.before or {}
    name = event.model_name
    if action == "registered_model.create":
        data = {
            "name": name,
            "tags": load_tags("registered_model", event.object_id),
            "description": after.get("description") or None,
        }
        return [Occurrence("registered_model.created", data, name)]
    if action == "model_version.create":
        data = {
            "name": name,
            "version": _version(event),
            "source": after.get("source", ""),
            "run_id": after.get("run_id") or None,
            "tags": load_tags("model_version", event.object_id),
            "description": after.get("description") or None,
        }
        return [Occurrence("model_version.created", data, name)]
    if action == "model_version.tag.set":
        ((key, value),) = after.items()
        data = {"name": name, "version": _version(event), "key": key, "value": value}
        return [Occurrence("model_version_tag.set", data, name)]
    if action == "model_version.tag.delete":
        ((key, _),) = before.items()
        data = {"name": name, "version": _version(event), "key": key}
        return [Occurrence("model_version_tag.deleted", data, name)]
    if action == "model_version.alias.set":
        data = {"name": name, "alias": after["alias"], "version": str(after["version"])}
        return [Occurrence("model_version_alias.created", data, name)]
    if action == "model_version.alias.delete":
        return [
            Occurrence(
                "model_version_alias.deleted", {"name": name, "alias": before["alias"]}, name
            )
        ]
    if action == "model_version.transition":
        data = {
            "name": name,
            "version": _version(event),
            "from_stage": before.get("current_stage"),
            "to_stage": after.get("current_stage"),
            "transition_request": after.get("transition_request"),
            "requested_by": after.get("requested_by"),
            "approved_by": after.get("approved_by"),
            "actor": event.actor_username,
            "reason": event.reason,
            "audit_seq": event.seq,
        }
        found = [Occurrence("model_version.stage_changed", data, name)]
        if after.get("rollback"):
            found.append(Occurrence("model_version.rolled_back", data, name))
        return found
    if action == "policy.update":
        data = {
            "name": name,
            "actor": event.actor_username,
            "before": before,
            "after": after,
            "audit_seq": event.seq,
        }
        return [Occurrence("policy.updated", data, name)]
    if action in _REQUEST_ACTIONS:
        data = {
            "name": name,
            "version": _version(event),
            "request_id": after.get("id", _int_or_none(event.object_id)),
            "from_stage": after.get("from_stage"),
            "to_stage": after.get("to_stage"),
            "status": after.get("status"),
            "requested_by": after.get("requested_by"),
            "actor": event.actor_username,
            "reason": event.reason,
            "audit_seq": event.seq,
        }
        if "approved_by" in after:
            data["approved_by"] = after["approved_by"]
        return [Occurrence(_REQUEST_ACTIONS[action], data, name)]
    return []


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def envelope(event: str, data: dict[str, Any], timestamp: str) -> dict[str, Any]:
    entity, action = event.split(".", 1)
    return {"entity": entity, "action": action, "timestamp": timestamp, "data": data}


def slack_text(event: str, data: dict[str, Any]) -> str:
    """One line for a Slack channel."""
    name, version = data.get("name"), data.get("version")
    subject = f"{name} v{version}" if version else f"{name}" if name else "Custody"
    details = []
    for key in ("from_stage", "to_stage", "alias", "key", "value", "actor", "reason"):
        if data.get(key):
            details.append(f"{key}={data[key]}")
    if event.startswith("audit_"):
        details = [
            f"{k}={v}" for k, v in data.items() if k in ("seq", "reason", "first_broken_seq")
        ]
    suffix = f" ({', '.join(details)})" if details else ""
    return f"[Custody] {event}: {subject}{suffix}"

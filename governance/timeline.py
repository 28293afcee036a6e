"""A model's history read back from the audit trail: which version was in Production, in
Staging and under each alias, from when until when, who moved it there and on whose
approval. Built from the events alone (one query), so it shows exactly what the verifiable
record says."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from audit.models import AuditEvent
from registry.models import RegisteredModel
from registry.transitions import Stage

TRACKED_STAGES = (Stage.PRODUCTION, Stage.STAGING)
ACTIONS = (
    "model_version.transition",
    "model_version.alias.set",
    "model_version.alias.delete",
    "model_version.delete",
    # History brought in from another MLflow server: stages and aliases as they were there.
    "model_version.import",
    "model_version.alias.import",
)


def _names(model: RegisteredModel) -> set[str]:
    """Every name the model has had (events carry the name at the time)."""
    names = {model.name}
    for before, after in AuditEvent.objects.filter(
        action="registered_model.rename", object_type="registered_model", object_id=str(model.pk)
    ).values_list("before", "after"):
        names.update(n for n in ((before or {}).get("name"), (after or {}).get("name")) if n)
    return names


def model_timeline(model: RegisteredModel, at: datetime | None = None) -> dict[str, Any]:
    """{"stages": {"Production": [interval...], "Staging": [...]}, "aliases": {alias: [...]},
    "at": {...} when `at` is given}. An interval: version, from, until (None: still),
    moved_in_by, approved_by, transition_request, rollback, moved_out_by, moved_out_reason."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    stages: dict[str, list[dict[str, Any]]] = {s: [] for s in TRACKED_STAGES}
    aliases: dict[str, list[dict[str, Any]]] = {}

    def close(key: tuple[str, str], event: AuditEvent, reason: str = "") -> None:
        interval = open_.pop(key, None)
        if interval is not None:
            interval["until"] = event.created_at.isoformat(timespec="microseconds")
            interval["moved_out_by"] = event.actor_username or "system"
            interval["moved_out_reason"] = reason or event.reason

    def start(key: tuple[str, str], version: int, event: AuditEvent, into: list) -> None:
        after = event.after or {}
        interval = {
            "version": version,
            "from": event.created_at.isoformat(timespec="microseconds"),
            "until": None,
            "moved_in_by": event.actor_username or "system",
            "requested_by": after.get("requested_by"),
            "approved_by": after.get("approved_by", []),
            "transition_request": after.get("transition_request"),
            # Archived → Production of a version that was in Production before.
            "rollback": bool(after.get("rollback")),
            "reason": event.reason,
            # Brought in by an import: `from` is when it was imported, `source` where from.
            "imported_from": after.get("source"),
            "moved_out_by": None,
            "moved_out_reason": None,
        }
        open_[key] = interval
        into.append(interval)

    events = AuditEvent.objects.filter(
        model_name__in=_names(model), action__in=ACTIONS, outcome=AuditEvent.Outcome.SUCCESS
    ).order_by(*AuditEvent.CHAIN_ORDER)
    for event in events.only(
        "seq",
        "created_at",
        "actor_username",
        "action",
        "before",
        "after",
        "reason",
        "model_version",
    ):
        before, after = event.before or {}, event.after or {}
        version = event.model_version
        if event.action in ("model_version.transition", "model_version.import"):
            old, new = before.get("current_stage"), after.get("current_stage")
            why = f"moved to {new}" + (f": {event.reason}" if event.reason else "")
            close((f"stage:{old}", str(version)), event, why)
            if new in TRACKED_STAGES:
                start((f"stage:{new}", str(version)), version, event, stages[new])
        elif event.action in ("model_version.alias.set", "model_version.alias.import"):
            alias = after.get("alias", "")
            for key in [k for k in open_ if k[0] == f"alias:{alias}"]:
                close(key, event, f"alias moved to version {after.get('version')}")
            start(
                (f"alias:{alias}", str(after.get("version"))),
                after.get("version"),
                event,
                aliases.setdefault(alias, []),
            )
        elif event.action == "model_version.alias.delete":
            close((f"alias:{before.get('alias', '')}", str(before.get("version"))), event)
        elif event.action == "model_version.delete":
            for key in [k for k in open_ if k[1] == str(version)]:
                close(key, event, "version deleted")
    result: dict[str, Any] = {"model": model.name, "stages": stages, "aliases": aliases}
    if at is not None:
        moment = at.astimezone(UTC).isoformat(timespec="microseconds")

        def holding(intervals: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                i
                for i in intervals
                if i["from"] <= moment and (i["until"] is None or i["until"] > moment)
            ]

        result["at"] = {
            "time": moment,
            "stages": {s: holding(v) for s, v in stages.items()},
            "aliases": {a: holding(v) for a, v in aliases.items() if holding(v)},
        }
    return result

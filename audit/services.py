from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.chain import event_hash, format_time
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core import context


def _jsonable(value: Any) -> Any:
    # Before/after snapshots go through JSON once so that the stored value and the hashed
    # value are identical (no datetimes or tuples that a JSONField would reshape).
    return (
        json.loads(json.dumps(value, default=str, allow_nan=False)) if value is not None else None
    )


def record(
    *,
    action: str,
    object_type: str,
    object_id: str | int,
    object_name: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    model_name: str = "",
    model_version: int | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    Must run inside `transaction.atomic()`: the event commits or rolls back with the change."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.services.record must be called inside a transaction")
    ctx = context.current()
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # the migration creates it; only an emptied test database lacks it
        head = AuditChainHead.objects.create(pk=1)
    content: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "created_at": format_time(timezone.now()),
        "actor_user_id": ctx.user_id,
        "actor_username": ctx.username,
        "auth_method": ctx.auth_method,
        "token_id": ctx.token_id,
        "action": action,
        "outcome": str(outcome),
        "object_type": object_type,
        "object_id": str(object_id),
        "object_name": object_name,
        "model_name": model_name,
        "model_version": model_version,
        "before": _jsonable(before),
        "after": _jsonable(after),
        "reason": reason,
        "request_id": ctx.request_id,
        "client_ip": ctx.client_ip,
        "user_agent": ctx.user_agent,
        "prev_hash": head.last_hash,
    }
    digest = event_hash(content)
    event = AuditEvent(
        **{**content, "created_at": datetime.fromisoformat(content["created_at"])},
        hash=digest,
    )
    event.save(force_insert=True)
    head.last_seq = content["seq"]
    head.last_hash = digest
    head.save(update_fields=["last_seq", "last_hash"])
    return event


def record_denial(*, rule: str, path: str, reason: str) -> None:
    """A refused write, recorded in its own transaction (the refused change has none)."""
    with transaction.atomic():
        record(
            action=f"{rule}.denied",
            object_type=rule.split(".")[0],
            object_id=path[:255],
            outcome=AuditEvent.Outcome.DENIED,
            reason=reason,
        )


def checkpoint_create() -> AuditCheckpoint | None:
    """Sign the current head of the chain (run periodically by Celery beat)."""
    from audit.verify import sign_checkpoint

    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.last_seq == 0:
            return None
        existing = AuditCheckpoint.objects.filter(seq=head.last_seq).first()
        if existing:
            return existing
        return AuditCheckpoint.objects.create(
            seq=head.last_seq,
            hash=head.last_hash,
            created_at=timezone.now(),
            signature=sign_checkpoint(head.last_seq, head.last_hash),
        )

from __future__ import annotations

from typing import Any

from audit.chain import format_time
from audit.export import checkpoint_rows, event_rows
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from audit.verify import VerifyResult, verify_events


def verify_live_chain() -> VerifyResult:
    """The whole table, link by link, against the signed checkpoints and the chain head (the
    row every append locks and moves), which shows a tail cut after the last checkpoint."""
    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash").first()
    checkpoints = checkpoint_rows()
    result = verify_events(
        event_rows(AuditEvent.objects.order_by("seq")),
        contiguous=True,
        checkpoints=checkpoints,
        head=head or (0, GENESIS_HASH),
    )
    if not result.ok:
        from audit.services import notify

        notify("audit_verification.failed", result.as_dict())
    return result


def event_payload(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "created_at": format_time(event.created_at),
        "actor": {
            "user_id": event.actor_user_id,
            "username": event.actor_username,
            "auth_method": event.auth_method,
            "token_id": event.token_id,
        },
        "action": event.action,
        "outcome": event.outcome,
        "object": {
            "type": event.object_type,
            "id": event.object_id,
            "name": event.object_name,
            "model_name": event.model_name,
            "model_version": event.model_version,
        },
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "user_agent": event.user_agent,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }

from __future__ import annotations

from typing import Any

from audit.chain import format_time
from audit.export import checkpoint_rows, event_rows
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from audit.verify import VerifyResult, verify_events


def verify_live_chain(anchors_url: str | None = None) -> VerifyResult:
    """The whole table, link by link, against the signed checkpoints, the chain head (the
    row the chainer moves), which shows a tail cut after the last checkpoint, and the
    published anchors (`anchors_url`, default the configured store), which show a tail cut
    together with its checkpoints and a rewound head."""
    from audit import anchors
    from audit.services import chain_pending

    chain_pending()
    url = anchors.configured_url() if anchors_url is None else anchors_url
    published, error = anchors.load_or_error(url) if url else (None, "")
    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash").first()
    checkpoints = checkpoint_rows()
    result = verify_events(
        event_rows(AuditEvent.objects.filter(seq__isnull=False).order_by("seq")),
        contiguous=True,
        checkpoints=checkpoints,
        head=head or (0, GENESIS_HASH),
        anchors=published.documents if published else (),
        all_checkpoints_present=True,
    )
    anchors.report(result, url, published, error)
    if published is not None:
        newest = published.newest["seq"] if published.newest else 0
        waiting = [c for c in checkpoints if c.get("anchored") and c["seq"] > newest]
        if waiting:
            result.warnings.append(
                f"{len(waiting)} signed checkpoint(s) not published yet, the oldest "
                f"#{waiting[0]['seq']} signed {waiting[0]['created_at']}"
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

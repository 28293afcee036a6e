"""The audit recorder's subscriber (audit.services.after_record_subscribers): every change
already records an audit event in its own transaction; the events that matter to webhooks
and to people become deliveries and notifications in that same transaction (outbox)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.chain import format_time
from audit.models import AuditEvent
from outbox import services as outbox
from webhooks import events, services

# Transition request events people are emailed about (webhooks.notifications).
_PEOPLE = {
    "transition_request.create": "review_requested",
    "transition_request.reject": "decision",
    "transition_request.apply": "decision",
    "transition_request.stale": "decision",
}


def _load_tags(kind: str, object_id: str) -> dict[str, str]:
    from registry.models import ModelVersionTag, RegisteredModelTag

    if kind == "registered_model":
        rows = RegisteredModelTag.objects.filter(model_id=object_id)
    else:
        rows = ModelVersionTag.objects.filter(version_id=object_id)
    return dict(rows.order_by("key").values_list("key", "value"))


def on_audit_event(event: AuditEvent) -> None:
    if event.outcome != AuditEvent.Outcome.SUCCESS or event.action not in events.MAPPED_ACTIONS:
        return
    # Most installations have no webhook: one cheap look before building any payload.
    if services.any_active_webhook():
        services.deliveries_enqueue(
            events.from_audit(event, _load_tags),
            timestamp=format_time(event.created_at),
            audit_seq=event.seq,
        )
    kind = _PEOPLE.get(event.action)
    if (
        kind is not None
        and event.object_id.isascii()
        and event.object_id.isdigit()
        and _anyone_to_email(kind, event.object_id)
    ):
        outbox.enqueue(
            services.NOTIFY_TASK, kind=kind, object_id=int(event.object_id), audit_seq=event.seq
        )


def _anyone_to_email(kind: str, request_id: str) -> bool:
    """No job when no one it could concern has an email address (an install without mail)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q

    from core import access
    from governance.models import TransitionRequest

    if kind == "review_requested":
        return (
            get_user_model()
            .objects.filter(is_active=True, email__gt="")
            .filter(
                Q(is_superuser=True) | Q(groups__name__in=[access.REVIEWER_ROLE, access.ADMIN_ROLE])
            )
            .exists()
        )
    return (
        TransitionRequest.objects.filter(pk=request_id)
        .filter(Q(requested_by__email__gt="") | Q(co_requesters__email__gt=""))
        .exists()
    )


def on_audit_notice(kind: str, facts: dict[str, Any]) -> None:
    """Chain facts (a signed checkpoint, a failed verification): registry-wide webhooks."""
    if kind not in events.CUSTODY_REGISTRY_EVENTS:
        return
    from django.utils import timezone

    with transaction.atomic():
        services.deliveries_enqueue(
            [events.Occurrence(kind, facts, "")],
            timestamp=format_time(timezone.now()),
            audit_seq=facts.get("seq"),
        )

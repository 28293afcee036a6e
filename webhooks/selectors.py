"""Reads: webhooks a caller manages, their delivery log, payloads."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from audit.chain import format_time
from core import access
from registry import permissions as model_permissions
from webhooks import events as event_catalog
from webhooks.models import Webhook, WebhookDelivery


def managed_webhooks(user) -> QuerySet[Webhook]:
    """Admins: all; others: the per-model webhooks of models they manage."""
    qs = Webhook.objects.select_related("model").order_by("creation_timestamp", "id")
    if access.is_admin(user):
        return qs
    model_ids = [
        model_id
        for model_id in qs.filter(model__isnull=False).values_list("model_id", flat=True).distinct()
        if access.RANK[model_permissions.model_level(user, model_id)] >= access.RANK[access.MANAGE]
    ]
    return qs.filter(Q(model_id__in=model_ids))


def webhook_payload(webhook: Webhook) -> dict[str, Any]:
    """Custody's view (/api/v1): every field but the secret."""
    return {
        "webhook_id": webhook.webhook_id,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "events": list(webhook.events),
        "status": webhook.status,
        "format": webhook.format,
        "model": webhook.model.name if webhook.model is not None else None,
        "signed": bool(webhook.secret_encrypted),
        "owner": webhook.owner.get_username() if webhook.owner is not None else None,
        "consecutive_failures": webhook.consecutive_failures,
        "disabled_reason": webhook.disabled_reason,
        "creation_timestamp": webhook.creation_timestamp,
        "last_updated_timestamp": webhook.last_updated_timestamp,
    }


def mlflow_webhook_payload(webhook: Webhook) -> dict[str, Any]:
    """MLflow's `Webhook` message: MLflow's own events only (its client knows no others)."""
    body: dict[str, Any] = {
        "webhook_id": webhook.webhook_id,
        "name": webhook.name,
        "url": webhook.url,
        "events": [
            {"entity": e.split(".")[0].upper(), "action": e.split(".")[1].upper()}
            for e in webhook.events
            if e in event_catalog.MLFLOW_EVENTS
        ],
        "status": webhook.status,
        "creation_timestamp": webhook.creation_timestamp,
        "last_updated_timestamp": webhook.last_updated_timestamp,
    }
    if webhook.description:
        body["description"] = webhook.description
    return body


def _time(value) -> str | None:
    return format_time(value) if value is not None else None


def delivery_payload(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_status": delivery.response_status,
        "latency_ms": delivery.latency_ms,
        "last_error": delivery.last_error,
        "created_at": _time(delivery.created_at),
        "last_attempt_at": _time(delivery.last_attempt_at),
        "next_attempt_at": _time(delivery.next_attempt_at),
        "delivered_at": _time(delivery.delivered_at),
        "audit_seq": delivery.audit_seq,
        "body": delivery.body,
    }


def deliveries(webhook: Webhook, *, status: str | None = None) -> QuerySet[WebhookDelivery]:
    qs = WebhookDelivery.objects.filter(webhook=webhook).order_by("-id")
    if status:
        qs = qs.filter(status=status)
    return qs

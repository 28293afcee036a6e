"""Writes: webhooks, their deliveries (enqueued in the transaction of the change), delivery
attempts with retries, replays, and automatic disabling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets as secret_tokens
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from core.errors import InvalidParameterValue, InvalidState
from core.mlflow_api import check_text
from core.observability import WEBHOOK_DELIVERIES
from core.prepared import PreparedQuery
from outbox import services as outbox
from webhooks import events as event_catalog
from webhooks import secrets, transport
from webhooks.models import Webhook, WebhookDelivery, new_delivery_id

logger = logging.getLogger(__name__)

DELIVER_TASK = "webhooks.deliver"
NOTIFY_TASK = "webhooks.notify_people"
# MLflow's headers and scheme (mlflow/webhooks/constants.py, delivery.py).
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
EVENT_HEADER = "X-Custody-Event"
MAX_NAME = 256
MAX_DESCRIPTION = 1000
MAX_URL = 2000
MAX_SECRET = 1000
UNFINISHED = (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.SENDING)


def now_ms() -> int:
    return int(time.time() * 1000)


def sign(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    """MLflow's signature: "v1," + base64(HMAC-SHA256(secret, "<id>.<timestamp>.<payload>"))."""
    content = f"{delivery_id}.{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# ---------------------------------------------------------------------------------------------
# Webhooks


def clean_events(events: Any, *, model_scoped: bool) -> list[str]:
    if not isinstance(events, list) or not events:
        raise InvalidParameterValue(
            "Webhook events must be a non-empty list of event names such as "
            "'model_version.created'."
        )
    allowed: tuple[str, ...] = event_catalog.MLFLOW_EVENTS + event_catalog.CUSTODY_MODEL_EVENTS
    if not model_scoped:
        allowed += event_catalog.CUSTODY_REGISTRY_EVENTS
    cleaned: list[str] = []
    for event in events:
        if not isinstance(event, str) or event not in allowed:
            hint = (
                " (audit chain events are for registry-wide webhooks only)"
                if event in event_catalog.CUSTODY_REGISTRY_EVENTS
                else ""
            )
            raise InvalidParameterValue(
                f"Invalid webhook event {str(event)[:80]!r}{hint}. Allowed: {', '.join(allowed)}."
            )
        if event not in cleaned:
            cleaned.append(event)
    return cleaned


def _clean_url(url: Any) -> str:
    url = check_text(url, "url", max_length=MAX_URL).strip()
    if not url:
        raise InvalidParameterValue("Missing value for required parameter 'url'.")
    transport.check_destination(url)  # and again at each delivery
    return url


def _clean_name(name: Any) -> str:
    name = check_text(name, "name", max_length=MAX_NAME).strip()
    if not name:
        raise InvalidParameterValue("Missing value for required parameter 'name'.")
    return name


def _clean_secret(secret: Any) -> str:
    return check_text(secret, "secret", max_length=MAX_SECRET)


def _clean_status(status: Any) -> str:
    if status not in Webhook.Status.values:
        raise InvalidParameterValue(
            f"Invalid webhook status {str(status)[:40]!r}. Allowed: ACTIVE, DISABLED."
        )
    return status


def redacted_url(url: str) -> str:
    """What the audit trail keeps of a URL: incoming-webhook URLs carry their credential in
    the path (Slack's do), so only the scheme and host are recorded."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def _snapshot(webhook: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": webhook.webhook_id,
        "name": webhook.name,
        "url": redacted_url(webhook.url),
        "events": webhook.events,
        "status": webhook.status,
        "format": webhook.format,
        "signed": bool(webhook.secret_encrypted),
    }


def _audit(action: str, webhook: Webhook, **kwargs: Any) -> None:
    model_name = webhook.model.name if webhook.model is not None else ""
    audit.record(
        action=action,
        object_type="webhook",
        object_id=webhook.webhook_id,
        object_name=webhook.name,
        model_name=model_name,
        **kwargs,
    )


@transaction.atomic
def webhook_create(
    *,
    user,
    name: Any,
    url: Any,
    events: Any,
    description: Any = "",
    secret: Any = None,
    status: Any = Webhook.Status.ACTIVE,
    model=None,
    format: Any = Webhook.Format.MLFLOW,
    generate_secret: bool = False,
) -> tuple[Webhook, str]:
    """Answers the webhook and its secret (shown to the caller this once; stored encrypted).
    Without a secret, `generate_secret` makes one; otherwise deliveries go unsigned, as
    MLflow's do."""
    if format not in Webhook.Format.values:
        raise InvalidParameterValue(
            f"Invalid webhook format {str(format)[:40]!r}. Allowed: mlflow, slack."
        )
    secret = _clean_secret(secret) if secret not in (None, "") else ""
    if not secret and generate_secret:
        secret = secret_tokens.token_urlsafe(32)
    now = now_ms()
    webhook = Webhook.objects.create(
        name=_clean_name(name),
        url=_clean_url(url),
        events=clean_events(events, model_scoped=model is not None),
        description=check_text(description or "", "description", max_length=MAX_DESCRIPTION),
        secret_encrypted=secrets.encrypt(secret),
        status=_clean_status(status or Webhook.Status.ACTIVE),
        format=format,
        model=model,
        owner=user if user is not None and user.is_authenticated else None,
        creation_timestamp=now,
        last_updated_timestamp=now,
    )
    _audit("webhook.create", webhook, after=_snapshot(webhook))
    return webhook, secret


@transaction.atomic
def webhook_update(*, webhook: Webhook, changes: dict[str, Any]) -> Webhook:
    """`changes` holds the fields given (name, description, url, events, secret, status)."""
    webhook = (
        Webhook.objects.select_for_update(of=("self",)).select_related("model").get(pk=webhook.pk)
    )
    before = _snapshot(webhook)
    fields = ["last_updated_timestamp"]
    if "name" in changes:
        webhook.name = _clean_name(changes["name"])
        fields.append("name")
    if "description" in changes:
        webhook.description = check_text(
            changes["description"] or "", "description", max_length=MAX_DESCRIPTION
        )
        fields.append("description")
    if "url" in changes:
        webhook.url = _clean_url(changes["url"])
        fields.append("url")
    if "events" in changes:
        webhook.events = clean_events(changes["events"], model_scoped=webhook.model_id is not None)
        fields.append("events")
    if "secret" in changes:
        webhook.secret_encrypted = secrets.encrypt(_clean_secret(changes["secret"] or ""))
        fields.append("secret_encrypted")
    if "status" in changes:
        status = _clean_status(changes["status"])
        if status != webhook.status:
            webhook.status = status
            fields.append("status")
            if status == Webhook.Status.ACTIVE:
                # Enabled again (by a person): the run of failures starts over.
                webhook.consecutive_failures = 0
                webhook.disabled_reason = ""
                fields += ["consecutive_failures", "disabled_reason"]
    webhook.last_updated_timestamp = now_ms()
    webhook.save(update_fields=fields)
    _audit("webhook.update", webhook, before=before, after=_snapshot(webhook))
    return webhook


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    _audit("webhook.delete", webhook, before=_snapshot(webhook))
    webhook.delete()


def webhook_test(*, webhook: Webhook, event: str | None = None) -> transport.Result:
    """Send an example payload now (MLflow's test): the first subscribed event, or `event`."""
    event = event or webhook.events[0]
    body = event_catalog.envelope(event, event_catalog.example(event), timezone.now().isoformat())
    return _send(webhook, new_delivery_id(), event, body)


# ---------------------------------------------------------------------------------------------
# Enqueueing (in the transaction of the change)


_ANY_ACTIVE: PreparedQuery[int] = PreparedQuery(
    lambda: Webhook.objects.filter(status=Webhook.Status.ACTIVE).values_list("pk", flat=True)[:1]
)


def any_active_webhook() -> bool:
    return bool(_ANY_ACTIVE.all())


def deliveries_enqueue(
    occurrences: list[event_catalog.Occurrence], *, timestamp: str, audit_seq: int | None
) -> list[WebhookDelivery]:
    """One delivery per subscribed active webhook and occurrence, each handed to the outbox
    in the caller's transaction."""
    if not occurrences:
        return []
    names = {o.model_name for o in occurrences if o.model_name}
    scope = Q(model__isnull=True)
    if names:
        scope |= Q(model__name__in=names)
    webhooks = list(
        Webhook.objects.filter(scope, status=Webhook.Status.ACTIVE).select_related("model")
    )
    rows = []
    for occurrence in occurrences:
        for webhook in webhooks:
            if occurrence.event not in webhook.events:
                continue
            if webhook.model is not None and webhook.model.name != occurrence.model_name:
                continue
            rows.append(
                WebhookDelivery(
                    webhook=webhook,
                    event=occurrence.event,
                    ordering_key=occurrence.model_name,
                    body=event_catalog.envelope(occurrence.event, occurrence.data, timestamp),
                    audit_seq=audit_seq,
                )
            )
    if not rows:
        return []
    created = WebhookDelivery.objects.bulk_create(rows)
    for delivery in created:
        outbox.enqueue(DELIVER_TASK, delivery_id=delivery.pk)
    return created


# ---------------------------------------------------------------------------------------------
# Attempts


def _headers(webhook: Webhook, delivery_id: str, event: str, payload: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Custody-Webhooks/1",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        EVENT_HEADER: event,
    }
    secret = secrets.decrypt(webhook.secret_encrypted)
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, delivery_id, timestamp, payload)
    return headers


def _send(webhook: Webhook, delivery_id: str, event: str, body: dict) -> transport.Result:
    if webhook.format == Webhook.Format.SLACK:
        body = {"text": event_catalog.slack_text(event, body.get("data") or {})}
    payload = json.dumps(body)  # MLflow signs exactly the bytes it sends (json.dumps)
    headers = _headers(webhook, delivery_id, event, payload)
    return transport.post(webhook.url, payload.encode("utf-8"), headers)


def _backoff_seconds(attempts: int) -> float:
    return min(settings.CUSTODY_WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), 3600.0)


def _kick_next(delivery: WebhookDelivery) -> None:
    """The next delivery of the same webhook and key waited for this one: its turn."""
    if not delivery.ordering_key:
        return
    following = (
        WebhookDelivery.objects.filter(
            webhook_id=delivery.webhook_id,
            ordering_key=delivery.ordering_key,
            status=WebhookDelivery.Status.PENDING,
            id__gt=delivery.id,
        )
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )
    if following is not None:
        outbox.enqueue(DELIVER_TASK, delivery_id=following)


# As long as the delivery task's hard time limit (webhooks.tasks.deliver): an attempt still
# "sending" after it was killed with its worker.
ATTEMPT_LEASE_SECONDS = 30


def _claim(delivery_pk: int) -> WebhookDelivery | None:
    """Phase one, under the webhook's row lock: decide whether this job sends now."""
    with transaction.atomic():
        webhook_id = (
            WebhookDelivery.objects.filter(pk=delivery_pk).values_list("webhook_id", flat=True)
        ).first()
        if webhook_id is None:
            return None  # the webhook was deleted
        webhook = Webhook.objects.select_for_update().get(pk=webhook_id)
        delivery = WebhookDelivery.objects.get(pk=delivery_pk)
        Status = WebhookDelivery.Status
        if delivery.status in (Status.DELIVERED, Status.FAILED):
            return None  # done already: a repeated job
        now = timezone.now()
        if (
            delivery.status == Status.SENDING
            and delivery.lease_until
            and delivery.lease_until > now
        ):
            return None  # an attempt is under way; a dead one is resumed after its lease
        if (
            delivery.status == Status.PENDING
            and delivery.next_attempt_at
            and (delivery.next_attempt_at > now)
        ):
            return None  # a retry is scheduled; its own job sends it
        if webhook.status != Webhook.Status.ACTIVE:
            delivery.status = Status.FAILED
            delivery.last_error = "the webhook is disabled; replay the delivery once enabled"
            delivery.save(update_fields=["status", "last_error"])
            _kick_next(delivery)
            return None
        if delivery.ordering_key and (
            WebhookDelivery.objects.filter(
                webhook=webhook,
                ordering_key=delivery.ordering_key,
                status__in=UNFINISHED,
                id__lt=delivery.id,
            ).exists()
        ):
            return None  # an earlier event of this model goes first; it hands over the turn
        delivery.status = Status.SENDING
        delivery.attempts += 1
        delivery.lease_until = now + timedelta(seconds=ATTEMPT_LEASE_SECONDS)
        delivery.last_attempt_at = now
        delivery.next_attempt_at = None
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "lease_until",
                "last_attempt_at",
                "next_attempt_at",
            ]
        )
        delivery.webhook = webhook
        return delivery


def delivery_attempt(*, delivery_pk: int) -> str | None:
    """One attempt at one delivery (the Celery task's body); answers the resulting status,
    or None when this job had nothing to send. Idempotent: a delivered delivery is never
    sent again, and every attempt carries the same delivery id."""
    delivery = _claim(delivery_pk)
    if delivery is None:
        return None
    result = _send(delivery.webhook, delivery.delivery_id, delivery.event, delivery.body)
    WEBHOOK_DELIVERIES.labels(outcome="delivered" if result.ok else "failed").inc()
    return _settle(delivery, result)


def _settle(claimed: WebhookDelivery, result: transport.Result) -> str | None:
    Status = WebhookDelivery.Status
    with transaction.atomic():
        webhook = (
            Webhook.objects.select_for_update(of=("self",))
            .select_related("model")
            .filter(pk=claimed.webhook_id)
            .first()
        )
        delivery = WebhookDelivery.objects.filter(pk=claimed.pk).first()
        if webhook is None or delivery is None:
            return None  # deleted meanwhile
        if delivery.status != Status.SENDING or delivery.last_attempt_at != claimed.last_attempt_at:
            return None  # settled by another path meanwhile (disabled, or taken over)
        delivery.response_status = result.status
        delivery.latency_ms = result.latency_ms
        delivery.last_error = result.error[:2000]
        delivery.lease_until = None
        fields = ["status", "response_status", "latency_ms", "last_error", "lease_until"]
        if result.ok:
            delivery.status = Status.DELIVERED
            delivery.delivered_at = timezone.now()
            fields.append("delivered_at")
            if webhook.consecutive_failures:
                webhook.consecutive_failures = 0
                webhook.save(update_fields=["consecutive_failures"])
            delivery.save(update_fields=fields)
            _kick_next(delivery)
            return delivery.status
        webhook.consecutive_failures += 1
        webhook.save(update_fields=["consecutive_failures"])
        if delivery.attempts >= settings.CUSTODY_WEBHOOK_MAX_ATTEMPTS or result.permanent:
            delivery.status = Status.FAILED
            delivery.save(update_fields=fields)
            _kick_next(delivery)
        else:
            delay = _backoff_seconds(delivery.attempts)
            delivery.status = Status.PENDING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            delivery.save(update_fields=[*fields, "next_attempt_at"])
            outbox.enqueue(DELIVER_TASK, countdown=delay, delivery_id=delivery.pk)
        limit = settings.CUSTODY_WEBHOOK_DISABLE_AFTER_FAILURES
        if limit and webhook.consecutive_failures >= limit and webhook.status == "ACTIVE":
            _disable(
                webhook,
                f"{webhook.consecutive_failures} delivery attempts failed in a row; last: {result.error[:300]}",
            )
        return delivery.status


def _disable(webhook: Webhook, reason: str) -> None:
    """Stop a failing webhook (caller holds its row lock): its unfinished deliveries fail
    (replayable), the trail records why, and the owner is told."""
    before = _snapshot(webhook)
    webhook.status = Webhook.Status.DISABLED
    webhook.disabled_reason = reason
    webhook.last_updated_timestamp = now_ms()
    webhook.save(update_fields=["status", "disabled_reason", "last_updated_timestamp"])
    WebhookDelivery.objects.filter(webhook=webhook, status__in=UNFINISHED).update(
        status=WebhookDelivery.Status.FAILED,
        last_error="the webhook was disabled after repeated failures; replay once enabled",
    )
    _audit("webhook.disable", webhook, before=before, after=_snapshot(webhook), reason=reason[:500])
    if webhook.owner_id is not None:
        outbox.enqueue(NOTIFY_TASK, kind="webhook_disabled", object_id=webhook.pk)


@transaction.atomic
def delivery_replay(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again, with the same delivery id (a receiver that did get it
    drops the repeat)."""
    webhook = (
        Webhook.objects.select_for_update(of=("self",))
        .select_related("model")
        .get(pk=delivery.webhook_id)
    )
    delivery = WebhookDelivery.objects.get(pk=delivery.pk)
    if delivery.status != WebhookDelivery.Status.FAILED:
        raise InvalidState(
            f"Delivery {delivery.delivery_id} is {delivery.status}; only failed deliveries "
            "are replayed."
        )
    if webhook.status != Webhook.Status.ACTIVE:
        raise InvalidState(
            f"Webhook {webhook.webhook_id} is disabled; enable it (status ACTIVE) before "
            "replaying its deliveries."
        )
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.next_attempt_at = None
    delivery.lease_until = None
    delivery.save(update_fields=["status", "next_attempt_at", "lease_until"])
    _audit(
        "webhook.delivery.replay",
        webhook,
        after={"delivery_id": delivery.delivery_id, "event": delivery.event},
    )
    outbox.enqueue(DELIVER_TASK, delivery_id=delivery.pk)
    return delivery

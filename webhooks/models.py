"""Webhooks (MLflow's registry webhooks plus Custody's own events), their deliveries (the
delivery log), and people's notification preferences."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


def _new_webhook_id() -> str:
    return uuid.uuid4().hex


def new_delivery_id() -> str:
    return str(uuid.uuid4())


class Webhook(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        DISABLED = "DISABLED"

    class Format(models.TextChoices):
        # MLflow's envelope {entity, action, timestamp, data}, signed as MLflow signs it.
        MLFLOW = "mlflow"
        # A Slack incoming webhook: {"text": ...} (also signed, which Slack ignores).
        SLACK = "slack"

    webhook_id = models.CharField(max_length=32, unique=True, default=_new_webhook_id)
    name = models.CharField(max_length=256)
    description = models.TextField(blank=True, default="")
    url = models.CharField(max_length=2000)
    # "entity.action" strings: MLflow's event names and Custody's (webhooks.events).
    events = models.JSONField(default=list)
    # Fernet token of the signing secret (webhooks.secrets); empty: deliveries are unsigned.
    secret_encrypted = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.MLFLOW)
    # A per-model webhook (managed by the model's managers); null: registry-wide (admins).
    model = models.ForeignKey(
        "registry.RegisteredModel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    creation_timestamp = models.BigIntegerField()
    last_updated_timestamp = models.BigIntegerField()
    # Failed attempts in a row (any delivery); reset by a success. At
    # CUSTODY_WEBHOOK_DISABLE_AFTER_FAILURES the webhook is disabled, with a notice.
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["status"], name="webhook_by_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.webhook_id})"


class WebhookDelivery(models.Model):
    """One event for one webhook: what is sent (the same delivery id every attempt, so that
    receivers can drop repeats) and how the attempts went."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its turn, its first attempt or its next retry
        SENDING = "sending"  # an attempt is under way (or its worker died: the lease ends it)
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up (attempts used up, or the webhook was disabled)

    delivery_id = models.CharField(max_length=36, unique=True, default=new_delivery_id)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    # Deliveries of one webhook with the same key go out in creation order (a model's name);
    # empty: no order to keep.
    ordering_key = models.CharField(max_length=500, blank=True, default="")
    # The JSON body, fixed when the event happened.
    body = models.JSONField()
    audit_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # While "sending": the attempt's end at the latest (the task's hard time limit). Another
    # job (the outbox's redelivery after a worker died) may only resume it after that.
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["webhook", "ordering_key", "id"],
                condition=Q(status__in=["pending", "sending"]),
                name="webhook_delivery_unfinished",
            ),
            models.Index(fields=["webhook", "-id"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook_id} ({self.status})"


class NotificationPreference(models.Model):
    """What a person is emailed about; a user without a row gets the defaults (everything)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    # As a reviewer who may approve: a request opened, and a reminder before it goes stale.
    review_requests = models.BooleanField(default=True)
    # As a requester: the decision on my request.
    decisions = models.BooleanField(default=True)
    # As a webhook's owner: it was disabled after failing.
    webhook_disabled = models.BooleanField(default=True)


class ReviewReminder(models.Model):
    """A reminder sent for an open transition request (one per request)."""

    request = models.OneToOneField(
        "governance.TransitionRequest", on_delete=models.CASCADE, related_name="+"
    )
    sent_at = models.DateTimeField(default=timezone.now)

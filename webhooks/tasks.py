"""Celery tasks of webhooks and notifications: load by id, call the service."""

from __future__ import annotations

from celery import shared_task

from outbox.tasks import OutboxTask
from webhooks import notifications, services


# The hard limit bounds the outbox lease (limit + margin): a worker killed mid-delivery has
# its job sent again that long after, and the same delivery id goes out again.
@shared_task(
    name=services.DELIVER_TASK,
    base=OutboxTask,
    acks_late=True,
    time_limit=services.ATTEMPT_LEASE_SECONDS,
    soft_time_limit=services.ATTEMPT_LEASE_SECONDS - 5,
    ignore_result=True,
)
def deliver(delivery_id: int) -> str | None:
    return services.delivery_attempt(delivery_pk=delivery_id)


@shared_task(name=services.NOTIFY_TASK, base=OutboxTask, acks_late=True, ignore_result=True)
def notify_people(kind: str, object_id: int, audit_seq: int | None = None) -> int:
    return notifications.send(kind, object_id)


@shared_task(name="webhooks.send_review_reminders", time_limit=300, ignore_result=True)
def send_review_reminders() -> int:
    """Beat runs this every 10 minutes (CELERY_BEAT_SCHEDULE["notifications-review-reminders"])."""
    return notifications.send_review_reminders()

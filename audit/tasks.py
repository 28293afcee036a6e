from celery import shared_task

from audit import services
from outbox.tasks import OutboxTask


@shared_task(name="audit.checkpoint", acks_late=True)
def audit_checkpoint() -> int | None:
    """Idempotent: signing the same head twice returns the existing checkpoint."""
    checkpoint = services.checkpoint_create()
    return checkpoint.seq if checkpoint else None


@shared_task(
    name="audit.publish_anchor",
    base=OutboxTask,
    acks_late=True,
    time_limit=120,
    soft_time_limit=100,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
)
def publish_anchor(checkpoint_seq: int) -> bool:
    """Idempotent: the anchor's name is derived from the checkpoint and written only if
    absent; publishing it again finds the same bytes and writes nothing."""
    from audit import anchors
    from audit.models import AuditCheckpoint

    checkpoint = AuditCheckpoint.objects.filter(seq=checkpoint_seq).first()
    if checkpoint is None:
        return False  # its transaction rolled back, or it was deleted: verification shows it
    return anchors.publish(checkpoint)


@shared_task(name="audit.chain_pending", acks_late=True, ignore_result=True)
def chain_pending() -> int:
    """A safety net: events whose recording process died between its commit and chaining
    are chained by the next write anyway, or by this (beat, every minute)."""
    return services.chain_pending()

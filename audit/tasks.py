from celery import shared_task

from audit import services


@shared_task(name="audit.checkpoint", acks_late=True)
def audit_checkpoint() -> int | None:
    """Idempotent: signing the same head twice returns the existing checkpoint."""
    checkpoint = services.checkpoint_create()
    return checkpoint.seq if checkpoint else None

"""Celery tasks of governance: load by id, call the service (idempotent)."""

from __future__ import annotations

from celery import shared_task

from governance import exports
from outbox.tasks import OutboxTask


@shared_task(
    name="governance.run_audit_export",
    base=OutboxTask,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
    acks_late=True,
)
def run_audit_export(export_id: int) -> dict | None:
    export = exports.export_run(export_id)
    return None if export is None else {"id": export.pk, "status": export.status}

"""Large audit exports as jobs: queued on commit, run by a Celery task (the file itself is
written by audit.export.write_export), downloaded by compliance officers and admins. The
job's row (AuditExport) is governance's model, so its bookkeeping lives here."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.export import jsonable_filters, write_export
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.storage import get_artifact_store
from governance.models import AuditExport
from outbox import services as outbox

FORMATS = ("csv", "jsonl")


@transaction.atomic
def export_create(*, user, filters: dict[str, Any], fmt: str) -> AuditExport:
    if fmt not in FORMATS:
        raise InvalidParameterValue(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    export = AuditExport.objects.create(
        requested_by=user,
        format=fmt,
        filters=jsonable_filters(filters),
        created_at=timezone.now(),
    )
    audit.record(
        action="audit.export.create",
        object_type="audit_export",
        object_id=export.pk,
        after={"format": fmt, "filters": export.filters},
    )
    outbox.enqueue("governance.run_audit_export", export_id=export.pk)
    return export


def export_run(export_id: int) -> AuditExport | None:
    """Write the file. Idempotent: a finished export is left as it is; a re-delivered task
    for a running one rewrites the same path atomically."""
    with transaction.atomic():
        export = AuditExport.objects.select_for_update().filter(pk=export_id).first()
        if export is None or export.status == AuditExport.Status.DONE:
            return export
        export.status = AuditExport.Status.RUNNING
        export.save(update_fields=["status"])
    try:
        rows, size, sha256 = write_export(export.storage_path, export.filters, export.format)
    except Exception as exc:
        AuditExport.objects.filter(pk=export.pk).update(
            status=AuditExport.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    AuditExport.objects.filter(pk=export.pk).update(
        status=AuditExport.Status.DONE,
        finished_at=timezone.now(),
        row_count=rows,
        size_bytes=size,
        sha256=sha256,
    )
    export.refresh_from_db()
    return export


def export_get(export_id: Any) -> AuditExport:
    try:
        number = int(str(export_id))
    except ValueError:
        number = 0
    export = AuditExport.objects.select_related("requested_by").filter(pk=number).first()
    if export is None:
        raise ResourceDoesNotExist(f"Audit export {export_id} not found.")
    return export


def export_payload(export: AuditExport) -> dict[str, Any]:
    return {
        "id": export.pk,
        "format": export.format,
        "filters": export.filters,
        "status": export.status,
        "requested_by": export.requested_by.get_username(),
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "rows": export.row_count,
        "size_bytes": export.size_bytes,
        "sha256": export.sha256 or None,
        "error": export.error or None,
        "download": f"/api/v1/audit/exports/{export.pk}/download"
        if export.status == AuditExport.Status.DONE
        else None,
    }


def export_chunks(export: AuditExport):
    if export.status != AuditExport.Status.DONE:
        raise InvalidParameterValue(
            f"Audit export {export.pk} is {export.status}; download it once it is done."
        )
    chunks, _ = get_artifact_store().open(export.storage_path)
    return chunks

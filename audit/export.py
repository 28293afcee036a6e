"""Event rows for export and verification, streamed in constant memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Max, QuerySet
from django.utils import timezone

from audit.chain import HASHED_FIELDS, format_time
from audit.models import AuditCheckpoint, AuditEvent

EXPORT_FIELDS = (*HASHED_FIELDS, "hash")
_INT_FIELDS = {"seq", "actor_user_id", "token_id", "model_version"}
_JSON_FIELDS = {"before", "after"}
CHUNK = 2000


def filtered_events(
    *,
    model: str | None = None,
    version: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if model:
        qs = qs.filter(model_name=model)
    if version is not None:
        qs = qs.filter(model_version=version)
    if actor:
        qs = qs.filter(actor_username=actor)
    if action:
        qs = (
            qs.filter(action__startswith=action)
            if action.endswith(".")
            else qs.filter(action=action)
        )
    if object_type:
        qs = qs.filter(object_type=object_type)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
    return qs.order_by("seq")


def event_rows(qs: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """Export dicts, read with a server-side cursor on PostgreSQL."""
    fields = [f for f in EXPORT_FIELDS]
    for row in qs.values(*fields).iterator(chunk_size=CHUNK):
        row["created_at"] = format_time(row["created_at"])
        yield row


def checkpoint_rows(up_to_seq: int | None = None) -> list[dict[str, Any]]:
    qs = AuditCheckpoint.objects.order_by("seq")
    if up_to_seq is not None:
        qs = qs.filter(seq__lte=up_to_seq)
    return [
        {
            "seq": c.seq,
            "hash": c.hash,
            "signature": c.signature,
            "created_at": format_time(c.created_at),
        }
        for c in qs
    ]


def jsonl_header(
    qs: QuerySet[AuditEvent], *, filters: dict[str, Any], contiguous: bool
) -> dict[str, Any]:
    """The first line of a JSON Lines export. It carries only the checkpoints the export can
    reach (up to its last event): one beyond it would read as a truncated tail, e.g. for
    every export with `until`."""
    last_seq = qs.aggregate(last=Max("seq"))["last"]
    return {
        "exported_at": format_time(timezone.now()),
        "filters": filters,
        "contiguous": contiguous,
        "checkpoints": checkpoint_rows(up_to_seq=last_seq or 0),
    }


def jsonl_lines(rows: Iterable[dict[str, Any]], *, header: dict[str, Any]) -> Iterator[str]:
    yield json.dumps({"custody_audit_export": header}, sort_keys=True) + "\n"
    for row in rows:
        yield json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n"


def csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow(
            [
                json.dumps(row[f], sort_keys=True, ensure_ascii=False)
                if f in _JSON_FIELDS and row[f] is not None
                else ("" if row[f] is None else row[f])
                for f in EXPORT_FIELDS
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)


def parse_csv(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(lines)
    for raw in reader:
        row: dict[str, Any] = {}
        for f in EXPORT_FIELDS:
            value = raw.get(f)
            if f in _INT_FIELDS:
                row[f] = int(value) if value not in (None, "") else None
            elif f in _JSON_FIELDS:
                row[f] = json.loads(value) if value else None
            else:
                row[f] = value if value is not None else ""
        yield row


def parse_jsonl(lines: Iterable[str]) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    iterator = iter(lines)
    first = json.loads(next(iterator))
    header = first.get("custody_audit_export", {})
    return header, (json.loads(line) for line in iterator if line.strip())

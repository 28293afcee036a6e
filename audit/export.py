"""Event rows for export and verification, streamed in constant memory."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db.models import Max, Min, QuerySet
from django.utils import timezone

from audit.anchors import Anchors, configured_url, for_export, load_or_error, report
from audit.chain import HASHED_FIELDS, format_time
from audit.models import GENESIS_HASH, AuditChainHead, AuditCheckpoint, AuditEvent
from audit.verify import RowTally, VerifyResult, check_manifest, manifest_for, verify_events
from core.storage import get_artifact_store

EXPORT_FIELDS = (*HASHED_FIELDS, "hash")
_INT_FIELDS = {"seq", "actor_user_id", "token_id", "model_version"}
_JSON_FIELDS = {"before", "after"}
CHUNK = 2000
# The last line of a CSV export; a JSON Lines export ends with {"custody_audit_manifest": …}.
CSV_MANIFEST_PREFIX = "# custody-manifest "
JSONL_MANIFEST_KEY = "custody_audit_manifest"


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
    # Only chained events: one that waits for its place in the chain has no seq yet.
    qs = AuditEvent.objects.filter(seq__isnull=False)
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


def jsonable_filters(filters: dict[str, Any]) -> dict[str, Any]:
    """Filters as files and stored exports record them: set ones only, times in ISO 8601."""
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in filters.items()
        if v is not None
    }


def event_rows(qs: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    """Export dicts, read with a server-side cursor on PostgreSQL."""
    fields = [f for f in EXPORT_FIELDS]
    for row in qs.values(*fields).iterator(chunk_size=CHUNK):
        row["created_at"] = format_time(row["created_at"])
        yield row


def _checkpoint_row(c: AuditCheckpoint) -> dict[str, Any]:
    return {
        "seq": c.seq,
        "hash": c.hash,
        "signature": c.signature,
        "created_at": format_time(c.created_at),
        "key_id": c.key_id,
        "anchored": c.anchored,
    }


def checkpoint_rows() -> list[dict[str, Any]]:
    """Every signed checkpoint, for the live verification."""
    return [_checkpoint_row(c) for c in AuditCheckpoint.objects.order_by("seq")]


def export_checkpoint_rows(first_seq: int | None, last_seq: int | None) -> list[dict[str, Any]]:
    """Every signed checkpoint an export of events #first_seq..#last_seq covers (one beyond
    its last event would read as a truncated tail, e.g. for every export with `until`); none
    for an export without events."""
    if first_seq is None or last_seq is None:
        return []
    return [
        _checkpoint_row(c)
        for c in AuditCheckpoint.objects.filter(seq__gte=first_seq, seq__lte=last_seq).order_by(
            "seq"
        )
    ]


def chain_head() -> dict[str, Any]:
    """The chain's head as an export records it, read before its events: a contiguous export
    that reaches the present (no `until`) must reach this event, with this hash."""
    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash").first()
    seq, digest = head or (0, GENESIS_HASH)
    return {"seq": seq, "hash": digest}


def export_context() -> dict[str, Any]:
    """When the export was taken and the chain head then, before any event is read (both go
    into the signed manifest, and into a JSON Lines file's header)."""
    from audit.services import chain_pending

    chain_pending()
    return {"exported_at": format_time(timezone.now()), "chain_head": chain_head()}


def jsonl_header(
    qs: QuerySet[AuditEvent],
    *,
    filters: dict[str, Any],
    contiguous: bool,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The first line of a JSON Lines export, with every checkpoint of its own range."""
    bounds = qs.aggregate(first=Min("seq"), last=Max("seq"))
    return {
        **context,
        "filters": filters,
        "contiguous": contiguous,
        "checkpoints": export_checkpoint_rows(bounds["first"], bounds["last"]),
        "manifest": True,  # the file ends with a signed manifest
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


# Filters that bound a range of the chain rather than pick events from it: an export with
# only these set is contiguous (linked event to event); any other set filter leaves gaps.
_RANGE_FILTERS = {"since", "until", "after_seq"}


def is_contiguous(filters: dict[str, Any]) -> bool:
    """Whether an export with these filters holds a gapless range of the chain. A filter is
    set when it is neither None nor "" (so version 0 is a filter)."""
    return not any(
        value is not None and value != ""
        for key, value in filters.items()
        if key not in _RANGE_FILTERS
    )


def export_lines(
    qs: QuerySet[AuditEvent],
    *,
    fmt: str,
    filters: dict[str, Any],
    tally: RowTally | None = None,
) -> Iterator[str]:
    """A whole export file, streamed: (JSON Lines: the header,) the events of `qs`, then the
    signed manifest (docs/audit.md, "Manifests"). `filters` are those the file records;
    they decide whether it is contiguous. Pass a `tally` to read the row count afterwards."""
    tally = RowTally() if tally is None else tally
    contiguous = is_contiguous(filters)
    context = export_context()
    counted = tally.counted(event_rows(qs))
    if fmt == "csv":
        yield from csv_lines(counted)
        manifest = manifest_for(
            tally, fmt=fmt, filters=filters, contiguous=contiguous, context=context
        )
        yield CSV_MANIFEST_PREFIX + json.dumps(manifest, sort_keys=True) + "\r\n"
    else:
        header = jsonl_header(qs, filters=filters, contiguous=contiguous, context=context)
        yield from jsonl_lines(counted, header=header)
        manifest = manifest_for(
            tally, fmt=fmt, filters=filters, contiguous=contiguous, header=header, context=context
        )
        yield json.dumps({JSONL_MANIFEST_KEY: manifest}, sort_keys=True) + "\n"


def write_export(path: str, filters: dict[str, Any], fmt: str) -> tuple[int, int, str]:
    """Writes the export file of the events `filters` select (as stored: JSON values) to
    `path` in the artifact store, in constant memory; answers (rows, bytes, sha256). Writing
    the same path again replaces the file atomically."""
    stored = filters
    filters = _filters_back(stored)
    qs = filtered_events(**filters)
    digest, size, tally = hashlib.sha256(), 0, RowTally()
    lines = export_lines(qs, fmt=fmt, filters=stored, tally=tally)
    with tempfile.TemporaryFile() as spool:
        for line in lines:
            data = line.encode("utf-8")
            digest.update(data)
            size += len(data)
            spool.write(data)
        spool.seek(0)
        get_artifact_store().put(path, spool, size, limit=size)
    return tally.count, size, digest.hexdigest()


def _filters_back(stored: dict[str, Any]) -> dict[str, Any]:
    out = dict(stored)
    for key in ("since", "until"):
        if out.get(key):
            out[key] = datetime.fromisoformat(out[key])
    return out


def _without_trailer(lines: Iterable[str], is_trailer, found: dict[str, str]) -> Iterator[str]:
    """`lines` without its last non-blank line when that is a trailer (kept in `found`)."""
    held: list[str] = []  # the last non-blank line and any blank lines after it
    for line in lines:
        if line.strip():
            yield from held
            held = [line]
        else:
            held.append(line)
    if held and is_trailer(held[0]):
        found["trailer"] = held[0]
    else:
        yield from held


def _csv_manifest_line(path: str) -> str | None:
    """The last non-blank line of a CSV file, read from its end (the manifest decides how the
    rows are checked, so it is needed before they stream)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", "replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if lines and lines[-1].startswith(CSV_MANIFEST_PREFIX):
        return lines[-1]
    return None


NO_MANIFEST = "no manifest: only per-row hashes checked"


def _is_blank(path: str) -> bool:
    """True when the file holds nothing but whitespace (read in chunks: constant memory)."""
    with open(path, "rb") as handle:
        while chunk := handle.read(65536):
            if chunk.strip():
                return False
    return True


def _peeked(rows: Iterable[dict[str, Any]]) -> tuple[int | None, Iterator[dict[str, Any]]]:
    """The first row's seq (None without rows or when it is malformed) and all the rows."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return None, iter(())
    try:
        seq = int(first.get("seq"))
    except (TypeError, ValueError, AttributeError):
        seq = None
    return seq, itertools.chain([first], iterator)


def _file_checks(
    described: dict[str, Any] | None, first_seq: int | None, anchors: Anchors | None
) -> dict[str, Any]:
    """What a file is checked against besides its own rows: the chain head when it was
    taken (a contiguous export that reaches the present must reach it) and the anchors
    signed before it. `described` is its header (JSON Lines) or its manifest (CSV)."""
    if not isinstance(described, dict):
        return {}
    filters = described.get("filters") if isinstance(described.get("filters"), dict) else {}
    checks: dict[str, Any] = {}
    head = described.get("chain_head")
    if described.get("contiguous") and not filters.get("until") and isinstance(head, dict):
        checks["head"] = (int(head["seq"]), str(head["hash"]))
    if anchors is not None and isinstance(described.get("exported_at"), str):
        checks["anchors"] = for_export(
            anchors.documents,
            exported_at=described["exported_at"],
            filters=filters,
            first_seq=first_seq,
        )
    return checks


def verify_file(
    path: str, *, partial: bool = False, legacy: bool = False, anchors_url: str | None = None
) -> VerifyResult:
    """Verify an export from the file alone: its rows, its checkpoints (JSON Lines) and its
    signed manifest, and against the anchors (`anchors_url`, default the configured store).
    Every export ends with a manifest, so a file without one is broken (it was cut or
    stripped) unless `legacy` says it predates manifests: then only its rows are checked,
    with a warning. Raises OSError when the file cannot be read."""
    if _is_blank(path):
        return VerifyResult().fail(None, "the file is empty: it holds no export")
    url = configured_url() if anchors_url is None else anchors_url
    published, anchor_error = load_or_error(url) if url else (None, "")
    tally = RowTally()
    found: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        if path.endswith(".csv"):
            line = _csv_manifest_line(path)
            manifest = _loads(line[len(CSV_MANIFEST_PREFIX) :]) if line else None
            contiguous = (
                bool(manifest.get("contiguous")) if isinstance(manifest, dict) else not partial
            )
            first_seq, rows = _peeked(
                parse_csv(
                    _without_trailer(handle, lambda x: x.startswith(CSV_MANIFEST_PREFIX), found)
                )
            )
            result = verify_events(
                tally.counted(rows),
                contiguous=contiguous,
                **_file_checks(manifest, first_seq, published),
            )
            header = None
        else:
            header, rows = parse_jsonl(
                _without_trailer(handle, lambda x: x.startswith(f'{{"{JSONL_MANIFEST_KEY}"'), found)
            )
            first_seq, rows = _peeked(rows)
            result = verify_events(
                tally.counted(rows),
                contiguous=bool(header.get("contiguous")),
                checkpoints=header.get("checkpoints", []),
                **_file_checks(header, first_seq, published),
            )
            trailer = _loads(found["trailer"]) if "trailer" in found else None
            manifest = trailer.get(JSONL_MANIFEST_KEY) if isinstance(trailer, dict) else None
    report(result, url, published, anchor_error)
    if not result.ok:
        return result
    if manifest is None:
        if header is not None and header.get("manifest"):
            return result.fail(
                None, "the file ends without the manifest its header announces: it was cut"
            )
        if not legacy:
            return result.fail(
                None,
                "the file has no manifest: it was cut or stripped (an export made before "
                "manifests verifies with --legacy)",
            )
        result.manifest = "absent"
        result.warnings.append(NO_MANIFEST)
        return result
    return check_manifest(result, manifest, tally, header=header)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"malformed": text[:80]}


def _csv_field_limit() -> int:
    """No limit of our own on a field: a snapshot (`before`, `after`) may be far longer than
    the csv module's default 131,072 characters (a model card holds 9 fields of 50,000)."""
    return sys.maxsize


def _raise_csv_field_limit() -> None:
    limit = _csv_field_limit()
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # a C long narrower than Python's sys.maxsize (Windows)
            limit //= 2


def parse_csv(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Export rows from CSV lines. Raises csv.Error on a line the csv module cannot read."""
    _raise_csv_field_limit()
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise ValueError("no header line")
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
    first = json.loads(next(iterator, "{}"))
    if not isinstance(first, dict) or not isinstance(first.get("custody_audit_export"), dict):
        raise ValueError("the first line is not an export header")
    header = first["custody_audit_export"]
    return header, (json.loads(line) for line in iterator if line.strip())

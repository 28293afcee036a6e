from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.chain import event_hash, format_time
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core import context

# Floats from this magnitude up are all integral (2**53 < 1e16) and Python writes them in
# exponent form ("1e+16"), which PostgreSQL's jsonb gives back as the integer
# 10000000000000000: they are stored and hashed as that integer from the start.
_INTEGRAL_FLOATS = 1e16


def _storable_text(value: str) -> str:
    """NUL and lone surrogates cannot be stored in PostgreSQL text or jsonb."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return value


def _normalised(value: Any) -> Any:
    """One JSON value as every database stores and returns it (docs/audit.md, canonical
    encoding): non-finite floats become the strings "inf", "-inf" and "nan", floats of
    magnitude 1e16 and more become integers (int(f) is exact), -0.0 becomes 0.0, and text is
    storable."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        if abs(value) >= _INTEGRAL_FLOATS:
            return int(value)
        return value + 0.0  # -0.0 -> 0.0 (numeric has no negative zero)
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, dict):
        return {_storable_text(k): _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    # Before/after snapshots go through JSON once so that the stored value and the hashed
    # value are identical (no datetimes or tuples that a JSONField would reshape).
    if value is None:
        return None
    return _normalised(json.loads(json.dumps(value, default=str, allow_nan=True)))


def _fit(name: str, value: Any) -> Any:
    """Text cut to its column's size (with an ellipsis), so the row always stores and the
    hash covers exactly what is stored."""
    if not isinstance(value, str):
        return value
    value = _storable_text(value)
    limit = AuditEvent._meta.get_field(name).max_length
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "\u2026"
    return value


# model_version is an IntegerField: 32-bit signed on PostgreSQL. A version a request names
# but no version can have (negative, or beyond the column) is stored as no version.
_VERSION_LIMIT = 2**31


def _storable_version(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < _VERSION_LIMIT else None


def record(
    *,
    action: str,
    object_type: str,
    object_id: str | int,
    object_name: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    model_name: str = "",
    model_version: int | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction.

    Must run inside `transaction.atomic()`: the event commits or rolls back with the change."""
    (event,) = record_many(
        [
            {
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "object_name": object_name,
                "before": before,
                "after": after,
                "model_name": model_name,
                "model_version": model_version,
                "outcome": outcome,
                "reason": reason,
            }
        ]
    )
    return event


def record_many(events: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several events (each the keyword arguments of `record`) under one lock of the
    chain head and one INSERT: bulk writers (the MLflow import) audit every object they write
    without a round trip per event. Same transaction rule as `record`."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.services.record must be called inside a transaction")
    if not events:
        return []
    ctx = context.current()
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # the migration creates it; only an emptied test database lacks it
        head = AuditChainHead.objects.create(pk=1)
    created_at = format_time(timezone.now())
    seq, prev_hash = head.last_seq, head.last_hash
    rows = []
    for spec in events:
        seq += 1
        content: dict[str, Any] = {
            "seq": seq,
            "created_at": created_at,
            "actor_user_id": ctx.user_id,
            "actor_username": ctx.username,
            "auth_method": ctx.auth_method,
            "token_id": ctx.token_id,
            "action": spec["action"],
            "outcome": str(spec.get("outcome", AuditEvent.Outcome.SUCCESS)),
            "object_type": spec["object_type"],
            "object_id": str(spec["object_id"]),
            "object_name": spec.get("object_name", ""),
            "model_name": spec.get("model_name", ""),
            "model_version": _storable_version(spec.get("model_version")),
            "before": _jsonable(spec.get("before")),
            "after": _jsonable(spec.get("after")),
            "reason": spec.get("reason", ""),
            "request_id": ctx.request_id,
            "client_ip": ctx.client_ip,
            "user_agent": ctx.user_agent,
            "prev_hash": prev_hash,
        }
        content = {name: _fit(name, value) for name, value in content.items()}
        prev_hash = event_hash(content)
        rows.append(
            AuditEvent(
                **{**content, "created_at": datetime.fromisoformat(content["created_at"])},
                hash=prev_hash,
            )
        )
    if len(rows) == 1:
        rows[0].save(force_insert=True)
    else:
        AuditEvent.objects.bulk_create(rows, batch_size=500)
    head.last_seq, head.last_hash = seq, prev_hash
    head.save(update_fields=["last_seq", "last_hash"])
    return rows


def checkpoint_create() -> AuditCheckpoint | None:
    """Sign the current head of the chain (run periodically by Celery beat)."""
    from audit.verify import sign_checkpoint

    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.last_seq == 0:
            return None
        existing = AuditCheckpoint.objects.filter(seq=head.last_seq).first()
        if existing:
            return existing
        return AuditCheckpoint.objects.create(
            seq=head.last_seq,
            hash=head.last_hash,
            created_at=timezone.now(),
            signature=sign_checkpoint(head.last_seq, head.last_hash),
        )

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from audit.chain import HASHED_FIELDS, event_hash, format_time
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core import context
from core.prepared import PreparedQuery, insert_of, server_prepared_cursor, stored

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
    limit = getattr(AuditEvent._meta.get_field(name), "max_length", None)
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


# Extension point for the layers above (webhooks, notifications): each subscriber is called
# with every recorded event, inside the transaction that records it, so that what it writes
# (outbox jobs) commits or rolls back with the change. Subscribers must not raise for events
# they do not handle. `notice_subscribers` hear about chain facts that are not events (a
# signed checkpoint, a failed verification): `notify(kind, facts)`.
after_record_subscribers: list[Callable[[AuditEvent], None]] = []
notice_subscribers: list[Callable[[str, dict[str, Any]], None]] = []


def notify(kind: str, facts: dict[str, Any]) -> None:
    for subscriber in notice_subscribers:
        subscriber(kind, facts)


def deferred_chaining() -> bool:
    """Whether events are chained after their transaction commits (docs/audit.md,
    "Concurrency"): on PostgreSQL by default. SQLite runs one write transaction at a time
    anyway, so there each event is chained as it is recorded."""
    mode = getattr(settings, "CUSTODY_AUDIT_CHAINING", "auto")
    if mode == "auto":
        return transaction.get_connection().vendor == "postgresql"
    return mode == "deferred"


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
    """Append one event to the trail, in the caller's transaction.

    Must run inside `transaction.atomic()`: the event commits or rolls back with the change.
    With deferred chaining the event has no seq, prev_hash or hash until the transaction has
    committed and `chain_pending` has given it its place in the chain."""
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
    """Append several events (each the keyword arguments of `record`) with one INSERT: bulk
    writers (the MLflow import) audit every object they write without a round trip per
    event. Same transaction rule as `record`."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.services.record must be called inside a transaction")
    if not events:
        return []
    ctx = context.current()
    created_at = format_time(timezone.now())
    contents = []
    for spec in events:
        content: dict[str, Any] = {
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
        }
        contents.append({name: _fit(name, value) for name, value in content.items()})
    if deferred_chaining():
        rows = _record_deferred(contents)
    else:
        rows = _append_chained(contents)
    # Here events have been recorded in the caller's transaction.
    for event in rows:
        for subscriber in after_record_subscribers:
            subscriber(event)
    return rows


def _event(content: dict[str, Any], digest: str = "") -> AuditEvent:
    return AuditEvent(
        **{**content, "created_at": datetime.fromisoformat(content["created_at"])}, hash=digest
    )


def _insert(rows: list[AuditEvent]) -> None:
    if len(rows) == 1:
        rows[0].save(force_insert=True)
    else:
        AuditEvent.objects.bulk_create(rows, batch_size=500)


def _append_chained(contents: list[dict[str, Any]]) -> list[AuditEvent]:
    """Chain while recording: lock the head for the rest of the transaction (SQLite)."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # the migration creates it; only an emptied test database lacks it
        head = AuditChainHead.objects.create(pk=1)
    return _chain_onto(head.last_seq, head.last_hash, contents)


def _chain_onto(seq: int, previous: str, contents: list[dict[str, Any]]) -> list[AuditEvent]:
    """Insert the events chained after the head (seq, hash) and move the head; the caller
    holds what keeps other chainers off the head until its commit."""
    rows = []
    for content in contents:
        seq += 1
        content = {**content, "seq": seq, "prev_hash": previous}
        previous = event_hash(content)
        rows.append(_event(content, previous))
    if len(rows) == 1 and transaction.get_connection().vendor == "postgresql":
        _insert_moving_head(rows[0], seq, previous)
    else:
        _insert(rows)
        AuditChainHead.objects.filter(pk=1).update(last_seq=seq, last_hash=previous)
    return rows


def _insert_moving_head(event: AuditEvent, seq: int, digest: str) -> None:
    """One chained event (what a request's write records) inserted and the head moved in one
    statement, a data-modifying CTE: one round trip fewer for every audited write."""
    alias = transaction.get_connection().alias
    insert, params = insert_of(event, alias)
    with server_prepared_cursor(alias) as cursor:
        cursor.execute(
            f"WITH inserted AS ({insert}) UPDATE audit_auditchainhead SET last_seq = %s, "
            "last_hash = %s WHERE id = 1 RETURNING (SELECT id FROM inserted)",
            [*params, seq, digest],
        )
        stored(event, alias, pk=cursor.fetchone()[0])


def _record_deferred(contents: list[dict[str, Any]]) -> list[AuditEvent]:
    """PostgreSQL (docs/audit.md, "Concurrency"). When no one is chaining, the transaction
    takes the chain lock until it commits, without waiting, and records its events chained;
    otherwise it records them unchained and chains after its commit. Once a transaction has
    recorded an event unchained, its later events are too, so they keep their order."""
    connection = transaction.get_connection()
    hooks = [entry[1] for entry in connection.run_on_commit]
    if chain_after_commit not in hooks:
        with server_prepared_cursor() as cursor:
            # The lock is tried before the head row is read and locked: FOR UPDATE reads the
            # head as the last chainer committed it, even one that committed after this
            # statement began.
            cursor.execute(
                "SELECT last_seq, last_hash FROM audit_auditchainhead "
                "WHERE id = 1 AND pg_try_advisory_xact_lock(%s) FOR UPDATE",
                [_CHAIN_LOCK_KEY],
            )
            head = cursor.fetchone()
        if head is not None:
            rows = _chain_onto(head[0], head[1], contents)
            if _chain_left_behind not in hooks:
                transaction.on_commit(_chain_left_behind, robust=True)
            return rows
    rows = [_event(content) for content in contents]
    _insert(rows)
    if chain_after_commit not in hooks:
        transaction.on_commit(chain_after_commit, robust=True)
    return rows


def _chain_left_behind() -> None:
    """After a commit that held the chain lock: a writer that found it taken recorded its
    events unchained and left them to the holder (its commit came before its attempt, so
    before this look)."""
    if _ANY_PENDING.all():
        chain_after_commit()


# One chainer at a time: a session-level advisory lock (PostgreSQL), held across the
# chainer's batches. Unlike a row lock it writes nothing, so trying it costs one round trip.
_CHAIN_LOCK_KEY = 0x637573746F6479  # "custody"
CHAIN_BATCH = 500


@contextmanager
def _chain_lock(*, wait: bool) -> Iterator[bool]:
    connection = transaction.get_connection()
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [_CHAIN_LOCK_KEY])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_CHAIN_LOCK_KEY])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_CHAIN_LOCK_KEY])


_PENDING_COLUMNS = (
    "id",
    "head_seq",
    "head_hash",
    *(f for f in HASHED_FIELDS if f not in ("seq", "prev_hash")),
)
# The next batch of unchained events, each row with the head (compiled once: building and
# compiling this query cost the ORM more than the database spends answering it).
_PENDING: PreparedQuery[tuple] = PreparedQuery(
    lambda: (
        AuditEvent.objects.filter(seq__isnull=True)
        .order_by("id")
        .annotate(
            head_seq=Subquery(AuditChainHead.objects.filter(pk=1).values("last_seq")),
            head_hash=Subquery(AuditChainHead.objects.filter(pk=1).values("last_hash")),
        )
        .values_list(*_PENDING_COLUMNS)[:CHAIN_BATCH]
    )
)
_ANY_PENDING: PreparedQuery[int] = PreparedQuery(
    lambda: AuditEvent.objects.filter(seq__isnull=True).order_by().values_list("id", flat=True)[:1]
)


def _chain_under_lock() -> int:
    """Chain every visible unchained event, oldest id first, in batches (the caller holds
    the chain lock). A batch is two statements and no transaction: a read of the events with
    the head, and one write of both, atomic as any statement. That write is also guarded:
    should the head have moved or an event been chained since the read (which the lock
    rules out), the head's `last_seq` would be set to NULL, which its NOT NULL refuses, and
    nothing of the batch is kept."""
    chained = 0
    while True:
        pending = [dict(zip(_PENDING_COLUMNS, row, strict=True)) for row in _PENDING.all()]
        if not pending:
            return chained
        if pending[0]["head_seq"] is None:  # the migration creates it; an emptied test db
            AuditChainHead.objects.get_or_create(pk=1)
            continue
        first = seq = pending[0]["head_seq"]
        previous = pending[0]["head_hash"]
        rows = []
        for row in pending:
            seq += 1
            content = {**row, "seq": seq, "prev_hash": previous}
            content["created_at"] = format_time(row["created_at"])
            previous = event_hash(content)
            rows.append((row["id"], seq, content["prev_hash"], previous))
        values = ", ".join(["(%s::bigint, %s::bigint, %s, %s)"] * len(rows))
        with transaction.get_connection().cursor() as cursor:
            cursor.execute(
                "WITH chained AS (UPDATE audit_auditevent AS e SET seq = v.seq, "
                "prev_hash = v.prev_hash, hash = v.hash "
                f"FROM (VALUES {values}) AS v(id, seq, prev_hash, hash) "
                "WHERE e.id = v.id AND e.seq IS NULL RETURNING e.id) "
                "UPDATE audit_auditchainhead SET last_seq = CASE WHEN last_seq = %s "
                "AND (SELECT count(*) FROM chained) = %s THEN %s END, last_hash = %s "
                "WHERE id = 1",
                [value for row in rows for value in row] + [first, len(rows), seq, previous],
            )
        chained += len(rows)
        if len(rows) < CHAIN_BATCH:
            return chained


def chain_after_commit() -> None:
    """The recording transaction's on-commit hook: chain what waits, unless another process
    is chaining now. That one looks again after it lets go of the lock, and this commit came
    before this attempt, so it sees these events: none is left behind, and no writer queues
    behind another's chaining."""
    while True:
        with _chain_lock(wait=False) as acquired:
            if not acquired:
                return
            _chain_under_lock()
        if not _ANY_PENDING.all():
            return


def chain_pending() -> int:
    """Give every committed event that has no place in the chain yet the next seq, the
    previous hash and its own hash, in the order they were recorded (by id), and move the
    head. Waits for a running chainer, so what had committed before the call is chained when
    it returns (readers, checkpoints and beat call it). Answers how many it chained."""
    if not deferred_chaining():
        return 0
    with _chain_lock(wait=True):
        return _chain_under_lock()


def checkpoint_create(*, publish: bool = True) -> AuditCheckpoint | None:
    """Sign the current head of the chain (run periodically by Celery beat) and, when an
    anchor URL is configured, queue its publication in the same transaction (outbox)."""
    from audit import anchors
    from audit.verify import current_key_id, sign_checkpoint

    chain_pending()
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or head.last_seq == 0:
            return None
        existing = AuditCheckpoint.objects.filter(seq=head.last_seq).first()
        if existing:
            if existing.anchored and publish:
                anchors.enqueue_publication(existing)
            return existing
        anchored = bool(anchors.configured_url())
        previous = (
            AuditCheckpoint.objects.filter(anchored=True).order_by("-seq").first()
            if anchored
            else None
        )
        checkpoint = AuditCheckpoint.objects.create(
            seq=head.last_seq,
            hash=head.last_hash,
            created_at=timezone.now(),
            signature=sign_checkpoint(head.last_seq, head.last_hash),
            key_id=current_key_id(),
            anchored=anchored,
            previous_seq=previous.seq if previous else None,
        )
        notify(
            "audit_checkpoint.signed",
            {
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "created_at": format_time(checkpoint.created_at),
            },
        )
        if anchored and publish:
            anchors.enqueue_publication(checkpoint)
        return checkpoint

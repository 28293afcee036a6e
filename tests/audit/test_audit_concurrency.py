"""Concurrent audited writes on PostgreSQL, committed for real: every event gets a place in
one gap-free chain that verifies, whatever the interleaving (docs/audit.md, "Concurrency")."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import psycopg
import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from audit import services as audit_services
from audit.models import AuditChainHead, AuditEvent
from audit.selectors import verify_live_chain
from tracking import services as tracking

WRITERS = 8
WRITES_EACH = 15


def _writer(index: int, errors: list[BaseException], start: threading.Barrier) -> None:
    try:
        start.wait()
        for i in range(WRITES_EACH):
            # Two events in one transaction: they keep their order in the chain.
            with transaction.atomic():
                audit_services.record(
                    action="bench.write", object_type="writer", object_id=f"{index}-{i}-a"
                )
                audit_services.record(
                    action="bench.write", object_type="writer", object_id=f"{index}-{i}-b"
                )
            tracking.experiment_create(name=f"writer-{index}-{i}")
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_make_one_gap_free_verifiable_chain(settings):
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    assert audit_services.deferred_chaining()
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)
    threads = [threading.Thread(target=_writer, args=(n, errors, start)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Each writer's commit chained its own events before it returned: nothing waits.
    assert not AuditEvent.objects.filter(seq__isnull=True).exists()
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) == WRITERS * WRITES_EACH * 3
    assert AuditChainHead.objects.get(pk=1).last_seq == len(seqs)
    pairs = AuditEvent.objects.filter(action="bench.write").order_by("seq")
    by_object = {e.object_id: e.seq for e in pairs}
    for key, seq in by_object.items():
        if key.endswith("-a"):
            assert by_object[key[:-1] + "b"] > seq
    result = verify_live_chain()
    assert result.ok, result.reason
    assert result.checked == len(seqs)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_left_unchained_by_a_dead_process_is_chained_by_the_next_write(settings):
    """The process died between its commit and chaining: its event waits, and the next
    writer (or beat's audit.chain_pending) gives it its place. That writer found the chain
    lock free and recorded its own event chained; after its commit it chains what waits."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    _orphans(1)
    orphan = AuditEvent.objects.get(action="orphan")
    assert orphan.seq is None and orphan.hash == ""
    tracking.experiment_create(name="next-write")
    orphan.refresh_from_db()
    newest = AuditEvent.objects.get(object_name="next-write")
    assert newest.seq is not None and orphan.seq == newest.seq + 1
    assert verify_live_chain().ok


@contextmanager
def _chain_lock_held_elsewhere():
    """Another process is chaining: it holds the chain lock on its own connection."""
    params = connection.get_connection_params()
    other = psycopg.connect(
        **{k: params[k] for k in ("dbname", "user", "password", "host", "port") if k in params},
        autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [audit_services._CHAIN_LOCK_KEY])
        yield
    finally:
        other.close()


def _orphans(count: int) -> None:
    """`count` committed events whose chaining never ran: recorded unchained while another
    process was chaining, and the process died after its commit. On a chain that starts
    empty (the test database's tables are emptied between tests)."""
    AuditChainHead.objects.get_or_create(pk=1)
    with _chain_lock_held_elsewhere(), transaction.atomic():
        for n in range(count):
            audit_services.record(action="orphan", object_type="t", object_id=str(n))
        transaction.get_connection().run_on_commit.clear()  # the process dies here
    assert AuditEvent.objects.filter(action="orphan", seq__isnull=True).count() == count


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_round_of_chaining_costs_five_round_trips(settings):
    """Try the lock, read the events with the head, write both in one statement, let go of
    the lock, look for events left behind: no transaction of its own."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    _orphans(3)
    with CaptureQueriesContext(connection) as queries:
        audit_services.chain_after_commit()
    assert len(queries) == 5, "\n".join(q["sql"][:120] for q in queries.captured_queries)
    assert list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3]
    assert verify_live_chain().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_chaining_write_keeps_nothing_when_the_head_moved_since_its_read(settings, monkeypatch):
    """The chain lock keeps one chainer at a time; should the head move between a round's
    read and its write all the same, the write is refused by the database as a whole: no
    event gets a seq the head does not account for."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    _orphans(2)
    hashing = audit_services.event_hash
    moved = []

    def hash_while_someone_moves_the_head(content):
        if not moved:  # between the read and the write, once
            AuditChainHead.objects.filter(pk=1).update(last_seq=F("last_seq") + 1)
            moved.append(True)
        return hashing(content)

    monkeypatch.setattr(audit_services, "event_hash", hash_while_someone_moves_the_head)
    with pytest.raises(IntegrityError):
        audit_services.chain_pending()
    assert AuditEvent.objects.filter(seq__isnull=True).count() == 2
    assert AuditChainHead.objects.get(pk=1).last_seq == 1  # only the intruder's move
    AuditChainHead.objects.filter(pk=1).update(last_seq=0)
    monkeypatch.setattr(audit_services, "event_hash", hashing)
    assert audit_services.chain_pending() == 2
    assert verify_live_chain().ok


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_chain_lock_free_a_write_records_its_events_chained(settings):
    """The common case: the transaction takes the chain lock without waiting and records
    its events in the chain; after its commit it only looks for events left behind."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    AuditChainHead.objects.get_or_create(pk=1)
    with CaptureQueriesContext(connection) as queries:
        with transaction.atomic():
            first = audit_services.record(action="inline", object_type="t", object_id="1")
            second = audit_services.record(action="inline", object_type="t", object_id="2")
            assert (first.seq, second.seq) == (1, 2)
            assert second.prev_hash == first.hash
    statements = [q["sql"] for q in queries.captured_queries if q["sql"] not in _TX]
    # per event: lock and head, then the event inserted and the head moved in one
    # statement; after the commit one look for events left behind
    assert len(statements) == 5, "\n".join(sql[:120] for sql in statements)
    moves = [sql for sql in statements if "UPDATE audit_auditchainhead" in sql]
    assert len(moves) == 2 and all("INSERT INTO" in sql for sql in moves)
    assert AuditChainHead.objects.get(pk=1).last_seq == 2
    assert verify_live_chain().ok


_TX = ("BEGIN", "COMMIT")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_write_that_finds_the_chain_lock_taken_is_chained_when_the_holder_commits(settings):
    """Writer B records while transaction A holds the chain lock: B's event is recorded
    unchained and B's own attempt after its commit finds the lock taken; A's commit
    chains it. Nothing waits, nothing is left behind, the chain verifies."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    AuditChainHead.objects.get_or_create(pk=1)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def holder() -> None:
        try:
            with transaction.atomic():
                audit_services.record(action="holder", object_type="t", object_id="a")
                holding.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(10)
    with transaction.atomic():
        waiting = audit_services.record(action="writer", object_type="t", object_id="b")
    waiting.refresh_from_db()
    assert waiting.seq is None  # B's commit and attempt are done; A still holds the lock
    release.set()
    thread.join()
    assert errors == []
    held = AuditEvent.objects.get(action="holder")
    waiting.refresh_from_db()
    assert (held.seq, waiting.seq) == (1, 2)
    assert verify_live_chain().ok

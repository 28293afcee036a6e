"""Concurrent audited writes on PostgreSQL, committed for real: every event gets a place in
one gap-free chain that verifies, whatever the interleaving (docs/audit.md, "Concurrency")."""

from __future__ import annotations

import threading

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
    writer's chaining (or beat's audit.chain_pending) gives it its place, in order."""
    if connection.vendor != "postgresql":
        pytest.skip("deferred chaining runs on PostgreSQL; run with DATABASE_URL=postgres://...")
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    with transaction.atomic():
        audit_services.record(action="orphan", object_type="t", object_id="1")
        transaction.get_connection().run_on_commit.clear()  # the process dies here
    orphan = AuditEvent.objects.get(action="orphan")
    assert orphan.seq is None and orphan.hash == ""
    tracking.experiment_create(name="next-write")
    orphan.refresh_from_db()
    newest = AuditEvent.objects.get(object_name="next-write")
    assert orphan.seq is not None and newest.seq == orphan.seq + 1
    assert verify_live_chain().ok


def _orphans(count: int) -> None:
    """`count` committed events whose chaining never ran (the process died after commit),
    on a chain that starts empty (the test database's tables are emptied between tests)."""
    AuditChainHead.objects.get_or_create(pk=1)
    with transaction.atomic():
        for n in range(count):
            audit_services.record(action="orphan", object_type="t", object_id=str(n))
        transaction.get_connection().run_on_commit.clear()


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

"""The audit event mechanism: same transaction as the change, append-only, hash-chained."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from audit import services as audit_services
from audit.chain import HASHED_FIELDS, event_hash, format_time
from audit.models import AppendOnlyError, AuditEvent
from tracking import services as tracking_services
from tracking.models import Experiment

pytestmark = pytest.mark.django_db


def test_events_chain_and_recompute():
    for i in range(3):
        tracking_services.experiment_create(name=f"chain-{i}")
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 3))
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
    for event in events:
        content = {f: getattr(event, f) for f in HASHED_FIELDS if f != "created_at"}
        content["created_at"] = format_time(event.created_at)
        assert event_hash(content) == event.hash


def test_failing_audit_write_rolls_back_the_change(monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit_services, "record", broken)
    with pytest.raises(RuntimeError):
        tracking_services.experiment_create(name="never-written")
    assert not Experiment.objects.filter(name="never-written").exists()


def test_failing_change_rolls_back_its_event(monkeypatch):
    original = audit_services.record
    count = AuditEvent.objects.count()

    def record_then_fail(**kwargs):
        original(**kwargs)
        raise RuntimeError("the change failed after its event was written")

    monkeypatch.setattr(audit_services, "record", record_then_fail)
    with pytest.raises(RuntimeError):
        tracking_services.experiment_create(name="half-done")
    assert AuditEvent.objects.count() == count
    assert not Experiment.objects.filter(name="half-done").exists()


def test_application_refuses_to_change_events():
    tracking_services.experiment_create(name="immutable")
    event = AuditEvent.objects.latest("seq")
    event.action = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'tampered'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_postgres_refuses_changes_to_events(statement):
    if connection.vendor != "postgresql":
        pytest.skip(
            "database-level append-only triggers exist on PostgreSQL only; run with "
            "DATABASE_URL=postgres://... to exercise them"
        )
    tracking_services.experiment_create(name="db-guarded")
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            # The test connection may TRUNCATE between tests; a normal one may not.
            cursor.execute("SET LOCAL custody.allow_audit_truncate = 'off'")
            cursor.execute(statement)
    assert AuditEvent.objects.filter(object_name="db-guarded").exists()

"""The audit event mechanism: same transaction as the change, append-only, hash-chained."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from audit import services as audit_services
from audit.chain import HASHED_FIELDS, event_hash, format_time
from audit.models import AppendOnlyError, AuditCheckpoint, AuditEvent
from tracking import services as tracking_services
from tracking.models import Experiment

pytestmark = pytest.mark.django_db


def test_events_chain_and_recompute():
    for i in range(3):
        tracking_services.experiment_create(name=f"chain-{i}")
    audit_services.chain_pending()  # what the commit does (PostgreSQL chains after it)
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
        "UPDATE audit_auditcheckpoint SET signature = 'forged'",
        "DELETE FROM audit_auditcheckpoint",
        "TRUNCATE audit_auditcheckpoint",
    ],
)
def test_postgres_refuses_changes_to_events(statement):
    if connection.vendor != "postgresql":
        pytest.skip(
            "database-level append-only triggers exist on PostgreSQL only; run with "
            "DATABASE_URL=postgres://... to exercise them"
        )
    tracking_services.experiment_create(name="db-guarded")
    audit_services.checkpoint_create()
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            # The test connection may TRUNCATE between tests; a normal one may not.
            cursor.execute("SET LOCAL custody.allow_audit_truncate = 'off'")
            cursor.execute(statement)
    assert AuditEvent.objects.filter(object_name="db-guarded").exists()
    assert AuditCheckpoint.objects.exists()


@pytest.mark.postgres
def test_outside_a_test_database_the_truncate_setting_opens_nothing(tmp_path):
    """Any session may SET custody.allow_audit_truncate; on a database that is not a test
    database (a migrated copy named like production's) the triggers still refuse."""
    if connection.vendor != "postgresql":
        pytest.skip("the append-only triggers exist on PostgreSQL only")
    import os
    import subprocess
    import sys
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    from tests.conftest import ROOT, _postgres_admin

    base_url = os.environ["DATABASE_URL"]
    dbname = f"custody_guard_{os.getpid()}"
    with _postgres_admin(base_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{dbname}"))
    try:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": url,
            "SECRET_KEY": "guard-test-secret-" + "x" * 40,
            "CUSTODY_DATA_DIR": str(tmp_path),
        }
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO audit_auditcheckpoint (seq, hash, created_at, signature) "
                "VALUES (1, 'h', now(), 's')"
            )
            conn.execute(
                "INSERT INTO audit_auditevent (seq, created_at, actor_username, auth_method, "
                "action, outcome, object_type, object_id, object_name, model_name, reason, "
                "request_id, client_ip, user_agent, prev_hash, hash) VALUES (1, now(), '', "
                "'system', 'a', 'success', 't', '1', '', '', '', '', '', '', '0', 'h')"
            )
            conn.execute("SET custody.allow_audit_truncate = on")
            for table in ("audit_auditevent", "audit_auditcheckpoint"):
                for statement in (
                    f"TRUNCATE {table}",
                    f"DELETE FROM {table}",
                    f"UPDATE {table} SET hash = 'x'",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                        conn.execute(statement)
            for table in ("audit_auditevent", "audit_auditcheckpoint"):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    finally:
        with _postgres_admin(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

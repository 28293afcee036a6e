"""Export, verification and tamper detection of the audit trail (reference/security.md §3.5)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from accounts import services as accounts
from audit import services as audit_services
from audit.chain import HASHED_FIELDS, event_hash, format_time
from audit.models import AuditEvent
from audit.selectors import verify_live_chain
from tests.audit.commands import run_command
from tracking import services as tracking

pytestmark = pytest.mark.django_db


def tamper(sql: str, params=()) -> None:
    """Changes rows behind the application's back, as an attacker with database access would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # bypass the triggers
        cursor.execute(sql, params)


@pytest.fixture
def chain():
    for i in range(6):
        tracking.experiment_create(name=f"audited-{i}")
    audit_services.chain_pending()  # what the commits do (PostgreSQL chains after them)
    return list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))


def test_intact_chain_verifies(chain):
    audit_services.checkpoint_create()
    result = verify_live_chain()
    assert result.ok, result.reason
    assert result.checked == len(chain) and result.checkpoints_checked == 1


def test_edited_field_is_detected(chain):
    target = chain[2]
    tamper("UPDATE audit_auditevent SET object_name = 'forged' WHERE seq = %s", [target])
    result = verify_live_chain()
    assert not result.ok and result.first_broken_seq == target
    assert "does not match its hash" in result.reason


def test_deleted_row_is_detected(chain):
    tamper("DELETE FROM audit_auditevent WHERE seq = %s", [chain[3]])
    result = verify_live_chain()
    assert not result.ok and result.first_broken_seq == chain[4]
    assert "missing" in result.reason


def test_swapped_rows_are_detected(chain):
    a, b = chain[1], chain[2]
    tamper("UPDATE audit_auditevent SET seq = -1 WHERE seq = %s", [a])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [a, b])
    tamper("UPDATE audit_auditevent SET seq = %s WHERE seq = -1", [b])
    result = verify_live_chain()
    assert not result.ok and result.first_broken_seq == a


def test_truncated_tail_is_detected_by_a_signed_checkpoint(chain):
    audit_services.checkpoint_create()
    tamper("DELETE FROM audit_auditevent WHERE seq >= %s", [chain[-2]])
    result = verify_live_chain()
    assert not result.ok
    assert "removed from the tail" in result.reason


def test_forged_checkpoint_is_detected(chain):
    audit_services.checkpoint_create()
    tamper("UPDATE audit_auditcheckpoint SET signature = %s", ["0" * 64])
    result = verify_live_chain()
    assert not result.ok and "invalid signature" in result.reason


def test_fork_is_detected(chain):
    # Re-write an event so that it hashes correctly but links to an earlier event.
    target = AuditEvent.objects.get(seq=chain[3])
    grandparent = AuditEvent.objects.get(seq=chain[1])
    content = {f: getattr(target, f) for f in HASHED_FIELDS if f != "created_at"}
    content["created_at"] = format_time(target.created_at)
    content["prev_hash"] = grandparent.hash
    tamper(
        "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s",
        [grandparent.hash, event_hash(content), target.seq],
    )
    result = verify_live_chain()
    assert not result.ok and result.first_broken_seq == target.seq
    assert "does not link" in result.reason


def test_exported_files_verify_alone_and_tampering_shows(chain, tmp_path):
    audit_services.checkpoint_create()
    jsonl = tmp_path / "trail.jsonl"
    csv_path = tmp_path / "trail.csv"
    assert run_command("export_audit", "--format", "jsonl", "-o", str(jsonl))[0] == 0
    assert run_command("export_audit", "--format", "csv", "-o", str(csv_path))[0] == 0
    code, out = run_command("verify_audit", "--file", str(jsonl))
    assert code == 0 and f"{len(chain)} events verified" in out
    assert run_command("verify_audit", "--file", str(csv_path))[0] == 0

    lines = jsonl.read_text().splitlines()
    edited = json.loads(lines[3])
    edited["actor_username"] = "someone-else"
    (tmp_path / "edited.jsonl").write_text(
        "\n".join([*lines[:3], json.dumps(edited), *lines[4:]]) + "\n"
    )
    code, out = run_command("verify_audit", "--file", str(tmp_path / "edited.jsonl"))
    assert code == 1 and f"#{edited['seq']}" in out
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    code, out = run_command("verify_audit", "--file", str(tmp_path / "cut.jsonl"))
    assert code == 1 and "tail" in out
    csv_lines = csv_path.read_text().splitlines()
    (tmp_path / "gap.csv").write_text("\n".join([*csv_lines[:3], *csv_lines[4:]]) + "\n")
    assert run_command("verify_audit", "--file", str(tmp_path / "gap.csv"))[0] == 1


def test_filtered_export_verifies_per_event(tmp_path):
    tracking.experiment_create(name="one")
    accounts.user_create(username="zed", role="reviewer")
    tracking.experiment_create(name="two")
    out = tmp_path / "experiments.csv"
    run_command("export_audit", "--format", "csv", "--object-type", "experiment", "-o", str(out))
    # Its signed manifest says it is filtered (gaps by design) and lists its rows.
    code, text = run_command("verify_audit", "--file", str(out))
    assert code == 0 and "signed manifest matches" in text, text
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(out.read_text().splitlines(keepends=True)[:-1]))
    assert run_command("verify_audit", "--file", str(bare))[0] == 1  # gaps: not contiguous
    code, text = run_command("verify_audit", "--file", str(bare), "--legacy", "--partial")
    assert code == 0 and "no manifest: only per-row hashes checked" in text, text


@pytest.fixture
def compliance_client():
    user = accounts.user_create(username="cora", role="compliance")
    return Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")


def test_audit_api_for_compliance_only(chain, compliance_client, auth_client):
    page = compliance_client.get("/api/v1/audit/events", {"limit": 2, "object_type": "experiment"})
    assert page.status_code == 200
    body = page.json()
    assert len(body["events"]) == 2 and body["next_after_seq"] == body["events"][1]["seq"]
    rest = compliance_client.get(
        "/api/v1/audit/events",
        {"limit": 100, "object_type": "experiment", "after_seq": body["next_after_seq"]},
    ).json()
    assert len(body["events"]) + len(rest["events"]) == 6
    csv_response = compliance_client.get("/api/v1/audit/events", {"export": "csv"})
    assert csv_response["Content-Type"] == "text/csv"
    assert "attachment" in csv_response["Content-Disposition"]
    text = b"".join(csv_response.streaming_content).decode()
    assert text.splitlines()[0].startswith("seq,created_at")
    assert compliance_client.get("/api/v1/audit/verify").json()["ok"] is True
    denied = auth_client.get("/api/v1/audit/events")
    assert denied.status_code == 403
    assert compliance_client.get("/api/v1/audit/events", {"since": "yesterday"}).status_code == 400


def test_export_until_a_time_verifies_and_its_tail_is_still_guarded(tmp_path):
    for i in range(3):
        tracking.experiment_create(name=f"early-{i}")
    audit_services.checkpoint_create()  # inside the exported range
    cut = AuditEvent.objects.latest("seq")
    tracking.experiment_create(name="boundary")
    audit_services.chain_pending()
    boundary = AuditEvent.objects.latest("seq")
    for i in range(3):
        tracking.experiment_create(name=f"late-{i}")
    audit_services.checkpoint_create()  # beyond the exported range
    until = format_time(boundary.created_at)
    out = tmp_path / "until.jsonl"
    assert run_command("export_audit", "--until", until, "-o", str(out))[0] == 0
    code, text = run_command("verify_audit", "--file", str(out))
    assert code == 0, text
    assert f"last #{cut.seq}" in text and "1 signed checkpoints" in text
    lines = out.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:-2]) + "\n")  # manifest and #cut
    code, text = run_command("verify_audit", "--file", str(tmp_path / "cut.jsonl"))
    assert code == 1 and "tail" in text


def test_newest_event_deleted_after_the_last_checkpoint_is_detected(chain, compliance_client):
    audit_services.checkpoint_create()
    tracking.experiment_create(name="after-the-checkpoint")
    audit_services.chain_pending()
    newest = AuditEvent.objects.latest("seq").seq
    assert compliance_client.get("/api/v1/audit/verify").json()["ok"] is True
    tamper("DELETE FROM audit_auditevent WHERE seq = %s", [newest])
    body = compliance_client.get("/api/v1/audit/verify").json()
    assert body["ok"] is False and body["first_broken_seq"] == newest
    assert "chain head" in body["reason"] and "removed from the tail" in body["reason"]
    code, out = run_command("verify_audit")
    assert code == 1 and "chain head" in out


def test_newest_event_rewritten_is_detected_by_the_chain_head(chain):
    # Rewritten and re-hashed consistently (links still hold), but the head kept the old hash.
    newest = AuditEvent.objects.get(seq=chain[-1])
    content = {f: getattr(newest, f) for f in HASHED_FIELDS if f != "created_at"}
    content["created_at"] = format_time(newest.created_at)
    content["object_name"] = "forged"
    tamper(
        "UPDATE audit_auditevent SET object_name = 'forged', hash = %s WHERE seq = %s",
        [event_hash(content), newest.seq],
    )
    result = verify_live_chain()
    assert not result.ok and result.first_broken_seq == newest.seq
    assert "chain head" in result.reason

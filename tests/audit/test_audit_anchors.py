"""External anchors: an owner of the database who deletes the newest events, rewinds the
chain head and deletes the newest checkpoints too is still caught, by what was published
outside the database (docs/audit.md, "Anchors"). Runs on SQLite and PostgreSQL; on
PostgreSQL the owner drops the append-only triggers first, as an owner can."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client

from accounts import services as accounts
from audit import anchors
from audit import services as audit_services
from audit.models import AuditCheckpoint, AuditEvent
from outbox.models import OutboxJob
from tests.audit.commands import run_command
from tracking import services as tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def anchor_dir(tmp_path, settings):
    path = tmp_path / "anchors"
    settings.CUSTODY_AUDIT_ANCHOR_URL = f"file://{path}"
    return path


@pytest.fixture
def compliance_client():
    user = accounts.user_create(username="olga", role="compliance")
    return Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")


def accounts_user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


def owner_sql(sql: str, params=()) -> None:
    """What the tables' owner can do: drop the append-only triggers, then change rows (the
    test's transaction rolls the DDL back with everything else)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for trigger, table in (
                ("audit_event_no_update", "audit_auditevent"),
                ("audit_checkpoint_no_update", "audit_auditcheckpoint"),
            ):
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        cursor.execute(sql, params)


def cut_the_tail(keep_through: int, *, checkpoints_too: bool = False) -> None:
    """Delete every event after #keep_through and rewind the chain head onto it."""
    audit_services.chain_pending()  # what the commits did (PostgreSQL chains after them)
    kept = AuditEvent.objects.get(seq=keep_through)
    owner_sql("DELETE FROM audit_auditevent WHERE seq > %s", [keep_through])
    owner_sql(
        "UPDATE audit_auditchainhead SET last_seq = %s, last_hash = %s WHERE id = 1",
        [kept.seq, kept.hash],
    )
    if checkpoints_too:
        owner_sql("DELETE FROM audit_auditcheckpoint WHERE seq > %s", [keep_through])


def write_events(count: int, stem: str) -> None:
    for i in range(count):
        tracking.experiment_create(name=f"{stem}-{i}")


@pytest.fixture
def anchored_trail(anchor_dir):
    """Two stretches of events, each signed and published with `manage.py audit_checkpoint`;
    answers the two checkpoints' seqs."""
    write_events(4, "first")
    code, out = run_command("audit_checkpoint")
    assert code == 0 and "published to file://" in out, out
    write_events(4, "second")
    code, out = run_command("audit_checkpoint")
    assert code == 0 and "published to" in out, out
    return list(AuditCheckpoint.objects.order_by("seq").values_list("seq", flat=True))


def test_checkpoints_are_published_write_once(anchored_trail, anchor_dir):
    names = sorted(os.listdir(anchor_dir))
    assert names == [anchors.object_name(seq) for seq in anchored_trail]
    first, second = (json.loads((anchor_dir / n).read_text()) for n in names)
    assert (first["previous_seq"], second["previous_seq"]) == (None, anchored_trail[0])
    assert not os.stat(anchor_dir / names[1]).st_mode & stat.S_IWUSR  # read-only
    # Publishing again writes nothing; other bytes under the same name are refused.
    code, out = run_command("audit_checkpoint")
    assert code == 0 and "already published" in out, out
    checkpoint = AuditCheckpoint.objects.get(seq=anchored_trail[1])
    store = anchors.store_for(f"file://{anchor_dir}")
    with pytest.raises(anchors.AnchorError, match="never overwritten"):
        store.put_once(anchors.object_name(checkpoint.seq), b"{}")
    assert json.loads((anchor_dir / names[1]).read_text()) == second


def test_intact_trail_verifies_against_its_anchors(anchored_trail, compliance_client, tmp_path):
    code, out = run_command("verify_audit")
    assert code == 0 and "2 anchors checked" in out and f"#{anchored_trail[1]}" in out, out
    export = tmp_path / "trail.jsonl"
    assert run_command("export_audit", "-o", str(export))[0] == 0
    code, out = run_command("verify_audit", "--file", str(export))
    assert code == 0 and "2 anchors checked" in out, out
    body = compliance_client.get("/api/v1/audit/verify").json()
    assert body["ok"] is True and body["anchors_checked"] == 2
    assert body["anchors"]["newest"]["seq"] == anchored_trail[1]
    assert body["anchors"]["newest"]["age_seconds"] >= 0
    browser = Client()
    browser.force_login(accounts_user("olga"))
    page = browser.get("/audit/?verify=1")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"Newest anchor: checkpoint #{anchored_trail[1]}" in text
    assert "The chain verifies" in text


def missing_range(text: str) -> tuple[int, int]:
    match = re.search(r"events #(\d+)\.\.#(\d+) are missing", text)
    assert match, text
    return int(match[1]), int(match[2])


def test_a_cut_tail_with_a_rewound_head_fails_in_a_fresh_export_and_live(
    anchored_trail, compliance_client, tmp_path
):
    newest = anchored_trail[1]
    cut_the_tail(newest - 3)
    export = tmp_path / "after-the-cut.jsonl"
    assert run_command("export_audit", "-o", str(export))[0] == 0
    # The export is consistent with itself and with the rewound head: without the anchors it
    # verifies, which is the hole the anchors close.
    assert run_command("verify_audit", "--file", str(export), "--no-anchors")[0] == 0
    code, out = run_command("verify_audit", "--file", str(export))
    assert code == 1 and "anchored checkpoint" in out, out
    assert missing_range(out) == (newest - 2, newest)
    csv_export = tmp_path / "after-the-cut.csv"
    assert run_command("export_audit", "--format", "csv", "-o", str(csv_export))[0] == 0
    code, out = run_command("verify_audit", "--file", str(csv_export))
    assert code == 1 and missing_range(out) == (newest - 2, newest), out
    code, out = run_command("verify_audit")
    assert code == 1 and missing_range(out) == (newest - 2, newest), out
    body = compliance_client.get("/api/v1/audit/verify").json()
    assert body["ok"] is False and body["first_broken_seq"] == newest - 2
    assert missing_range(body["reason"]) == (newest - 2, newest)


def test_deleting_the_newest_checkpoints_too_is_caught_by_the_anchors(
    anchored_trail, compliance_client, tmp_path
):
    first, newest = anchored_trail
    cut_the_tail(first + 1, checkpoints_too=True)
    # Nothing in the database shows it any more.
    assert run_command("verify_audit", "--no-anchors")[0] == 0
    code, out = run_command("verify_audit")
    assert code == 1 and "anchored checkpoint" in out, out
    assert missing_range(out) == (first + 2, newest)
    export = tmp_path / "fresh.jsonl"
    assert run_command("export_audit", "-o", str(export))[0] == 0
    code, out = run_command("verify_audit", "--file", str(export))
    assert code == 1 and missing_range(out) == (first + 2, newest), out
    body = compliance_client.get("/api/v1/audit/verify").json()
    assert body["ok"] is False and missing_range(body["reason"]) == (first + 2, newest)


def test_events_written_over_the_cut_do_not_match_the_anchors(anchored_trail):
    first, newest = anchored_trail
    cut_the_tail(first, checkpoints_too=True)
    write_events(newest - first, "rewritten")  # the same seqs again, other content
    code, out = run_command("verify_audit")
    assert code == 1 and f"event #{newest} differs from the anchored checkpoint" in out, out


def test_checkpoint_rows_deleted_while_their_events_stay_are_caught(anchored_trail):
    owner_sql("DELETE FROM audit_auditcheckpoint WHERE seq = %s", [anchored_trail[0]])
    code, out = run_command("verify_audit")
    assert code == 1 and f"checkpoint #{anchored_trail[0]} is missing" in out, out


def test_a_missing_anchor_in_the_sequence_is_named(anchored_trail, anchor_dir):
    write_events(2, "third")
    assert run_command("audit_checkpoint")[0] == 0
    middle = anchor_dir / anchors.object_name(anchored_trail[1])
    middle.unlink()
    code, out = run_command("verify_audit")
    assert code == 1 and "anchors are missing" in out, out
    assert f"the anchor before it is #{anchored_trail[0]}" in out
    forged = anchor_dir / anchors.object_name(anchored_trail[1])
    document = json.loads((anchor_dir / anchors.object_name(anchored_trail[0])).read_text())
    forged.write_text(json.dumps({**document, "seq": anchored_trail[1]}))
    code, out = run_command("verify_audit")
    assert code == 1 and "invalid signature" in out, out


def test_another_anchor_store_can_be_named(anchored_trail, anchor_dir, tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    code, out = run_command("verify_audit", "--anchors", f"file://{empty}")
    assert code == 0 and "no anchors yet" in out, out
    with pytest.raises(CommandError, match="file:///path or s3://bucket/prefix"):
        run_command("verify_audit", "--anchors", "ftp://example.org/x")


def test_publication_goes_through_the_outbox_and_survives_a_store_outage(
    anchor_dir, django_capture_on_commit_callbacks, settings
):
    anchor_dir.parent.mkdir(exist_ok=True)
    anchor_dir.write_text("not a directory")  # the store is unusable for now
    write_events(3, "outage")
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = audit_services.checkpoint_create()
    job = OutboxJob.objects.get(dedupe_key=f"audit-anchor:{checkpoint.seq}")
    assert job.done_at is None  # still due: the relay sends it again
    assert not anchor_dir.is_dir()
    anchor_dir.unlink()  # the store is back
    from audit.tasks import publish_anchor

    publish_anchor.apply(kwargs={"checkpoint_seq": checkpoint.seq, "outbox_job_id": job.pk})
    job.refresh_from_db()
    assert job.done_at is not None
    assert os.listdir(anchor_dir) == [anchors.object_name(checkpoint.seq)]


def test_without_an_anchor_store_verification_warns(compliance_client, settings):
    settings.CUSTODY_AUDIT_ANCHOR_URL = ""
    write_events(2, "plain")
    code, out = run_command("verify_audit")
    assert code == 0 and "no anchor store is configured" in out, out
    body = compliance_client.get("/api/v1/audit/verify").json()
    assert body["ok"] is True and body["anchors"] is None


@pytest.mark.s3
def test_anchors_in_s3_are_written_once_and_checked(s3_bucket, settings):
    """SeaweedFS (tests/s3_server.py) as the anchor store, without Object Lock: what keeps
    an anchor is If-None-Match: * (an existing object is not replaced)."""
    settings.CUSTODY_AUDIT_ANCHOR_URL = f"s3://{s3_bucket['bucket']}/anchors"
    settings.CUSTODY_AUDIT_ANCHOR_S3_ENDPOINT_URL = s3_bucket["endpoint"]
    write_events(3, "s3")
    code, out = run_command("audit_checkpoint")
    assert code == 0 and f"published to s3://{s3_bucket['bucket']}/anchors/" in out, out
    newest = AuditCheckpoint.objects.latest("seq")
    listed = s3_bucket["client"].list_objects_v2(Bucket=s3_bucket["bucket"], Prefix="anchors/")
    assert [o["Key"] for o in listed["Contents"]] == [f"anchors/{anchors.object_name(newest.seq)}"]
    code, out = run_command("audit_checkpoint")
    assert code == 0 and "already published" in out, out
    store = anchors.store_for(settings.CUSTODY_AUDIT_ANCHOR_URL)
    with pytest.raises(anchors.AnchorError, match="never overwritten"):
        store.put_once(anchors.object_name(newest.seq), b"{}")
    assert run_command("verify_audit")[0] == 0
    cut_the_tail(newest.seq - 1, checkpoints_too=True)
    code, out = run_command("verify_audit")
    assert code == 1 and f"event #{newest.seq} is missing" in out, out


@pytest.mark.s3
def test_anchors_under_s3_object_lock_outlive_their_deletion(s3_bucket, settings):
    """A bucket with Object Lock (SeaweedFS supports it): each anchor gets COMPLIANCE
    retention. Deleting its version is refused; a plain delete only adds a delete marker
    and an overwrite only a newer version, and verification reads each anchor's first
    version, so the cut below is still caught."""
    client = s3_bucket["client"]
    bucket = f"{s3_bucket['bucket']}-locked"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.CUSTODY_AUDIT_ANCHOR_URL = f"s3://{bucket}/trail"
    settings.CUSTODY_AUDIT_ANCHOR_S3_ENDPOINT_URL = s3_bucket["endpoint"]
    settings.CUSTODY_AUDIT_ANCHOR_RETENTION_DAYS = 1
    write_events(3, "locked")
    assert run_command("audit_checkpoint")[0] == 0
    newest = AuditCheckpoint.objects.latest("seq")
    key = f"trail/{anchors.object_name(newest.seq)}"
    retention = client.get_object_retention(Bucket=bucket, Key=key)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    version = client.head_object(Bucket=bucket, Key=key)["VersionId"]
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key=key, VersionId=version)
    client.put_object(Bucket=bucket, Key=key, Body=b"{}")  # a newer version
    client.delete_object(Bucket=bucket, Key=key)  # a delete marker
    cut_the_tail(newest.seq - 1, checkpoints_too=True)
    code, out = run_command("verify_audit")
    assert code == 1 and f"event #{newest.seq} is missing" in out, out


def test_a_rotated_key_still_verifies_what_it_signed(anchored_trail, settings, tmp_path):
    original = settings.CUSTODY_AUDIT_SIGNING_KEY or settings.SECRET_KEY  # signed the trail
    settings.CUSTODY_AUDIT_SIGNING_KEY = "the-first-key-" + "a" * 40
    write_events(2, "before-rotation")
    assert run_command("audit_checkpoint")[0] == 0
    export = tmp_path / "before-rotation.jsonl"
    assert run_command("export_audit", "-o", str(export))[0] == 0
    settings.CUSTODY_AUDIT_SIGNING_KEY = "the-second-key-" + "b" * 40
    # The old key is gone: its checkpoint, anchor and manifest no longer verify.
    code, out = run_command("verify_audit")
    assert code == 1 and "invalid signature" in out, out
    settings.CUSTODY_AUDIT_RETIRED_SIGNING_KEYS = [original, "the-first-key-" + "a" * 40]
    write_events(2, "after-rotation")
    assert run_command("audit_checkpoint")[0] == 0
    key_ids = list(AuditCheckpoint.objects.order_by("seq").values_list("key_id", flat=True))
    assert len(set(key_ids[-2:])) == 2  # each checkpoint names the key that signed it
    code, out = run_command("verify_audit")
    assert code == 0, out
    code, out = run_command("verify_audit", "--file", str(export))
    assert code == 0 and "signed manifest matches" in out, out

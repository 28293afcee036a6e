"""A JSON Lines export carries every signed checkpoint of its own range, not those before
it; a truncated tail still shows."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts import services as accounts
from audit import services as audit_services
from audit.models import AuditCheckpoint, AuditEvent
from tests.audit.commands import run_command
from tracking import services as tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def compliance_client():
    user = accounts.user_create(username="cora", role="compliance")
    return Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")


@pytest.fixture
def checkpointed(compliance_client):
    """Five stretches of three events, each followed by a signed checkpoint."""
    for stretch in range(5):
        for i in range(3):
            tracking.experiment_create(name=f"c-{stretch}-{i}")
        audit_services.checkpoint_create()
    return list(AuditCheckpoint.objects.order_by("seq").values_list("seq", flat=True))


def header_seqs(body: str) -> list[int]:
    header = json.loads(body.splitlines()[0])["custody_audit_export"]
    return [c["seq"] for c in header["checkpoints"]]


def test_a_range_export_carries_every_checkpoint_of_its_range(
    checkpointed, compliance_client, tmp_path
):
    after_seq = checkpointed[2]  # the export starts after the third checkpoint
    response = compliance_client.get(
        "/api/v1/audit/events", {"export": "jsonl", "after_seq": after_seq}
    )
    body = b"".join(response.streaming_content).decode()
    # The checkpoints inside the range, none before it.
    assert header_seqs(body) == checkpointed[3:]
    path = tmp_path / "range.jsonl"
    path.write_text(body)
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 0 and "2 signed checkpoints" in out and "signed manifest matches" in out, out


def test_an_export_with_no_events_carries_no_checkpoint(checkpointed, compliance_client):
    newest = AuditEvent.objects.latest("seq").seq
    response = compliance_client.get(
        "/api/v1/audit/events", {"export": "jsonl", "after_seq": newest + 5}
    )
    assert header_seqs(b"".join(response.streaming_content).decode()) == []


def test_a_cut_tail_is_still_shown_by_the_checkpoints_in_range(
    checkpointed, compliance_client, tmp_path
):
    response = compliance_client.get(
        "/api/v1/audit/events", {"export": "jsonl", "after_seq": checkpointed[1]}
    )
    lines = b"".join(response.streaming_content).decode().splitlines(keepends=True)
    # Cut the last stretch and the manifest, and no longer announce one.
    header = json.loads(lines[0])
    del header["custody_audit_export"]["manifest"]
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(header) + "\n" + "".join(lines[1:-4]))
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 1 and "removed from the tail" in out, out

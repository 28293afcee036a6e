"""An export filtered by model version 0 is a filtered export like any other (gaps by
design), so it verifies: the stream, `export_audit` and a background export."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from accounts import services as accounts
from audit import services as audit_services
from tests.audit.commands import run_command
from tracking import services as tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def version_zero():
    for i in range(3):
        with transaction.atomic():
            audit_services.record(
                action="model_version.update",
                object_type="model_version",
                object_id=f"zero/{i}",
                model_name="zero",
                model_version=0,
            )
        tracking.experiment_create(name=f"between-{i}")  # a gap in the filtered export


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_audit_by_version_0_verifies(version_zero, tmp_path, fmt):
    path = tmp_path / f"zero.{fmt}"
    assert (
        run_command("export_audit", "--format", fmt, "--model-version", "0", "-o", str(path))[0]
        == 0
    )
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 0 and "3 events verified" in out and "signed manifest matches" in out, out


def test_background_export_by_version_0_verifies(
    version_zero, tmp_path, django_capture_on_commit_callbacks
):
    from core.storage import get_artifact_store
    from governance.models import AuditExport

    officer = accounts.user_create(username="carla", role="compliance", password="carla-pw")
    token = accounts.token_create(user=officer, name="t")[1]
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(
            "/api/v1/audit/exports",
            json.dumps({"format": "jsonl", "version": 0}),
            content_type="application/json",
        )
    assert queued.status_code == 202, queued.content
    export = AuditExport.objects.get(pk=queued.json()["id"])
    assert export.filters == {"version": 0} and export.row_count == 3
    chunks, _ = get_artifact_store().open(export.storage_path)
    path = tmp_path / "zero.jsonl"
    path.write_bytes(b"".join(chunks))
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 0 and "signed manifest matches" in out, out

"""A CSV export whose snapshots are longer than the csv module's default field limit
(131,072 characters) verifies; a line the csv module cannot read is a BROKEN report."""

from __future__ import annotations

import pytest
from django.db import transaction

from audit import export
from audit import services as audit_services
from tests.audit.commands import run_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def large_csv(tmp_path):
    with transaction.atomic():
        audit_services.record(
            action="model_card.update",
            object_type="model_card",
            object_id=1,
            after={"intended_use": "x" * 200_000},
        )
    path = tmp_path / "large.csv"
    assert run_command("export_audit", "--format", "csv", "-o", str(path))[0] == 0
    return path


def test_a_csv_with_a_200k_character_snapshot_verifies(large_csv):
    code, out = run_command("verify_audit", "--file", str(large_csv))
    assert code == 0 and "signed manifest matches" in out, out


def test_a_field_the_csv_module_refuses_is_a_broken_report(large_csv, monkeypatch):
    monkeypatch.setattr(export, "_csv_field_limit", lambda: 131_072)
    code, out = run_command("verify_audit", "--file", str(large_csv))
    assert code == 1 and out.startswith("BROKEN") and "not a readable export" in out, out

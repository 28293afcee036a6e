"""Every export ends with a signed manifest, so a file without one was cut or stripped: it
is BROKEN unless `--legacy` says it predates manifests."""

from __future__ import annotations

import json

import pytest

from audit import services as audit_services
from tests.audit.commands import run_command
from tracking import services as tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail():
    for i in range(6):
        tracking.experiment_create(name=f"stripped-{i}")
    audit_services.checkpoint_create()


def test_filtered_jsonl_stripped_of_its_manifest_and_a_row_is_broken(trail, tmp_path):
    path = tmp_path / "experiments.jsonl"
    run_command("export_audit", "--format", "jsonl", "--object-type", "experiment", "-o", str(path))
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1]).get("custody_audit_manifest")
    header = json.loads(lines[0])
    del header["custody_audit_export"]["manifest"]
    del header["custody_audit_export"]["checkpoints"]
    rows = lines[1:-1]
    del rows[2]
    path.write_text(json.dumps(header) + "\n" + "".join(rows))
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 1 and "BROKEN" in out and "no manifest" in out, out


def test_unfiltered_csv_cut_by_three_lines_is_broken(trail, tmp_path):
    path = tmp_path / "trail.csv"
    run_command("export_audit", "--format", "csv", "-o", str(path))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-3]), newline="")
    code, out = run_command("verify_audit", "--file", str(path))
    assert code == 1 and "no manifest" in out, out


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
@pytest.mark.parametrize("legacy", [[], ["--legacy"]])
def test_an_empty_file_is_broken(tmp_path, suffix, legacy):
    path = tmp_path / f"empty.{suffix}"
    path.write_text("")
    code, out = run_command("verify_audit", "--file", str(path), *legacy)
    assert code == 1 and "BROKEN" in out, out


def test_a_file_with_only_blank_lines_or_only_a_manifest_is_broken(trail, tmp_path):
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    assert run_command("verify_audit", "--file", str(blank), "--legacy")[0] == 1
    path = tmp_path / "trail.csv"
    run_command("export_audit", "--format", "csv", "-o", str(path))
    manifest_only = tmp_path / "manifest-only.csv"
    manifest_only.write_text(path.read_text().splitlines(keepends=True)[-1], newline="")
    code, out = run_command("verify_audit", "--file", str(manifest_only))
    assert code == 1 and "BROKEN" in out, out


def test_legacy_accepts_a_stripped_but_intact_file_with_the_warning(trail, tmp_path):
    path = tmp_path / "trail.csv"
    run_command("export_audit", "--format", "csv", "-o", str(path))
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), newline="")
    assert run_command("verify_audit", "--file", str(path))[0] == 1
    code, out = run_command("verify_audit", "--file", str(path), "--legacy")
    assert code == 0 and "no manifest: only per-row hashes checked" in out, out

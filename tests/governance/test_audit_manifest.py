"""A model's history exported from the audit page (a filtered export) carries a signed
manifest, so removing, reordering or editing a row of the file shows from the file alone."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from audit.chain import event_hash
from audit.export import csv_lines, parse_csv
from tests.personas import to_production_request

pytestmark = pytest.mark.django_db


def verify(path) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", "--file", str(path), stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


@pytest.fixture
def fraud_csv(people, fraud, tmp_path):
    to_production_request(people)
    people["alice"].mlflow("experiments/create", {"name": "noise-between-the-model-events"})
    browser = Client()
    browser.force_login(people["carl"].user)
    page = browser.get("/audit/", {"model": "fraud"})
    assert b"export=csv" in page.content
    response = browser.get("/api/v1/audit/events", {"model": "fraud", "export": "csv"})
    assert response.status_code == 200
    path = tmp_path / "fraud.csv"
    path.write_bytes(b"".join(response.streaming_content))
    return path


def rewrite(path, change) -> None:
    """Re-writes the rows as an editor would, keeping the manifest line as it was."""
    text = path.read_text(encoding="utf-8")
    manifest = text.splitlines(keepends=True)[-1]
    assert manifest.startswith("# custody-manifest ")
    rows = list(parse_csv(io.StringIO(text[: -len(manifest)], newline="")))
    rows = change(rows)
    path.write_text("".join(csv_lines(rows)) + manifest, encoding="utf-8", newline="")


def test_filtered_csv_verifies_with_its_manifest(fraud_csv):
    code, out = verify(fraud_csv)
    assert code == 0 and "signed manifest matches" in out, out
    manifest = json.loads(fraud_csv.read_text().splitlines()[-1][len("# custody-manifest ") :])
    assert manifest["filters"] == {"model": "fraud"} and manifest["contiguous"] is False
    assert manifest["count"] == len(fraud_csv.read_text().splitlines()) - 2 > 5


def test_deleting_a_row_is_detected(fraud_csv):
    rewrite(fraud_csv, lambda rows: rows[:2] + rows[3:])
    code, out = verify(fraud_csv)
    assert code == 1 and "rows were removed or added" in out, out


def test_deleting_the_last_row_is_detected(fraud_csv):
    rewrite(fraud_csv, lambda rows: rows[:-1])
    code, out = verify(fraud_csv)
    assert code == 1 and "rows were removed" in out, out


def test_swapping_two_rows_is_detected(fraud_csv):
    rewrite(fraud_csv, lambda rows: [rows[0], rows[2], rows[1], *rows[3:]])
    code, out = verify(fraud_csv)
    assert code == 1 and "out of order" in out, out


def test_editing_a_row_and_recomputing_its_hash_is_detected(fraud_csv):
    def forge(rows):
        rows[1]["actor_username"] = "someone-else"
        rows[1]["hash"] = event_hash(rows[1])
        return rows

    rewrite(fraud_csv, forge)
    code, out = verify(fraud_csv)
    assert code == 1 and "a row was edited" in out, out


def test_a_forged_manifest_is_detected(fraud_csv):
    lines = fraud_csv.read_text().splitlines(keepends=True)
    manifest = json.loads(lines[-1][len("# custody-manifest ") :])
    manifest["count"] -= 1
    rows = lines[:-1]
    del rows[3]
    fraud_csv.write_text(
        "".join(rows) + "# custody-manifest " + json.dumps(manifest) + "\r\n", newline=""
    )
    code, out = verify(fraud_csv)
    assert code == 1 and "signature is invalid" in out, out


def test_a_filtered_json_lines_export_is_signed_too(people, fraud, tmp_path):
    to_production_request(people)
    response = people["carl"].get("audit/events", {"model": "fraud", "export": "jsonl"})
    path = tmp_path / "fraud.jsonl"
    body = b"".join(response.streaming_content).decode()
    path.write_text(body)
    code, out = verify(path)
    assert code == 0 and "signed manifest matches" in out, out
    lines = body.splitlines(keepends=True)
    path.write_text("".join([*lines[:2], *lines[3:]]))
    code, out = verify(path)
    assert code == 1 and "rows were removed" in out, out
    header = json.loads(lines[0])
    header["custody_audit_export"]["filters"] = {"model": "other"}
    path.write_text("".join([json.dumps(header) + "\n", *lines[1:]]))
    code, out = verify(path)
    assert code == 1 and "header differs" in out, out


def test_a_row_replaced_by_another_valid_event_is_caught_by_the_manifest_digest_alone(
    people, fraud, tmp_path
):
    """Every row still hashes and the rows stay in order, the count and the first and last
    seq are unchanged: only the manifest's digest shows the replacement."""
    noise = people["alice"].mlflow("experiments/create", {"name": "between-the-model-events"})
    assert noise.status_code == 200
    to_production_request(people)
    carl = people["carl"]
    full = b"".join(carl.get("audit/events", {"export": "csv"}).streaming_content).decode()
    full = full[: full.rindex("# custody-manifest ")]  # the rows only
    (stranger,) = [
        r
        for r in parse_csv(io.StringIO(full, newline=""))
        if r["action"] == "experiment.create" and "between-the-model-events" in str(r["after"])
    ]
    response = carl.get("audit/events", {"model": "fraud", "export": "csv"})
    path = tmp_path / "fraud.csv"
    path.write_bytes(b"".join(response.streaming_content))

    def replace(rows):
        i = next(n for n, r in enumerate(rows) if r["seq"] > stranger["seq"])
        assert 0 < i < len(rows) - 1
        return [*rows[:i], stranger, *rows[i + 1 :]]

    rewrite(path, replace)
    code, out = verify(path)
    assert code == 1 and "the events differ from those the manifest signed" in out, out
    # Without the manifest the same file passes the per-row checks: only the manifest caught it.
    bare = tmp_path / "bare.csv"
    bare.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]), newline="")
    out = io.StringIO()
    call_command("verify_audit", "--file", str(bare), "--legacy", "--partial", stdout=out)
    assert out.getvalue().startswith("OK:"), out.getvalue()


def test_a_row_deleted_from_a_filtered_export_is_caught_by_the_manifest_count_alone(fraud_csv):
    rewrite(fraud_csv, lambda rows: rows[:2] + rows[3:])
    code, out = verify(fraud_csv)
    assert code == 1 and "the manifest lists" in out and "rows were removed or added" in out
    bare = fraud_csv.with_name("bare.csv")
    bare.write_text("".join(fraud_csv.read_text().splitlines(keepends=True)[:-1]), newline="")
    out = io.StringIO()
    call_command("verify_audit", "--file", str(bare), "--legacy", "--partial", stdout=out)
    assert out.getvalue().startswith("OK:"), out.getvalue()

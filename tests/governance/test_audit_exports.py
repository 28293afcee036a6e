"""Audit exports and pages for compliance officers: a background export written by the task
to the artifact store and downloaded, verified from the file alone; the audit page with
filters, export links and verification; the admin's export action; who may do what."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEvent
from governance.models import AuditExport
from tests.personas import to_production_request

pytestmark = pytest.mark.django_db


def signed_in(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_background_export_matches_the_stream_and_verifies_from_the_file(
    people,
    fraud,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    to_production_request(people)
    carl = people["carl"]
    with django_capture_on_commit_callbacks(execute=True):
        queued = carl.post("audit/exports", {"format": "csv"})
    assert queued.status_code == 202, queued.content
    export_id = queued.json()["id"]
    shown = carl.get(f"audit/exports/{export_id}").json()
    assert shown["status"] == "done" and shown["rows"] > 10
    assert shown["download"] == f"/api/v1/audit/exports/{export_id}/download"
    download = carl.client.get(shown["download"])
    body = b"".join(download.streaming_content)
    streamed = b"".join(
        carl.client.get("/api/v1/audit/events", {"export": "csv"}).streaming_content
    )
    # The same file but for when it was taken (the manifest's exported_at, and so its
    # signature): same rows, same chain head, same digest.
    *rows, manifest = body.splitlines(keepends=True)
    *streamed_rows, streamed_manifest = streamed.splitlines(keepends=True)
    assert rows == streamed_rows

    def stable(line: bytes) -> dict:
        fields = json.loads(line.decode().removeprefix("# custody-manifest "))
        return {k: v for k, v in fields.items() if k not in ("exported_at", "signature")}

    assert stable(manifest) == stable(streamed_manifest)
    import hashlib

    assert hashlib.sha256(body).hexdigest() == shown["sha256"] == download["X-Content-SHA256"]
    path = tmp_path / "export.csv"
    path.write_bytes(body)
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", "--file", str(path), stdout=out)
    assert out.getvalue().startswith("OK:")
    # Tampering with the downloaded file is detected from the file alone.
    path.write_bytes(body.replace(b"alice", b"mallory", 1))
    with pytest.raises(SystemExit):
        call_command("verify_audit", "--file", str(path), stdout=StringIO())
    # Re-running the task changes nothing (idempotent).
    from governance.tasks import run_audit_export

    run_audit_export(export_id)
    assert AuditExport.objects.get(pk=export_id).sha256 == shown["sha256"]


def test_exports_are_for_compliance_and_admins_only(people, fraud):
    alice = people["alice"]
    assert alice.post("audit/exports", {"format": "csv"}).status_code == 403
    export = AuditExport.objects.create(
        requested_by=people["carl"].user, format="csv", created_at="2026-01-01T00:00:00Z"
    )
    assert alice.get(f"audit/exports/{export.pk}/download").status_code == 403
    bad = people["carl"].post("audit/exports", {"format": "xml"})
    assert bad.status_code == 400
    not_yet = people["carl"].get(f"audit/exports/{export.pk}/download")
    assert not_yet.status_code == 400 and "queued" in not_yet.json()["error"]["message"]
    # The export file is not reachable through the artifact proxy.
    proxied = alice.client.get(f"/api/2.0/mlflow-artifacts/artifacts/audit-exports/{export.pk}.csv")
    assert proxied.status_code in (400, 403, 404)


def test_the_audit_page(people, fraud):
    to_production_request(people)
    carl = signed_in(people["carl"])
    page = carl.get("/audit/", {"model": "fraud"}).content.decode()
    assert "transition_request.create" in page and 'id="export-csv"' in page
    assert "/api/v1/audit/events?model=fraud&amp;export=csv" in page
    verified = carl.get("/audit/", {"verify": "1"}).content.decode()
    assert "The chain verifies" in verified
    bad = carl.get("/audit/", {"since": "last tuesday"}).content.decode()
    assert 'id="audit-error"' in bad and "ISO 8601" in bad
    assert signed_in(people["alice"]).get("/audit/").status_code == 403
    assert signed_in(people["rita"]).get("/audit/").status_code == 403
    queued = carl.post("/audit/", {"format": "jsonl", "model": "fraud"}, follow=True)
    assert "queued" in queued.content.decode()
    assert AuditExport.objects.get().filters == {"model": "fraud"}


def test_admin_shows_the_trail_read_only_with_an_export_action(people, fraud):
    from audit.models import AuditEvent

    carl = signed_in(people["carl"])
    changelist = carl.get("/admin/audit/auditevent/")
    assert changelist.status_code == 200
    event = AuditEvent.objects.order_by("seq").first()
    exported = carl.post(
        "/admin/audit/auditevent/",
        {"action": "export_csv", "_selected_action": [event.pk]},
    )
    assert exported.status_code == 200
    body = b"".join(exported.streaming_content).decode()
    lines = body.splitlines()
    assert lines[0].startswith("seq,") and len(lines) == 3
    assert lines[2].startswith("# custody-manifest ")
    change = carl.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"})
    assert change.status_code == 403
    assert carl.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_export_on_a_real_worker():
    import redis
    from celery.contrib.testing.worker import start_worker

    import governance.tasks  # noqa: F401  the in-process worker knows the tasks imported before it starts
    from accounts import services as accounts
    from config.celery import app
    from governance import exports
    from tests.registry.test_concurrency_and_worker import _reset_producers

    url = "redis://127.0.0.1:6379/14"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("needs Redis on 127.0.0.1:6379 (make test starts it; CI has it)")
    previous = dict(app.conf)
    app.conf.update(task_always_eager=False, broker_url=url, result_backend=url)
    _reset_producers(app)
    try:
        carl = accounts.user_create(username="carl", role="compliance")
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            export = exports.export_create(user=carl, filters={}, fmt="jsonl")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                export.refresh_from_db()
                if export.status in ("done", "failed"):
                    break
                time.sleep(0.2)
        assert export.status == "done", export.error
        from core.storage import get_artifact_store

        assert get_artifact_store().is_file(export.storage_path)
    finally:
        app.conf.update(
            task_always_eager=previous["task_always_eager"],
            broker_url=previous["broker_url"],
            result_backend=previous["result_backend"],
        )
        _reset_producers(app)


def test_an_events_before_and_after_side_by_side(people, fraud):
    people["admin"].put("models/fraud/policy", {"production_approvals": 2})
    event = AuditEvent.objects.filter(action="policy.update").latest("seq")
    carl = signed_in(people["carl"])
    listed = carl.get("/audit/", {"action": "policy."}).content.decode()
    assert f'href="/audit/events/{event.seq}/"' in listed
    page = carl.get(f"/audit/events/{event.seq}/").content.decode()
    table = page.split('id="before-after"')[1].split("</table>")[0]
    row = table.split('data-field="production_approvals"')[1].split("</tr>")[0]
    assert 'class="differs"' in table.split('data-field="production_approvals"')[0][-40:]
    assert "<pre>1</pre>" in row and "<pre>2</pre>" in row
    unchanged = table.split('data-field="staging_approvals"')[0][-40:]
    assert "differs" not in unchanged
    assert "boss" in page and "policy.update" in page
    assert carl.get("/audit/events/999999/").status_code == 404
    assert signed_in(people["alice"]).get(f"/audit/events/{event.seq}/").status_code == 403


def test_the_audit_page_says_how_to_get_signed_checkpoints(people, fraud):
    carl = signed_in(people["carl"])
    page = carl.get("/audit/").content.decode()
    status = page.split('id="checkpoints"')[1].split("</div>")[0]
    assert "No signed checkpoints yet." in status and "make beat" in status
    assert "manage.py audit_checkpoint" in status
    out = StringIO()
    call_command("audit_checkpoint", stdout=out)
    assert out.getvalue().startswith("Checkpoint #")
    signed = carl.get("/audit/").content.decode().split('id="checkpoints"')[1].split("</div>")[0]
    assert "Signed checkpoints: 1" in signed and 'id="checkpoint-hint"' not in signed
    # Date pickers take what they send (a datetime-local value, read as UTC).
    picked = carl.get("/audit/", {"since": "2020-01-01T00:00", "until": "2099-01-01T00:00:00Z"})
    html = picked.content.decode()
    assert 'type="datetime-local"' in html and 'value="2099-01-01T00:00:00"' in html
    assert 'id="audit-error"' not in html
    assert 'href="/audit/events/' in html  # events in the range are listed

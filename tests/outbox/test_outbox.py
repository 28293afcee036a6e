"""The transactional outbox: jobs commit or roll back with their change, a broker outage
delays the work but never the answer, the relay sends what is due (never twice at once), and
a job is run to completion once however often it is delivered."""

from __future__ import annotations

import socket
import time
from contextlib import contextmanager
from datetime import timedelta

import pytest
from celery import shared_task
from django.db import transaction
from django.utils import timezone

from governance.models import AuditExport
from outbox import services as outbox
from outbox.models import OutboxJob
from outbox.tasks import OutboxTask
from registry.models import ModelVersion
from tests.conftest import set_open_policy
from tests.personas import FULL_CARD, to_production_request

pytestmark = pytest.mark.django_db

RUNS: list[dict] = []


@shared_task(name="tests.outbox.record", base=OutboxTask)
def record(**kwargs) -> None:
    RUNS.append(kwargs)


@shared_task(name="tests.outbox.fail", base=OutboxTask)
def fail(**kwargs) -> None:
    raise RuntimeError("boom")


@pytest.fixture(autouse=True)
def eager():
    from config.celery import app

    assert app.conf.task_always_eager, "the suite runs Celery eagerly unless a test says so"
    RUNS.clear()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def broker_down():
    """Celery as in production (not eager), on a Redis URL where nothing listens."""
    from config.celery import app

    previous = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=f"redis://127.0.0.1:{_free_port()}/0")
    reset_broker_connections(app)
    try:
        yield
    finally:
        app.conf.update(previous)
        reset_broker_connections(app)


def reset_broker_connections(app) -> None:
    """Drop the cached connection and producer pools so that the next message goes to the
    broker configured now. (Not app.close(): that also unregisters the app, and tasks
    imported afterwards would no longer register with it.)"""
    app._pool = None
    app.amqp._producer_pool = None


def enqueue(task: str, **kwargs) -> OutboxJob:
    with transaction.atomic():
        return outbox.enqueue(task, **kwargs)


@pytest.mark.django_db(transaction=True)
def test_enqueue_belongs_to_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox.enqueue("tests.outbox.record", n=1)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        outbox.enqueue("tests.outbox.record", n=1)
        1 / 0  # noqa: B018 - the change fails after the job was written
    assert not OutboxJob.objects.exists() and RUNS == []
    with transaction.atomic():
        job = outbox.enqueue("tests.outbox.record", n=2)
        assert RUNS == []  # nothing runs before the commit
    job.refresh_from_db()
    assert RUNS == [{"n": 2}] and job.done_at is not None and job.attempts == 1


def test_a_job_runs_once_however_often_it_is_delivered(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.outbox.record", n=1)
    assert RUNS == [{"n": 1}]
    # A redelivered message, a relay that re-sent it: the job is done, nothing runs again.
    record.apply(kwargs={"n": 1, "outbox_job_id": job.pk})
    assert outbox.dispatch(job.pk) is False and outbox.relay() == 0
    assert RUNS == [{"n": 1}]
    record(n=3)  # called directly (no job): a plain task
    assert RUNS[-1] == {"n": 3}


def test_a_failed_job_backs_off_and_is_given_up_after_max_attempts(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.outbox.fail")
    job.refresh_from_db()
    assert job.done_at is None and job.attempts == 1
    assert job.last_error == "RuntimeError: boom"
    assert job.available_at > timezone.now() + timedelta(seconds=20)  # 30 s back-off
    assert outbox.relay() == 0  # not due yet
    OutboxJob.objects.filter(pk=job.pk).update(available_at=timezone.now())
    assert outbox.relay() == 1
    job.refresh_from_db()
    assert job.attempts == 2 and job.available_at > timezone.now() + timedelta(seconds=50)
    OutboxJob.objects.filter(pk=job.pk).update(
        available_at=timezone.now(), attempts=outbox.MAX_ATTEMPTS
    )
    assert outbox.relay() == 0


def test_a_dispatched_job_not_done_by_the_end_of_its_lease_is_sent_again(
    django_capture_on_commit_callbacks,
):
    """A message lost with the broker's data or a killed worker: the relay sends it again."""
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.outbox.record", n=1)
    # As if the message had been sent and then lost.
    sent = timezone.now() - timedelta(minutes=5)
    OutboxJob.objects.filter(pk=job.pk).update(
        attempts=1, dispatched_at=sent, available_at=sent + timedelta(seconds=40)
    )
    assert outbox.relay() == 1
    job.refresh_from_db()
    assert RUNS == [{"n": 1}] and job.done_at is not None and job.attempts == 2


def test_the_lease_is_the_task_time_limit_plus_a_margin():
    assert outbox.lease_seconds("registry.archive_superseded_versions") == 30 + 10
    assert outbox.lease_seconds("tests.outbox.record") == 600 + 10  # CELERY_TASK_TIME_LIMIT


def test_dedupe_key_keeps_one_pending_job(django_capture_on_commit_callbacks):
    first = enqueue("tests.outbox.record", countdown=60, dedupe_key="k", n=1)
    again = enqueue("tests.outbox.record", countdown=60, dedupe_key="k", n=2)
    assert again.pk == first.pk and OutboxJob.objects.count() == 1
    OutboxJob.objects.filter(pk=first.pk).update(available_at=timezone.now())
    assert outbox.relay() == 1 and RUNS == [{"n": 1}]
    # Once done, the key is free again.
    assert enqueue("tests.outbox.record", countdown=60, dedupe_key="k", n=3).pk != first.pk


def test_an_unknown_task_is_recorded_not_sent(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.outbox.no-such-task")
    job.refresh_from_db()
    assert "no task named" in job.last_error and job.done_at is None


def test_a_countdown_job_waits_for_the_relay(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue("tests.outbox.record", countdown=3600, n=1)
    assert RUNS == [] and outbox.relay() == 0
    OutboxJob.objects.filter(pk=job.pk).update(available_at=timezone.now())
    assert outbox.relay() == 1 and RUNS == [{"n": 1}]


# --- through HTTP, with the broker down -------------------------------------------------------


def stage(version: int) -> str:
    return ModelVersion.objects.get(registered_model__name="fraud", version=version).current_stage


def test_with_the_broker_down_a_promotion_an_approval_and_an_export_answer_as_usual(
    people, fraud, django_capture_on_commit_callbacks
):
    alice, rita, carl = people["alice"], people["rita"], people["carl"]
    request_id = to_production_request(people, version=1)
    assert alice.put("models/fraud/versions/1/card", FULL_CARD).status_code == 200
    assert alice.transition(2, "Staging").status_code == 200
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        started = time.monotonic()
        approved = rita.post(f"transition-requests/{request_id}/approve", {"comment": "ok"})
        queued = carl.post("audit/exports", {"format": "jsonl"})
        elapsed = time.monotonic() - started
    assert approved.status_code == 200, approved.content
    assert approved.json()["applied"] is True
    assert queued.status_code == 202, queued.content
    assert elapsed < 10, f"the outage held the answers for {elapsed:.1f} s"
    assert stage(1) == "Production"
    jobs = {j.task: j for j in OutboxJob.objects.all()}
    assert set(jobs) == {"registry.archive_superseded_versions", "governance.run_audit_export"}
    for job in jobs.values():
        assert job.done_at is None and job.attempts == 0 and job.dispatched_at is None
        assert job.last_error.startswith("broker:")
    export = AuditExport.objects.get(pk=queued.json()["id"])
    assert export.status == "queued"

    # The broker is back (eager here): the relay's next run does the work.
    assert outbox.relay() == 2
    assert not OutboxJob.objects.filter(done_at__isnull=True).exists()
    export.refresh_from_db()
    assert export.status == "done" and export.row_count > 5


def test_with_the_broker_down_a_direct_promotion_answers_200(
    people, fraud, django_capture_on_commit_callbacks
):
    set_open_policy("fraud")
    alice = people["alice"]
    assert alice.transition(1, "Staging").status_code == 200
    assert alice.transition(2, "Staging").status_code == 200
    with broker_down(), django_capture_on_commit_callbacks(execute=True):
        promoted = alice.transition(2, "Production")
    assert promoted.status_code == 200, promoted.content
    assert (stage(1), stage(2)) == ("Staging", "Production")
    assert outbox.relay() == 1
    assert (stage(1), stage(2)) == ("Archived", "Production")


def test_administrators_see_the_jobs_read_only(people):
    from django.test import Client

    enqueue("tests.outbox.record", countdown=60, n=1)
    admin, reviewer = Client(), Client()
    admin.force_login(people["admin"].user)
    reviewer.force_login(people["rita"].user)
    listing = admin.get("/admin/outbox/outboxjob/")
    assert listing.status_code == 200 and b"tests.outbox.record" in listing.content
    assert admin.get("/admin/outbox/outboxjob/add/").status_code == 403
    assert reviewer.get("/admin/outbox/outboxjob/").status_code in (302, 403)

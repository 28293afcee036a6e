"""The transactional outbox: `enqueue` writes a job in the caller's transaction; after the
commit `dispatch` hands it to Celery, and the periodic `relay` hands over whatever is still
due (never sent because the broker was down, or sent but not done by the end of its lease).

A broker outage therefore delays the work, never the answer, and loses nothing: the caller
has already committed and its on-commit dispatch logs the broker error and returns. Tasks
run through `outbox.tasks.OutboxTask`, which is idempotent per job (a job done once is not
run again) and marks the job done; see docs/operations.md, "Failures and recovery"."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core import task_context
from core.context import current as current_context
from outbox.models import OutboxJob

logger = logging.getLogger(__name__)

# The id of the request that wrote a job, kept in its kwargs and sent as a message header
# (core.task_context) rather than as an argument of the task.
REQUEST_ID_KWARG = "_request_id"

# The relay leaves a job alone after this many deliveries; the admin shows it with its error.
MAX_ATTEMPTS = 10
# Leases are the task's hard time limit plus this margin; see `lease_seconds`.
LEASE_MARGIN_SECONDS = 10
# After a task failed: 30 s, 1 min, 2 min ... at most an hour before the next delivery.
BACKOFF_BASE_SECONDS = 30
BACKOFF_MAX_SECONDS = 3600


def _app():
    from config.celery import app

    return app


def _task(name: str):
    """The registered task, or None. The web process has not imported the apps' tasks
    modules (workers do at start): the first lookup runs Celery's autodiscovery."""
    app = _app()
    task = app.tasks.get(name)
    if task is None:
        app.autodiscover_tasks(force=True)
        task = app.tasks.get(name)
    return task


def enqueue(task_name: str, /, *, countdown: float = 0, dedupe_key: str = "", **kwargs):
    """Record that `task_name(**kwargs)` must run once the current transaction commits
    (after `countdown` seconds). Must be called inside that transaction: the job commits or
    rolls back with the change. kwargs must be JSON (ids, never model instances).

    With `dedupe_key`, a job with the same key that is still pending is returned instead
    of writing a second one."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "outbox.enqueue() must be called inside the transaction of the change it follows"
        )
    now = timezone.now()
    request_id = current_context().request_id
    if request_id:
        kwargs = {**kwargs, REQUEST_ID_KWARG: request_id}
    if dedupe_key:
        pending = OutboxJob.objects.filter(dedupe_key=dedupe_key, done_at__isnull=True).first()
        if pending is not None:
            return pending
    fields = {
        "task": task_name,
        "kwargs": kwargs,
        "dedupe_key": dedupe_key,
        "created_at": now,
        "available_at": now + timedelta(seconds=max(0.0, countdown)),
    }
    if dedupe_key:
        try:
            with transaction.atomic():
                job = OutboxJob.objects.create(**fields)
        except IntegrityError:
            # A concurrent transaction wrote the same key first (PostgreSQL made us wait for
            # its commit): that job is the one.
            return OutboxJob.objects.get(dedupe_key=dedupe_key, done_at__isnull=True)
    else:
        job = OutboxJob.objects.create(**fields)
    if countdown <= 0:
        job_id = job.pk
        # robust: whatever happens in the hand-over, the committed change is not reported as
        # a failure; the relay retries.
        transaction.on_commit(lambda: dispatch(job_id), robust=True)
    return job


def lease_seconds(task_name: str) -> int:
    """How long a dispatched job may stay not done before the relay sends it again: the
    task's hard time limit (or the global one) plus a margin. Lost messages, a killed worker
    and a broker that lost its data all end with the lease."""
    task = _task(task_name)
    limit = getattr(task, "time_limit", None) or settings.CELERY_TASK_TIME_LIMIT
    return int(limit) + LEASE_MARGIN_SECONDS


def dispatch(job_id: int) -> bool:
    """Hand one due job to Celery; True when sent. Claims the job first with a conditional
    UPDATE (compare-and-set on available_at), so the on-commit dispatch and any number of
    relays never send it twice at once. A broker error is logged and recorded on the job,
    which the relay sends again on its next run."""
    now = timezone.now()
    job = OutboxJob.objects.filter(pk=job_id, done_at__isnull=True).first()
    if job is None or job.available_at > now or job.attempts >= MAX_ATTEMPTS:
        return False
    claimed = OutboxJob.objects.filter(
        pk=job.pk, done_at__isnull=True, available_at=job.available_at
    ).update(
        available_at=now + timedelta(seconds=lease_seconds(job.task)),
        dispatched_at=now,
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return False  # another dispatcher got it, or it finished meanwhile
    task = _task(job.task)
    if task is None:
        _record_error(job.pk, f"no task named {job.task!r} is registered", retry_in=300)
        logger.error("outbox job %s names an unknown task %r", job.pk, job.task)
        return False
    eager = bool(_app().conf.task_always_eager)
    try:
        if not eager:
            _check_broker()
        kwargs = dict(job.kwargs)
        request_id = kwargs.pop(REQUEST_ID_KWARG, "")
        task.apply_async(
            kwargs={**kwargs, "outbox_job_id": job.pk},
            headers={task_context.HEADER: request_id} if request_id else None,
            ignore_result=True,
            # One quick attempt: the relay is the retry, and the caller is waiting for its
            # answer (the change itself has committed).
            retry=False,
        )
    except Exception as exc:  # noqa: BLE001 - broker errors are many types; all mean "later"
        if eager:
            # The task ran in-process and failed; OutboxTask recorded the error.
            logger.warning(
                "outbox job %s (%s) failed in-process: %r", job.pk, job.task, exc, exc_info=True
            )
            return True
        # Never sent: hand the attempt back so that an outage does not use up attempts.
        OutboxJob.objects.filter(pk=job.pk, done_at__isnull=True).update(
            available_at=now,
            dispatched_at=None,
            attempts=F("attempts") - 1,
            last_error=f"broker: {exc!r}"[:2000],
        )
        logger.warning(
            "outbox job %s (%s) not sent, the relay will retry: %r", job.pk, job.task, exc
        )
        return False
    return True


_broker_down_until = 0.0


def _check_broker() -> None:
    """Fail fast when a Redis broker is down. kombu's publish goes through redis-py, which
    retries a refused connection with back-off for about 6 s: a request that just committed
    would wait that long for its answer. One ping without retries (1 s timeouts) instead, and
    for a second after a failed ping every dispatch is answered "later" at once."""
    global _broker_down_until
    url = str(_app().conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://")):
        return
    if time.monotonic() < _broker_down_until:
        raise ConnectionError("the broker was unreachable a moment ago")
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.RedisError:
        _broker_down_until = time.monotonic() + 1.0
        raise
    finally:
        client.close()


def relay(*, limit: int = 200) -> int:
    """Send every due job (oldest first); answers how many were sent. Run by beat every few
    seconds (outbox.relay); safe to run concurrently with itself and with dispatch."""
    due = list(
        OutboxJob.objects.filter(
            done_at__isnull=True, available_at__lte=timezone.now(), attempts__lt=MAX_ATTEMPTS
        )
        .order_by("available_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(dispatch(job_id) for job_id in due)


def job_started(job_id: int, task_name: str) -> bool:
    """Called by the task as it starts: False when the job is done already (a duplicate
    delivery), else renews the lease from now."""
    now = timezone.now()
    return bool(
        OutboxJob.objects.filter(pk=job_id, done_at__isnull=True).update(
            started_at=now, available_at=now + timedelta(seconds=lease_seconds(task_name))
        )
    )


def job_done(job_id: int) -> None:
    OutboxJob.objects.filter(pk=job_id, done_at__isnull=True).update(
        done_at=timezone.now(), last_error=""
    )


def job_failed(job_id: int, error: str) -> None:
    job = OutboxJob.objects.filter(pk=job_id, done_at__isnull=True).first()
    if job is None:
        return
    backoff = min(BACKOFF_BASE_SECONDS * 2 ** max(0, job.attempts - 1), BACKOFF_MAX_SECONDS)
    _record_error(job_id, error, retry_in=backoff)


def _record_error(job_id: int, error: str, *, retry_in: float) -> None:
    OutboxJob.objects.filter(pk=job_id, done_at__isnull=True).update(
        last_error=error[:2000], available_at=timezone.now() + timedelta(seconds=retry_in)
    )

"""The request id travels with the Celery tasks a request causes: sent as a message header
(`custody_request_id`), it becomes the task's request context, so the task's log lines and
the audit events it writes (archiving after a promotion, an export) carry the id of the
request that asked for them. Task outcomes are counted for /metrics here as well."""

from __future__ import annotations

from celery import signals

from core import context

HEADER = "custody_request_id"


def _on_publish(headers=None, **_) -> None:
    request_id = context.current().request_id
    if headers is not None and request_id and not headers.get(HEADER):
        headers[HEADER] = request_id


def _on_prerun(task=None, **_) -> None:
    request = task.request
    request_id = getattr(request, HEADER, None) or (request.headers or {}).get(HEADER)
    if request_id:
        # Eager tasks run inside their request and already have its context.
        task._custody_context_token = context.set_context(
            context.RequestContext(request_id=request_id)
        )


def _on_postrun(task=None, **_) -> None:
    token = getattr(task, "_custody_context_token", None)
    if token is not None:
        task._custody_context_token = None
        context.reset_context(token)


def _count(outcome: str):
    def counted(sender=None, **_) -> None:
        from core.observability import CELERY_TASKS

        CELERY_TASKS.labels(getattr(sender, "name", str(sender)), outcome).inc()

    return counted


_count_success, _count_failure, _count_retry = (
    _count("success"),
    _count("failure"),
    _count("retry"),
)


def connect() -> None:
    signals.before_task_publish.connect(_on_publish, weak=False)
    signals.task_prerun.connect(_on_prerun, weak=False)
    signals.task_postrun.connect(_on_postrun, weak=False)
    signals.task_success.connect(_count_success, weak=False)
    signals.task_failure.connect(_count_failure, weak=False)
    signals.task_retry.connect(_count_retry, weak=False)

"""The base class of tasks fed by the outbox, and the periodic relay."""

from __future__ import annotations

from celery import Task, shared_task
from celery.exceptions import Retry

from outbox import services


class OutboxTask(Task):
    """A task handed over by the outbox receives `outbox_job_id` besides its own kwargs. A
    delivery of a job that is already done does nothing (redelivered or re-sent messages);
    success marks the job done; a failure records the error and when to try again. Called
    without `outbox_job_id` (directly, or by the reconciler) it is a plain task."""

    # apply_async would check the kwargs against the task function, which does not take
    # `outbox_job_id`; __call__ takes it off.
    typing = False

    def __call__(self, *args, outbox_job_id: int | None = None, **kwargs):
        if outbox_job_id is not None:
            if not services.job_started(outbox_job_id, self.name):
                return None
            # Kept on the request so that a retry (autoretry_for) carries it along.
            self.push_request(outbox_job_id=outbox_job_id)
            try:
                result = super().__call__(*args, **kwargs)
            except Retry:
                raise  # the retried message carries the job along
            except Exception as exc:
                # Here rather than in on_failure, which eager mode (propagating) skips.
                services.job_failed(outbox_job_id, f"{type(exc).__name__}: {exc}")
                raise
            finally:
                self.pop_request()
            services.job_done(outbox_job_id)
            return result
        return super().__call__(*args, **kwargs)

    def retry(self, args=None, kwargs=None, *rest, **options):
        job_id = getattr(self.request, "outbox_job_id", None)
        if job_id is not None:
            kwargs = {**(self.request.kwargs if kwargs is None else kwargs)}
            kwargs["outbox_job_id"] = job_id
        return super().retry(args, kwargs, *rest, **options)


@shared_task(name="outbox.relay", time_limit=60, soft_time_limit=50, ignore_result=True)
def relay() -> int:
    """Beat runs this every few seconds (CELERY_BEAT_SCHEDULE["outbox-relay"])."""
    return services.relay()

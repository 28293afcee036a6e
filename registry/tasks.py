"""Celery tasks: load by id, call a service. Both are idempotent, so a retried or duplicated
delivery changes nothing the first one did not."""

from __future__ import annotations

from celery import shared_task

from outbox.tasks import OutboxTask
from registry import services
from registry.models import ModelVersion
from registry.transitions import Stage


@shared_task(
    name="registry.archive_superseded_versions",
    base=OutboxTask,
    # A few row updates: a short limit keeps the outbox lease (limit + 10 s) short, so a job
    # lost with a killed worker is sent again within a minute.
    time_limit=30,
    soft_time_limit=25,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
    acks_late=True,
)
def archive_superseded_versions(registered_model_id: int, production_version_id: int) -> list:
    return services.archive_superseded(
        registered_model_id=registered_model_id, production_version_id=production_version_id
    )


@shared_task(
    name="registry.reconcile_superseded_versions",
    acks_late=True,
    time_limit=120,
    soft_time_limit=110,
)
def reconcile_superseded_versions() -> dict:
    """Whatever a lost task left behind: archive superseded Staging versions of every model
    that has a Production version."""
    done = {}
    for model_id, version_id in ModelVersion.objects.filter(
        current_stage=Stage.PRODUCTION, deleted=False
    ).values_list("registered_model_id", "pk"):
        archived = services.archive_superseded(
            registered_model_id=model_id, production_version_id=version_id
        )
        if archived:
            done[model_id] = archived
    return done

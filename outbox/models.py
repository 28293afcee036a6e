"""A job that must follow a committed change (archiving, exports, later webhooks and audit
anchoring), written in the change's own transaction and handed to Celery by the relay."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxJob(models.Model):
    # The Celery task name, e.g. "registry.archive_superseded_versions".
    task = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    # Optional: at most one pending job per key (enqueue returns the pending one).
    dedupe_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # When the relay may next hand the job to Celery: the first time, then again whenever a
    # dispatched job is not done by the end of its lease (lost message, killed worker,
    # failure after back-off).
    available_at = models.DateTimeField(default=timezone.now)
    # Times handed to Celery (a broker that refused the message does not count).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["available_at"],
                condition=Q(done_at__isnull=True),
                name="outbox_pending_by_time",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(done_at__isnull=True) & ~Q(dedupe_key=""),
                name="outbox_one_pending_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.task} #{self.pk}"

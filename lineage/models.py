"""Declared links: the edges a client cannot send through MLflow (e.g. a dataset built from
another, a run that used a model trained elsewhere). Everything else is read from what the
tracking and registry tables already hold."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class LineageLink(models.Model):
    source = models.CharField(max_length=600)
    target = models.CharField(max_length=600)
    kind = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "target", "kind"], name="uniq_lineage_link")
        ]
        indexes = [
            models.Index(fields=["source"], name="lineage_link_source_idx"),
            models.Index(fields=["target"], name="lineage_link_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} -[{self.kind}]-> {self.target}"

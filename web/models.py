"""What the web UI remembers for a user: the runs-table columns and grouping chosen per
experiment."""

from __future__ import annotations

import struct

from django.conf import settings
from django.db import models

MAX_SAVED_COLUMNS = 60
POINT = struct.Struct("<qdq")  # a kept chart's point: step, value, timestamp


class SavedRunColumns(models.Model):
    """The columns a user last chose for one experiment's runs table ("metrics.val_auc", ...)
    and the param or tag the table is grouped by ("params.lr"; empty: not grouped). Kept until
    they choose again or reset; deleted with the user or the experiment."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    experiment = models.ForeignKey("tracking.Experiment", on_delete=models.CASCADE)
    columns = models.JSONField(default=list)
    group_by = models.CharField(max_length=260, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "experiment"], name="uniq_saved_run_columns")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} @ experiment {self.experiment_id}: {len(self.columns)} columns"


class MetricChart(models.Model):
    """A metric history as a chart draws it (`web.charts`: at most `max_points` points in
    logging order, the last included), kept so that a page with a long history does not read
    every point again. Valid while the key's LatestMetric.history_version is the one it was
    sampled at: that version only rises, in the statement that stores new points, and it is
    read before the history is, so a chart is never older than the history at its version.
    Derived data: rebuilt on demand, deleted with the run."""

    run = models.ForeignKey("tracking.Run", on_delete=models.CASCADE)
    key = models.CharField(max_length=250)
    max_points = models.PositiveIntegerField()
    history_version = models.BigIntegerField()
    sampled = models.BigIntegerField(default=0)  # the non-NaN points the sample was taken from
    # (step, value, timestamp) per point in logging order, packed as POINT (a value may be
    # infinite, which JSON cannot hold).
    points = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key", "max_points"], name="uniq_metric_chart")
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.key} ({len(self.points) // POINT.size} points)"

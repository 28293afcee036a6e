"""What the web UI remembers for a user: the runs-table columns and grouping chosen per
experiment."""

from __future__ import annotations

from django.conf import settings
from django.db import models

MAX_SAVED_COLUMNS = 60


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

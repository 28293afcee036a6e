"""Metric charts for the pages: histories sampled in the database, and the same as text for
screen readers. Used by the run, compare and experiment-chart pages and the review screen."""

from __future__ import annotations

from django.db.models import BigIntegerField, Count, ExpressionWrapper, F, Q, Window
from django.db.models.functions import Mod, RowNumber

from tracking.models import Metric

MAX_CHART_POINTS = 2000


def histories(
    run_ids: list[str], keys: list[str] | None = None, max_points: int = MAX_CHART_POINTS
) -> dict[str, dict[str, list]]:
    """{metric key: {run id: [[step, value, timestamp], ...]}}, sampled in the database. A series of n
    points sends every ceil(n / MAX_CHART_POINTS)-th point in logging order (timestamp, then
    step: the order of the (run, key, timestamp, step) unique index, so no sort of the whole
    history), its first point included, plus its last point: at most MAX_CHART_POINTS + 1 per
    series, however long the history and however many points share a step."""
    partition = [F("run_id"), F("key")]
    qs = Metric.objects.filter(run_id__in=run_ids, is_nan=False)
    if keys is not None:
        qs = qs.filter(key__in=keys)
    qs = (
        qs.annotate(
            position=Window(
                RowNumber(), partition_by=partition, order_by=[F("timestamp"), F("step")]
            ),
            total=Window(Count("id"), partition_by=partition),
        )
        .annotate(
            stride=ExpressionWrapper(
                (F("total") + (max_points - 1)) / max_points,
                output_field=BigIntegerField(),
            )
        )
        .annotate(offset=Mod(F("position") - 1, F("stride"), output_field=BigIntegerField()))
        .filter(Q(offset=0) | Q(position=F("total")))
    )
    series: dict[str, dict[str, list]] = {}
    for run_id, key, step, timestamp, value in qs.values_list(
        "run_id", "key", "step", "timestamp", "value"
    ):
        series.setdefault(key, {}).setdefault(run_id, []).append((step, timestamp, value))
    return {
        key: {
            run_id: [[step, value, timestamp] for step, timestamp, value in sorted(points)]
            for run_id, points in sorted(runs.items())
        }
        for key, runs in sorted(series.items())
    }


def chart_summary(chart_data: dict, names: dict[str, str]) -> list[dict]:
    """The charts as text (for screen readers): per metric and run, the points drawn and the
    first, last, lowest and highest value."""
    rows = []
    for key, runs in sorted(chart_data.items()):
        for run_id, points in runs.items():
            if not points:
                continue
            values = [p[1] for p in points]
            rows.append(
                {
                    "key": key,
                    "run": names.get(run_id, run_id),
                    "points": len(points),
                    "first": points[0],
                    "last": points[-1],
                    "min": min(values),
                    "max": max(values),
                }
            )
    return rows

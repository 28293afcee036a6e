"""Metric charts for the pages: histories sampled in the database, and the same as text for
screen readers. Used by the run, compare and experiment-chart pages and the review screen."""

from __future__ import annotations

import struct

from django.db import DatabaseError, transaction
from django.db.models import BigIntegerField, Count, ExpressionWrapper, F, Q, Window
from django.db.models.functions import Mod, RowNumber

from tracking.models import LatestMetric, Metric
from web.models import MetricChart

MAX_CHART_POINTS = 2000
POINT = struct.Struct("<qdq")  # a stored chart's point: step, value, timestamp


def resolution(max_points: int) -> int:
    """The chart size kept for a request of at most `max_points` per series: MAX_CHART_POINTS
    halved until it fits, so that pages asking for 1,818 or 1,666 points share one kept chart."""
    size = MAX_CHART_POINTS
    while size > max_points and size > 1:
        size //= 2
    return min(size, max_points)


def histories(
    run_ids: list[str], keys: list[str] | None = None, max_points: int = MAX_CHART_POINTS
) -> dict[str, dict[str, list]]:
    """{metric key: {run id: [[step, value, timestamp], ...]}} in step order, at most
    `max_points` (+1) per series (see `_sample`). A series comes from its kept MetricChart
    while the key's history_version is the one it was sampled at; the others are sampled
    from the history in one query and kept. A page showing a long finished run thus reads
    two small rows per series instead of its whole history."""
    size = resolution(max_points)
    latest = LatestMetric.objects.filter(run_id__in=run_ids)
    kept = MetricChart.objects.filter(run_id__in=run_ids, max_points=size)
    if keys is not None:
        latest, kept = latest.filter(key__in=keys), kept.filter(key__in=keys)
    # The versions first: a chart sampled after reading them holds at least their points.
    versions = {
        (run_id, key): version
        for run_id, key, version in latest.values_list("run_id", "key", "history_version")
    }
    charts: dict[tuple[str, str], list] = {}
    for run_id, key, version, points in kept.values_list(
        "run_id", "key", "history_version", "points"
    ):
        if versions.get((run_id, key)) == version:
            charts[(run_id, key)] = [[s, v, t] for s, v, t in POINT.iter_unpack(points)]
    stale = [pair for pair in versions if pair not in charts]
    if stale:
        sampled = _sample(stale, size)
        charts.update(sampled)
        _keep(sampled, versions, size)
    series: dict[str, dict[str, list]] = {}
    for (run_id, key), points in sorted(charts.items(), key=lambda item: item[0][::-1]):
        if points:
            series.setdefault(key, {})[run_id] = points
    return series


def _sample(pairs: list[tuple[str, str]], max_points: int) -> dict[tuple[str, str], list]:
    """These (run, key) histories sampled in the database. A series of n points keeps every
    ceil(n / max_points)-th point in logging order (timestamp, then step: the order of the
    (run, key, timestamp, step) unique index, so no sort of the whole history), its first
    point included, plus its last point: at most max_points + 1 per series, however long the
    history and however many points share a step. NaN points are left out."""
    partition = [F("run_id"), F("key")]
    wanted = set(pairs)
    qs = Metric.objects.filter(
        run_id__in={run_id for run_id, _ in pairs},
        key__in={key for _, key in pairs},
        is_nan=False,
    )
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
    found: dict[tuple[str, str], list] = {pair: [] for pair in pairs}
    for run_id, key, step, timestamp, value in qs.values_list(
        "run_id", "key", "step", "timestamp", "value"
    ):
        if (run_id, key) in wanted:
            found[(run_id, key)].append((step, timestamp, value))
    return {
        pair: [[step, value, timestamp] for step, timestamp, value in sorted(points)]
        for pair, points in found.items()
    }


def _keep(sampled: dict[tuple[str, str], list], versions: dict, size: int) -> None:
    """Store freshly sampled charts. Best effort: a run deleted meanwhile, or a concurrent
    page storing the same chart, costs only the keeping, never the page."""
    rows = [
        MetricChart(
            run_id=run_id,
            key=key,
            max_points=size,
            history_version=versions[(run_id, key)],
            points=b"".join(POINT.pack(s, v, t) for s, v, t in points),
        )
        for (run_id, key), points in sampled.items()
    ]
    try:
        with transaction.atomic():
            MetricChart.objects.bulk_create(
                rows,
                batch_size=200,
                update_conflicts=True,
                unique_fields=["run", "key", "max_points"],
                update_fields=["history_version", "points"],
            )
    except DatabaseError:
        pass


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

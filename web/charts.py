"""Metric charts for the pages: histories sampled in the database, and the same as text for
screen readers. Used by the run, compare and experiment-chart pages and the review screen."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.db.models import BigIntegerField, Count, ExpressionWrapper, F, Q, Window
from django.db.models.functions import Mod, RowNumber

from tracking.models import LatestMetric, Metric
from web.models import POINT, MetricChart

MAX_CHART_POINTS = 2000
logger = logging.getLogger(__name__)


def resolution(max_points: int) -> int:
    """The chart size kept for a request of at most `max_points` per series: MAX_CHART_POINTS
    halved until it fits, so that pages asking for 1,818 or 1,666 points share one kept chart."""
    size = MAX_CHART_POINTS
    while size > max_points and size > 1:
        size //= 2
    return min(size, max_points)


def _stride(points: int, size: int) -> int:
    return (points + size - 1) // size  # ceil(n / size): every stride-th point is kept


@dataclass
class Sample:
    """A series as a chart draws it: `points` (step, value, timestamp) in logging order,
    sampled from `total` non-NaN points (see `_sample`), at the key's history `version`."""

    points: list[tuple[int, float, int]]
    total: int
    version: int = 0


def histories(
    run_ids: list[str], keys: list[str] | None = None, max_points: int = MAX_CHART_POINTS
) -> dict[str, dict[str, list]]:
    """{metric key: {run id: [[step, value, timestamp], ...]}} in step order, at most
    `max_points` (+1) per series (see `_sample`). A series comes from its kept MetricChart
    while the key's history_version is the one it was sampled at. A kept chart whose key has
    had points logged since is extended with them when they all come after it in logging
    order (a training run being watched); the others are sampled from the history in one
    query. Either way the result is kept. A page showing a long run thus reads two small
    rows per series, and the points logged since, instead of its whole history."""
    size = resolution(max_points)
    with _one_snapshot() as consistent:
        charts, fresh = _read(run_ids, keys, size, extend=consistent)
    if fresh:
        _keep(fresh, size)
    series: dict[str, dict[str, list]] = {}
    for (run_id, key), sample in sorted(charts.items(), key=lambda item: item[0][::-1]):
        if sample.points:
            series.setdefault(key, {})[run_id] = [
                [step, value, timestamp]
                for step, value, timestamp in sorted(
                    sample.points, key=lambda p: (p[0], p[2], p[1])
                )
            ]
    return series


@contextmanager
def _one_snapshot() -> Iterator[bool]:
    """The versions, kept charts and history read as of one moment; yields whether they are
    (only then may a kept chart be extended: see _extend). PostgreSQL: a REPEATABLE READ
    transaction of its own, unless the caller is already in one; SQLite: any transaction."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            yield True
    elif connection.in_atomic_block:
        yield False
    else:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield True


def _read(
    run_ids: list[str], keys: list[str] | None, size: int, *, extend: bool
) -> tuple[dict[tuple[str, str], Sample], dict[tuple[str, str], Sample]]:
    """(every series' sample, those sampled or extended now with their versions)."""
    latest = LatestMetric.objects.filter(run_id__in=run_ids)
    kept = MetricChart.objects.filter(run_id__in=run_ids, max_points=size)
    if keys is not None:
        latest, kept = latest.filter(key__in=keys), kept.filter(key__in=keys)
    # The versions first: a chart sampled after reading them holds at least their points.
    versions = {
        (run_id, key): version
        for run_id, key, version in latest.values_list("run_id", "key", "history_version")
    }
    charts: dict[tuple[str, str], Sample] = {}
    fresh: dict[tuple[str, str], Sample] = {}
    for run_id, key, version, total, points in kept.values_list(
        "run_id", "key", "history_version", "sampled", "points"
    ):
        pair = (run_id, key)
        if pair not in versions:
            continue
        sample = Sample(list(POINT.iter_unpack(points)), total)
        if versions[pair] == version:
            charts[pair] = sample
        elif extend and versions[pair] > version:
            grown = _extend(pair, sample, versions[pair] - version, size)
            if grown is not None:
                charts[pair] = fresh[pair] = grown
    stale = [pair for pair in versions if pair not in charts]
    sampled = _sample(stale, size) if stale else {}
    charts.update(sampled)
    fresh.update(sampled)
    for pair, sample in fresh.items():
        sample.version = versions[pair]
    return charts, fresh


def _extend(pair: tuple[str, str], sample: Sample, logged: int, size: int) -> Sample | None:
    """The kept sample with the points logged since (`logged`: what the version rose by), or
    None when it cannot be extended: the stride changes with the new total, or the points
    after the sample's last are not exactly `logged` numbers (one came earlier in logging
    order, was re-sent, or is a NaN, which may have been there when the sample was taken).
    The sample and this read are each of one snapshot with their version, so `logged` points
    found after the last are precisely the points logged since. One query reading only the
    points after the sample's last, through the unique index."""
    run_id, key = pair
    if not sample.points:
        return None
    last_step, _, last_timestamp = sample.points[-1]
    after = Metric.objects.filter(run_id=run_id, key=key).filter(
        Q(timestamp__gt=last_timestamp) | Q(timestamp=last_timestamp, step__gt=last_step)
    )
    new = list(
        after.order_by("timestamp", "step", "value").values_list(
            "step", "value", "timestamp", "is_nan"
        )[: logged + 1]
    )
    if len(new) != logged or any(is_nan for *_, is_nan in new):
        return None  # some point sits elsewhere in the history: sample it whole
    numbers = [(step, value, timestamp) for step, value, timestamp, _ in new]
    total = sample.total + len(numbers)
    stride = _stride(sample.total, size)
    if not numbers or _stride(total, size) != stride:
        return None
    points = list(sample.points)
    if (sample.total - 1) % stride:  # the old last point was kept only for being last
        points.pop()
    for position, point in enumerate(numbers, start=sample.total + 1):
        if (position - 1) % stride == 0 or position == total:
            points.append(point)
    return Sample(points, total)


def _sample(pairs: list[tuple[str, str]], max_points: int) -> dict[tuple[str, str], Sample]:
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
    totals: dict[tuple[str, str], int] = {}
    for run_id, key, step, timestamp, value, total in qs.values_list(
        "run_id", "key", "step", "timestamp", "value", "total"
    ):
        if (run_id, key) in wanted:
            found[(run_id, key)].append((timestamp, step, value))
            totals[(run_id, key)] = total
    return {
        pair: Sample(
            [(step, value, timestamp) for timestamp, step, value in sorted(points)],
            totals.get(pair, 0),
        )
        for pair, points in found.items()
    }


def _keep(samples: dict[tuple[str, str], Sample], size: int) -> None:
    """Store fresh or extended samples. Best effort: a run deleted meanwhile, or a concurrent
    page storing the same chart, costs only the keeping, never the page."""
    rows = [
        MetricChart(
            run_id=run_id,
            key=key,
            max_points=size,
            history_version=sample.version,
            sampled=sample.total,
            points=b"".join(POINT.pack(*point) for point in sample.points),
        )
        for (run_id, key), sample in samples.items()
    ]
    try:
        with transaction.atomic():
            MetricChart.objects.bulk_create(
                rows,
                batch_size=200,
                update_conflicts=True,
                unique_fields=["run", "key", "max_points"],
                update_fields=["history_version", "sampled", "points"],
            )
    except DatabaseError as exc:
        logger.info("metric charts not kept: %s", exc)


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

"""Pages for experiments, runs and run comparison."""

from __future__ import annotations

from urllib.parse import quote

from django.db import connection
from django.db.models import BigIntegerField, Count, ExpressionWrapper, F, Q, Window
from django.db.models.functions import Mod, RowNumber
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from core import access
from core.errors import InvalidParameterValue
from tracking import selectors
from tracking.models import Experiment, LatestMetric, LifecycleStage, Metric, Param, Run, RunTag
from tracking.permissions import readable_experiments_q
from web.pages import page

PAGE_SIZE = 50
MAX_CHART_POINTS = 2000
MAX_COMPARE = 10
MAX_EXPERIMENTS = 500
MAX_COLUMN_KEYS = 500


@page(access.AUTHENTICATED)
def home(request):
    return HttpResponseRedirect(reverse("web:experiments"))


@page(access.AUTHENTICATED)
def experiment_list(request):
    query = request.GET.get("q", "").strip()
    experiments = (
        Experiment.objects.filter(readable_experiments_q(request.user, "experiment_id"))
        .filter(lifecycle_stage=LifecycleStage.ACTIVE)
        .annotate(run_count=Count("runs", filter=Q(runs__lifecycle_stage=LifecycleStage.ACTIVE)))
        .order_by("-creation_time")
    )
    if query:
        experiments = experiments.filter(name__icontains=query)
    shown = list(experiments[: MAX_EXPERIMENTS + 1])
    return render(
        request,
        "web/experiment_list.html",
        {
            "nav": "experiments",
            "experiments": shown[:MAX_EXPERIMENTS],
            "truncated": len(shown) > MAX_EXPERIMENTS,
            "max_experiments": MAX_EXPERIMENTS,
            "q": query,
        },
    )


def _distinct_keys(model, experiment_id: int, exclude_prefix: str = "") -> tuple[list[str], bool]:
    """The distinct keys of one kind over the experiment's active runs, alphabetically, at most
    MAX_COLUMN_KEYS, and whether there were more.

    A loose index scan: a recursive query steps through the distinct keys of the whole table
    on its key-first index (one probe per key, not one row per run), and keeps a key when one
    active run of this experiment has it (a LIMIT 1 probe on the same index, written as a
    scalar subquery so that PostgreSQL does not turn it into a join over every row). So the cost
    follows the number of distinct keys, not of runs."""
    table = connection.ops.quote_name(model._meta.db_table)
    runs = connection.ops.quote_name(Run._meta.db_table)
    prefix = ""
    params: list = [experiment_id, LifecycleStage.ACTIVE]
    if exclude_prefix:
        prefix = "AND substr(keys.k, 1, %s) <> %s"
        params += [len(exclude_prefix), exclude_prefix]
    sql = f"""
        WITH RECURSIVE keys(k) AS (
            SELECT MIN(key) FROM {table}
            UNION ALL
            SELECT (SELECT MIN(key) FROM {table} WHERE key > keys.k) FROM keys
            WHERE keys.k IS NOT NULL
        )
        SELECT k FROM (
            SELECT keys.k, (
                SELECT 1 FROM {table} t JOIN {runs} r ON r.run_id = t.run_id
                WHERE t.key = keys.k AND r.experiment_id = %s AND r.lifecycle_stage = %s
                LIMIT 1
            ) AS used
            FROM keys WHERE keys.k IS NOT NULL {prefix}
        ) probed
        WHERE used IS NOT NULL
        LIMIT {MAX_COLUMN_KEYS + 1}
    """  # noqa: S608 - table names from the models, values bound
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = [row[0] for row in cursor.fetchall()]
    return keys[:MAX_COLUMN_KEYS], len(keys) > MAX_COLUMN_KEYS


def _columns(request, experiment_id: int) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Selected columns (e.g. "metrics.acc"), the keys available in this experiment, and the
    sections whose key list was cut at MAX_COLUMN_KEYS."""
    available, cut = {}, []
    for section, model, prefix in (
        ("metrics", LatestMetric, ""),
        ("params", Param, ""),
        ("tags", RunTag, "mlflow."),
    ):
        available[section], more = _distinct_keys(model, experiment_id, prefix)
        if more:
            cut.append(section)
    chosen = request.GET.getlist("col")
    if not chosen:
        chosen = [f"metrics.{k}" for k in available["metrics"][:4]] + [
            f"params.{k}" for k in available["params"][:3]
        ]
    return chosen, available, cut


@page(access.EXPERIMENT_READ)
def experiment_detail(request, experiment_id: str):
    experiment = selectors.experiment_get(experiment_id)
    filter_string = request.GET.get("filter", "").strip()
    order = request.GET.get("order", "")
    token = request.GET.get("page") or None
    columns, available, columns_cut = _columns(request, experiment.experiment_id)
    error = ""
    run_rows, next_token, previous = [], None, None
    search = {
        "user": request.user,
        "experiment_ids": [str(experiment.experiment_id)],
        "filter_string": filter_string or None,
        "view_type": "active",
        "order_by": [order] if order else [],
    }
    try:
        run_ids, next_token = selectors.runs_search(
            **search, max_results=PAGE_SIZE, page_token=token
        )
        run_rows = selectors.run_payloads(run_ids)
        previous = _previous_page(search, token)
    except InvalidParameterValue as exc:
        error = exc.message
    rows = []
    for run in run_rows:
        data = run["data"]
        values = {
            **{f"metrics.{m['key']}": m["value"] for m in data["metrics"]},
            **{f"params.{p['key']}": p["value"] for p in data["params"]},
            **{f"tags.{t['key']}": t["value"] for t in data["tags"]},
        }
        rows.append({"info": run["info"], "cells": [values.get(c, "") for c in columns]})
    return render(
        request,
        "web/experiment_detail.html",
        {
            "nav": "experiments",
            "experiment": experiment,
            "rows": rows,
            "columns": columns,
            "available": available,
            "columns_cut": columns_cut,
            "max_column_keys": MAX_COLUMN_KEYS,
            "filter": filter_string,
            "order": order,
            "error": error,
            "next_token": next_token,
            "previous": previous,
            "can_edit": access.RANK[_level(request, experiment.experiment_id)]
            >= access.RANK[access.EDIT],
        },
    )


def _previous_page(search: dict, token: str | None) -> dict | None:
    """The page before this one: {"token": ...} (None for the first page), or None when this
    is the first page. Tokens are signed offsets, so the previous one is signed afresh."""
    from core.pagination import decode_page_token, encode_page_token

    scope = selectors.runs_search_scope(**search)
    offset = decode_page_token(token, scope)
    if offset <= 0:
        return None
    earlier = max(0, offset - PAGE_SIZE)
    return {"token": encode_page_token(earlier, scope) if earlier else None}


def _level(request, experiment_id: int) -> str:
    from tracking.permissions import experiment_level

    return experiment_level(request.user, experiment_id)


def _histories(run_ids: list[str], keys: list[str] | None = None) -> dict[str, dict[str, list]]:
    """{metric key: {run id: [[step, value], ...]}}, sampled in the database. A series of n
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
                (F("total") + (MAX_CHART_POINTS - 1)) / MAX_CHART_POINTS,
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
            run_id: [[step, value] for step, _, value in sorted(points)]
            for run_id, points in sorted(runs.items())
        }
        for key, runs in sorted(series.items())
    }


def _chart_summary(chart_data: dict, names: dict[str, str]) -> list[dict]:
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


@page(access.RUN_READ)
def run_detail(request, run_id: str):
    run = selectors.run_get(run_id)
    payload = selectors.run_payloads([run.run_id])[0]
    chart_data = _histories([run.run_id])
    tags = {t["key"]: t["value"] for t in payload["data"]["tags"]}
    parent_id = tags.get("mlflow.parentRunId")
    # Only runs this user may read, and not deleted ones: a run's parentRunId tag is free text,
    # so it may point at (or be pointed at by) a run in an experiment the user cannot see.
    visible = Run.objects.filter(
        readable_experiments_q(request.user, "experiment_id"),
        lifecycle_stage=LifecycleStage.ACTIVE,
    )
    children = list(
        visible.filter(tags__key="mlflow.parentRunId", tags__value=run.run_id)
        .order_by("start_time", "run_id")
        .values("run_id", "name", "status")[:100]
    )
    parent = visible.filter(pk=parent_id).values("run_id", "name").first() if parent_id else None
    return render(
        request,
        "web/run_detail.html",
        {
            "nav": "experiments",
            "run": run,
            "info": payload["info"],
            "metrics": sorted(payload["data"]["metrics"], key=lambda m: m["key"]),
            "params": sorted(payload["data"]["params"], key=lambda p: p["key"]),
            "tags": sorted(payload["data"]["tags"], key=lambda t: t["key"]),
            "datasets": payload["inputs"].get("dataset_inputs", []),
            "outputs": payload["outputs"].get("model_outputs", []),
            "parent": parent,
            "children": children,
            "chart_data": chart_data,
            "chart_summary": _chart_summary(chart_data, {run.run_id: payload["info"]["run_name"]}),
            "produced_versions": _produced_versions(request.user, run.run_id),
            **_artifacts(run, request.GET.get("artifacts", "")),
        },
    )


PREVIEW_BYTES = 64 * 1024
TEXT_SUFFIXES = (".txt", ".json", ".yaml", ".yml", ".md", ".csv", ".log", ".py", ".cfg", ".toml")
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}  # never SVG: it can carry script


def _artifact_root(run) -> str:
    return run.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")


def _artifacts(run, raw_path: str) -> dict:
    """The listing (or preview) of one artifact path of the run, through the same validator
    and store as the artifact proxy."""
    from tracking.artifacts import clean_artifact_path, get_artifact_store

    store = get_artifact_store()
    try:
        path = clean_artifact_path(raw_path, allow_empty=True)
    except InvalidParameterValue as exc:
        return {"artifact_error": exc.message, "artifact_path": "", "artifact_root": ""}
    full = f"{_artifact_root(run)}/{path}" if path else _artifact_root(run)
    entries = store.list_dir(full)
    context: dict = {
        "artifact_path": path,
        "artifact_parent": path.rpartition("/")[0],
        "artifact_root": _artifact_root(run),
    }
    if entries is not None:
        context["artifact_entries"] = [
            {
                "name": e.name,
                "path": f"{path}/{e.name}" if path else e.name,
                "is_dir": e.is_dir,
                "size": e.size,
            }
            for e in entries[:500]
        ]
        return context
    if not path or not store.is_file(full):
        context["artifact_error"] = f"No artifact at {path!r}." if path else None
        return context
    context["artifact_file"] = path
    context["artifact_download"] = f"/api/2.0/mlflow-artifacts/artifacts/{quote(full)}"
    lower = path.lower()
    if lower.endswith(TEXT_SUFFIXES) or "." not in path.rsplit("/", 1)[-1]:
        chunks, size = store.open(full)
        data = b""
        for chunk in chunks:
            data += chunk
            if len(data) >= PREVIEW_BYTES:
                break
        context["artifact_text"] = data[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        context["artifact_truncated"] = size > PREVIEW_BYTES
    elif any(lower.endswith(suffix) for suffix in IMAGE_TYPES):
        context["artifact_image"] = True
    return context


@page(access.RUN_READ)
def run_artifact_image(request, run_id: str):
    """An image artifact served inline for the preview (raster types only, nosniff)."""
    from django.http import HttpResponse, StreamingHttpResponse

    from tracking.artifacts import clean_artifact_path, get_artifact_store

    run = selectors.run_get(run_id)
    path = clean_artifact_path(request.GET.get("path", ""))
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in IMAGE_TYPES:
        return HttpResponse(
            "Only raster images are previewed.", status=400, content_type="text/plain"
        )
    chunks, size = get_artifact_store().open(f"{_artifact_root(run)}/{path}")
    response = StreamingHttpResponse(chunks, content_type=IMAGE_TYPES[suffix])
    response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _produced_versions(user, run_id: str) -> list:
    from registry.models import ModelVersion
    from registry.permissions import readable_models_q

    return list(
        ModelVersion.objects.filter(run_id=run_id, deleted=False)
        .filter(readable_models_q(user, "registered_model"))
        .select_related("registered_model")
        .order_by("registered_model__name", "version")[:50]
    )


@page(access.AUTHENTICATED)
def compare(request):
    chosen = list(dict.fromkeys(r for r in request.GET.getlist("runs") if r))  # once each
    run_ids = chosen[:MAX_COMPARE]
    if len(run_ids) < 2:
        raise InvalidParameterValue("Choose at least two different runs to compare (up to 10).")
    for run_id in run_ids:  # each run is checked like a page of its own
        access.authorize(request, access.RUN_READ, {"run_id": run_id})
    payloads = selectors.run_payloads(run_ids)
    if len(payloads) != len(run_ids):
        raise InvalidParameterValue("Some of these runs do not exist.")

    def table(section: str) -> list[dict]:
        keys = sorted({item["key"] for p in payloads for item in p["data"][section]})
        rows = []
        for key in keys:
            values = [
                next((i["value"] for i in p["data"][section] if i["key"] == key), None)
                for p in payloads
            ]
            rows.append(
                {"key": key, "values": values, "differs": len({str(v) for v in values}) > 1}
            )
        return rows

    chart_data = _histories(run_ids)
    return render(
        request,
        "web/compare.html",
        {
            "nav": "experiments",
            "runs": [p["info"] for p in payloads],
            "params": table("params"),
            "metrics": table("metrics"),
            "chart_data": chart_data,
            "chart_keys": sorted(chart_data),
            "chart_summary": _chart_summary(
                chart_data, {p["info"]["run_id"]: p["info"]["run_name"] for p in payloads}
            ),
            "names": {p["info"]["run_id"]: p["info"]["run_name"] for p in payloads},
            "left_out": len(chosen) - len(run_ids),
            "max_compare": MAX_COMPARE,
        },
    )

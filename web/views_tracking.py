"""Pages for experiments, runs and run comparison."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from django.db.models import Count, F, IntegerField, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import Left, RowNumber
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from core import access
from core.errors import InvalidParameterValue
from core.pagination import decode_page_token, encode_page_token
from tracking import selectors
from tracking.models import (
    VALUE_INDEX_PREFIX,
    Experiment,
    ExperimentKey,
    LifecycleStage,
    Run,
    RunOutput,
    RunTag,
)
from tracking.permissions import readable_experiments_q
from web import charts, runs_table
from web.pages import Links, decided, page

PAGE_SIZE = 50
MAX_COMPARE = 50  # a page of the runs table
COMPARE_POINTS = 20_000  # points per metric shared by the runs compared (2,000 each for 10)
MAX_EXPERIMENTS = 500
MAX_COLUMN_KEYS = 500
CHILDREN_SHOWN = 25  # per parent in the runs table; the parent's page lists them all, paged
MAX_COUNTED = 10_000  # the runs table counts matches up to here ("more than 10,000")
MAX_FIGURED_RUNS = 2_000  # a grouped page's metric figures cover groups of this many runs


@page(access.AUTHENTICATED)
def home(request):
    return HttpResponseRedirect(reverse("web:experiments"))


def _active_runs_counted() -> RawSQL:
    """Each experiment's active runs, counted up to MAX_COUNTED + 1 as the runs table counts
    them: the count reads at most that many index entries per experiment shown, where a
    count of all runs would read every run of every experiment (67 against 10 ms at 120,000
    runs). Derived tables are not in the ORM's reach."""
    runs, experiments = Run._meta.db_table, Experiment._meta.db_table
    return RawSQL(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {runs} AS counted WHERE counted.experiment_id"
        f" = {experiments}.experiment_id AND counted.lifecycle_stage = %s LIMIT %s) AS capped",
        (LifecycleStage.ACTIVE, MAX_COUNTED + 1),
        output_field=IntegerField(),
    )


@page(access.AUTHENTICATED)
def experiment_list(request):
    query = request.GET.get("q", "").strip()
    experiments = (
        Experiment.objects.filter(readable_experiments_q(request.user, "experiment_id"))
        .filter(lifecycle_stage=LifecycleStage.ACTIVE)
        .annotate(run_count=_active_runs_counted())
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
            "max_counted": MAX_COUNTED,
            "q": query,
        },
    )


def _distinct_keys(
    kind: str, experiment_id: int, exclude_prefix: str = ""
) -> tuple[list[str], bool]:
    """The distinct keys of one kind the experiment's active runs have, alphabetically, at
    most MAX_COLUMN_KEYS, and whether there were more."""
    found = selectors.experiment_keys(
        experiment_id=experiment_id,
        kind=kind,
        exclude_prefix=exclude_prefix,
        limit=MAX_COLUMN_KEYS + 1,
    )
    return found[:MAX_COLUMN_KEYS], len(found) > MAX_COLUMN_KEYS


def _available_columns(experiment_id: int) -> tuple[dict[str, list[str]], list[str]]:
    """The keys offered by the column chooser, and the sections cut at MAX_COLUMN_KEYS."""
    available, cut = {}, []
    for section, kind, prefix in (
        ("metrics", ExperimentKey.Kind.METRIC, ""),
        ("params", ExperimentKey.Kind.PARAM, ""),
        ("tags", ExperimentKey.Kind.TAG, "mlflow."),
    ):
        available[section], more = _distinct_keys(kind, experiment_id, prefix)
        if more:
            cut.append(section)
    return available, cut


def _children(experiment_id: int, parent_ids: list[str]) -> tuple[dict[str, list[str]], dict]:
    """The first CHILDREN_SHOWN active child runs of each parent (newest first), and how many
    each parent has. One query: the parent tag's value is matched on its indexed prefix."""
    if not parent_ids:
        return {}, {}
    rows = (
        RunTag.objects.annotate(prefix=Left("value", VALUE_INDEX_PREFIX))
        .filter(
            key=runs_table.PARENT_TAG,
            prefix__in=parent_ids,
            value__in=parent_ids,
            run__experiment_id=experiment_id,
            run__lifecycle_stage=LifecycleStage.ACTIVE,
        )
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("value")],
                order_by=[F("run__start_time").desc(), F("run_id")],
            ),
            siblings=Window(Count("id"), partition_by=[F("value")]),
        )
        .filter(position__lte=CHILDREN_SHOWN)
        .values_list("value", "run_id", "siblings")
    )
    shown: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for parent, child, siblings in rows:
        shown.setdefault(parent, []).append(child)
        counts[parent] = siblings
    return shown, counts


def _start_snippet(request, experiment_name: str) -> str:
    """The lines an empty experiment shows to log its first run, runnable as copied: the
    names are Python string literals (a JSON string is one, whatever quotes it holds)."""
    uri = request.build_absolute_uri("/").rstrip("/")
    return "\n".join(
        (
            "import mlflow",
            f"mlflow.set_tracking_uri({json.dumps(uri)})",
            f"mlflow.set_experiment({json.dumps(experiment_name)})",
            "with mlflow.start_run():",
            '    mlflow.log_metric("val_auc", 0.91)',
        )
    )


@page(access.EXPERIMENT_READ)
def experiment_detail(request, experiment_id: str):
    experiment = decided(request, Experiment, lambda: selectors.experiment_get(experiment_id))
    filter_string = request.GET.get("filter", "").strip()
    name_search = request.GET.get("q", "").strip()
    order = request.GET.get("order", "")
    token = request.GET.get("page") or None
    available, columns_cut = _available_columns(experiment.experiment_id)
    requested = [c for c in request.GET.getlist("col") if runs_table.is_column(c)]
    saved, saved_group = runs_table.saved_view(request.user, experiment.experiment_id)
    saved = None if requested else saved
    # Grouping: the URL's choice ("" for none), else the saved one. A wrong choice in the URL
    # is the user's mistake and is said; a saved one whose key has gone is dropped quietly.
    group_column = request.GET.get("group", saved_group).strip()
    group, group_error = None, ""
    if group_column:
        try:
            group = runs_table.parse_group(group_column, available, columns_cut)
        except InvalidParameterValue as exc:
            group_error = exc.message if "group" in request.GET else ""
            group_column = ""
    clauses = [c for c in (filter_string, name_search and runs_table.name_clause(name_search)) if c]
    error, suggestions, unknown = "", [], []
    grouped = None
    run_ids, next_token, previous, total, offset = [], None, None, 0, 0
    search = _search(request, experiment, clauses, order)
    try:
        if group:
            try:
                grouped = selectors.runs_search_grouped(
                    **search,
                    group=group,
                    max_results=PAGE_SIZE,
                    page_token=token,
                    figure_budget=MAX_FIGURED_RUNS,
                )
            except selectors.TooManyGroups as exc:  # said, and the table shown ungrouped
                group, group_column, group_error = None, "", exc.message
        # Child runs nest under their parent unless the user filters, searches or groups:
        # then every matching run is a row of its own (a matching child's parent may not
        # match).
        nested = _nested(request, grouped=bool(group), filter_string=filter_string, q=name_search)
        if nested:
            search = _search(request, experiment, [*clauses, TOP_LEVEL_ONLY], order)
        if grouped is not None:
            run_ids = [run_id for run_id, _ in grouped.rows]
            next_token, scope, offset = grouped.next_token, grouped.scope, grouped.offset
            total = grouped.total  # the groups' sizes add up to it (None: not counted)
        else:
            run_ids, next_token = selectors.runs_search(
                **search, max_results=PAGE_SIZE, page_token=token
            )
            scope = selectors.runs_search_scope(**search)
            offset = decode_page_token(token, scope)
            if next_token is None:  # the search's last page: its runs end the count
                total = offset + len(run_ids)
            else:
                total = selectors.runs_search_count(
                    readable_experiment_ids=scope["experiments"],
                    filter_string=search["filter_string"],
                    view_type="active",
                    limit=MAX_COUNTED,
                )
        previous = _previous_page(scope, offset)
    except InvalidParameterValue as exc:
        run_ids, grouped, nested = [], None, False
        error, suggestions = runs_table.explain_filter(filter_string, exc.message, available)
    if not error and filter_string:
        unknown = runs_table.unknown_keys(filter_string, available, columns_cut)
    children, child_counts = _children(experiment.experiment_id, run_ids) if nested else ({}, {})
    child_ids = [c for ids in children.values() for c in ids]
    loaded = selectors.run_payloads([*run_ids, *child_ids], with_inputs=False)
    payloads = loaded[: len(run_ids)]
    child_payloads = {p["info"]["run_id"]: p for p in loaded[len(run_ids) :]}
    columns = (
        requested
        or saved
        or runs_table.varying_columns(
            [*payloads, *child_payloads.values()],
            runs_table.mentioned_columns(filter_string, order),
        )
    )

    run_url = Links("web:run")

    def row(payload: dict, parent: str = "", in_group: str = "") -> dict:
        values = runs_table.values_of(payload)
        run_id = payload["info"]["run_id"]
        found = {
            "info": payload["info"],
            "parent": parent,
            "in_group": in_group,
            "children": child_counts.get(run_id, 0),
            "cells": [runs_table.cell(c, values.get(c)) for c in columns],
        }
        return {**found, "html": runs_table.run_row_html(found, CHILDREN_SHOWN, run_url)}

    if grouped is not None and group is not None:
        rows = _grouped_rows(grouped, payloads, columns, row)
    else:
        rows = []
        for payload in payloads:
            run_id = payload["info"]["run_id"]
            rows.append(row(payload))
            rows += [row(child_payloads[c], run_id) for c in children.get(run_id, [])]
    return render(
        request,
        "web/experiment_detail.html",
        {
            "nav": "experiments",
            "experiment": experiment,
            "rows": rows,
            "columns": [
                {
                    "name": c,
                    "label": runs_table.column_label(c),
                    "numeric": c.startswith("metrics."),
                }
                for c in columns
            ],
            "column_names": columns,
            "columns_source": "chosen" if requested else "saved" if saved else "default",
            "attribute_columns": runs_table.ATTRIBUTE_COLUMNS,
            "available": available,
            "columns_cut": columns_cut,
            "max_column_keys": MAX_COLUMN_KEYS,
            "filter": filter_string,
            "q": name_search,
            "nested": nested,
            "children_shown": CHILDREN_SHOWN,
            "order": order,
            "group": group_column if group else "",
            "group_label": runs_table.column_label(group_column) if group else ("", ""),
            "group_choices": runs_table.group_choices(available),
            "group_error": group_error,
            "grouped_page": grouped is not None and bool(rows),
            "error": error,
            "suggestions": suggestions,
            "unknown_keys": unknown,
            "next_token": next_token,
            "previous": previous,
            "total": total,
            "total_capped": total is not None and total > MAX_COUNTED,
            "max_counted": MAX_COUNTED,
            "max_figured": f"{MAX_FIGURED_RUNS:,}",
            "first_shown": offset + 1,
            "last_shown": offset + len(payloads),
            "can_edit": access.RANK[_level(request, experiment.experiment_id)]
            >= access.RANK[access.EDIT],
            "start_snippet": _start_snippet(request, experiment.name),
        },
        status=400 if group_error and "group" in request.GET else 200,
    )


def _search(request, experiment, clauses: list[str], order: str) -> dict:
    """The runs search behind the table (and its charts): this experiment's active runs, the
    clauses joined with and, the table's order."""
    return {
        "user": request.user,
        "experiment_ids": [str(experiment.experiment_id)],
        "filter_string": " and ".join(clauses) or None,
        "view_type": "active",
        "order_by": [order] if order else [],
    }


def _grouped_rows(grouped, payloads, columns, row) -> list[dict]:
    """The page's runs under a header row per group: its value, how many runs it has in all
    (not only on this page), whether it began on an earlier page or goes on to a later one,
    and the mean (lowest, highest) of each metric column over all its runs. The figures cover
    the page's groups while they hold at most MAX_FIGURED_RUNS runs together (a larger group
    says it was not figured), read by the ids of their runs, which the search found."""
    by_id = {p["info"]["run_id"]: p for p in payloads}
    on_page: dict[str | None, int] = {}
    for run_id, value in grouped.rows:
        if run_id in by_id:
            on_page[value] = on_page.get(value, 0) + 1
    metric_keys = [c.removeprefix("metrics.") for c in columns if c.startswith("metrics.")]
    stats = selectors.group_figures(grouped.figured, metric_keys) if metric_keys else {}
    rows: list[dict] = []
    header: dict | None = None
    for run_id, value in grouped.rows:
        if run_id not in by_id:  # deleted between the two queries
            continue
        if header is None or header["value"] != value:
            found = stats.get(value)
            header = {
                "group": f"group-{len([r for r in rows if 'group' in r])}",
                "value": value,
                "label": runs_table.group_label(value),
                "runs": grouped.sizes.get(value, on_page[value]),
                "shown": on_page[value],
                "continued": not rows and grouped.before == value,
                "continues": False,
                "cells": [runs_table.aggregate_cell(c, found, MAX_FIGURED_RUNS) for c in columns],
            }
            rows.append(header)
        rows.append(row(by_id[run_id], in_group=header["group"]))
    if header is not None:
        header["continues"] = grouped.after == header["value"]
    return rows


EXPERIMENT_CHART_POINTS = 500  # per series on the experiment's chart view (50 runs at once)


TOP_LEVEL_ONLY = f"tags.`{runs_table.PARENT_TAG}` IS NULL"


def _nested(request, *, grouped: bool, filter_string: str, q: str) -> bool:
    """Whether the table nests child runs under their parents (its rows are then the top-level
    runs): unless the user filters, searches or groups, or asks for a flat table."""
    return not grouped and not filter_string and not q and request.GET.get("flat") != "1"


@page(access.EXPERIMENT_READ)
def experiment_charts(request, experiment_id: str):
    """A panel per metric over the runs the table shows (same filter, name search, order,
    grouping and page), each run in its colour."""
    experiment = decided(request, Experiment, lambda: selectors.experiment_get(experiment_id))
    filter_string = request.GET.get("filter", "").strip()
    name_search = request.GET.get("q", "").strip()
    order = request.GET.get("order", "")
    clauses = [c for c in (filter_string, name_search and runs_table.name_clause(name_search)) if c]
    # The same runs as the table's page: grouped (the URL's grouping, else the saved one) or not.
    group_column = request.GET.get("group")
    if group_column is None:
        group_column = runs_table.saved_view(request.user, experiment.experiment_id)[1]
    grouping = runs_table.is_group_column(group_column.strip())
    nested = _nested(request, grouped=grouping, filter_string=filter_string, q=name_search)
    if nested:
        clauses = [*clauses, TOP_LEVEL_ONLY]  # the table's rows, and its page tokens' scope
    search = {
        **_search(request, experiment, clauses, order),
        "max_results": PAGE_SIZE,
        "page_token": request.GET.get("page") or None,
    }
    error, run_ids = "", []
    try:
        if grouping:
            group = runs_table.group_key(group_column.strip())
            grouped = selectors.runs_search_grouped(**search, group=group)
            run_ids = [run_id for run_id, _ in grouped.rows]
        else:
            run_ids, _ = selectors.runs_search(**search)
            if nested:  # with the children the table lists under each parent
                shown, _ = _children(experiment.experiment_id, run_ids)
                run_ids = [run for top in run_ids for run in (top, *shown.get(top, []))]
    except InvalidParameterValue as exc:
        error = exc.message
    names = dict(Run.objects.filter(run_id__in=run_ids).values_list("run_id", "name"))
    chart_data = charts.histories(run_ids, max_points=EXPERIMENT_CHART_POINTS) if run_ids else {}
    return render(
        request,
        "web/experiment_charts.html",
        {
            "nav": "experiments",
            "experiment": experiment,
            "error": error,
            "runs": [(r, names.get(r, r)) for r in run_ids],
            "chart_data": chart_data,
            "chart_summary": charts.chart_summary(chart_data, names),
            "names": names,
            "run_order": run_ids,
            "max_points": EXPERIMENT_CHART_POINTS,
        },
    )


@page(access.EXPERIMENT_READ)
def experiment_columns(request, experiment_id: str):
    """Save (or, with reset, forget) the user's column choice and grouping for this
    experiment, then back to the table with the same filter, search and order. Choosing
    columns changes nothing in the experiment, so reading it is enough."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    experiment = decided(request, Experiment, lambda: selectors.experiment_get(experiment_id))
    reset = bool(request.POST.get("reset"))
    runs_table.save_view(
        user=request.user,
        experiment_id=experiment.experiment_id,
        columns=[] if reset else request.POST.getlist("col"),
        group_by="" if reset else request.POST.get("group", "").strip(),
    )
    keep = {k: request.POST[k] for k in ("filter", "q", "order") if request.POST.get(k)}
    target = reverse("web:experiment", args=[experiment.experiment_id])
    return HttpResponseRedirect(target + ("?" + urlencode(keep) if keep else ""))


def _previous_page(scope: dict, offset: int) -> dict | None:
    """The page before this one: {"token": ...} (None for the first page), or None when this
    is the first page. Tokens are signed offsets, so the previous one is signed afresh."""
    if offset <= 0:
        return None
    earlier = max(0, offset - PAGE_SIZE)
    return {"token": encode_page_token(earlier, scope) if earlier else None}


def _level(request, experiment_id: int) -> str:
    from tracking.permissions import experiment_level

    return experiment_level(request.user, experiment_id)


CHILDREN_PAGE = 25


@page(access.RUN_READ)
def run_detail(request, run_id: str):
    run = selectors.run_get(run_id)
    payload = selectors.run_payloads([run.run_id])[0]
    chart_data = charts.histories([run.run_id])
    tags = {t["key"]: t["value"] for t in payload["data"]["tags"]}
    parent_id = tags.get(runs_table.PARENT_TAG)
    # Only runs this user may read, and not deleted ones: a run's parentRunId tag is free text,
    # so it may point at (or be pointed at by) a run in an experiment the user cannot see.
    visible = Run.objects.filter(
        readable_experiments_q(request.user, "experiment_id"),
        lifecycle_stage=LifecycleStage.ACTIVE,
    )
    children_qs = visible.filter(tags__key=runs_table.PARENT_TAG, tags__value=run.run_id)
    children_offset = _page_number(request.GET.get("children")) * CHILDREN_PAGE
    children = list(
        children_qs.order_by("start_time", "run_id").values("run_id", "name", "status")[
            children_offset : children_offset + CHILDREN_PAGE + 1
        ]
    )
    children_total = (
        children_qs.count() if children_offset or len(children) > CHILDREN_PAGE else len(children)
    )
    parent = visible.filter(pk=parent_id).values("run_id", "name").first() if parent_id else None
    level = _level(request, run.experiment_id)
    user_tags = sorted(
        (t for t in payload["data"]["tags"] if not t["key"].startswith("mlflow.")),
        key=lambda t: t["key"],
    )
    system_tags = sorted(
        (t for t in payload["data"]["tags"] if t["key"].startswith("mlflow.")),
        key=lambda t: t["key"],
    )
    logged_models = list(
        RunOutput.objects.filter(run=run)
        .order_by("step", "model__name")
        .values("step", "model_id", name=F("model__name"), status=F("model__status"))
    )
    artifact_path = request.GET.get("artifacts", "").strip("/")
    artifacts = _artifacts(run, artifact_path)
    # MLflow 3 keeps a logged model's files with the model: "model" is not under the run.
    artifact_model = next(
        (m for m in logged_models if m["name"] == artifact_path.split("/", 1)[0]), None
    )
    if artifact_model and artifacts.get("artifact_error"):
        artifacts["artifact_error"] = None
    return render(
        request,
        "web/run_detail.html",
        {
            "nav": "experiments",
            "run": run,
            "info": payload["info"],
            "description": tags.get("mlflow.note.content", ""),
            "metrics": sorted(payload["data"]["metrics"], key=lambda m: m["key"]),
            "params": sorted(payload["data"]["params"], key=lambda p: p["key"]),
            "user_tags": user_tags,
            "system_tags": system_tags,
            "commit": tags.get(runs_table.COMMIT_TAG, ""),
            "datasets": [_dataset_row(d) for d in payload["inputs"].get("dataset_inputs", [])],
            "outputs": payload["outputs"].get("model_outputs", []),
            "parent": parent,
            "children": children[:CHILDREN_PAGE],
            "children_total": children_total,
            "children_first": children_offset + 1,
            "children_last": children_offset + len(children[:CHILDREN_PAGE]),
            "children_page": children_offset // CHILDREN_PAGE,
            "children_more": len(children) > CHILDREN_PAGE,
            "chart_data": chart_data,
            "chart_summary": charts.chart_summary(
                chart_data, {run.run_id: payload["info"]["run_name"]}
            ),
            "produced_versions": _produced_versions(request.user, run.run_id),
            "can_edit": access.RANK[level] >= access.RANK[access.EDIT]
            and run.lifecycle_stage == LifecycleStage.ACTIVE,
            "can_manage": access.RANK[level] >= access.RANK[access.MANAGE],
            "logged_models": logged_models,
            "artifact_model": artifact_model,
            **artifacts,
        },
    )


def _page_number(raw: str | None) -> int:
    """A page number from the query string (ASCII digits: str.isdigit() also accepts "²",
    which int() refuses); anything else is the first page."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 7 else 0


def _dataset_row(item: dict) -> dict:
    """A logged dataset for the run page: its source as the place it names (the URI, path or
    table in MLflow's source JSON), not the JSON itself."""
    import json

    dataset = item["dataset"]
    source = dataset.get("source", "")
    shown = source
    try:
        parsed = json.loads(source)
    except (TypeError, ValueError, RecursionError):  # the client's text, up to 64 KiB
        parsed = None
    if isinstance(parsed, dict):
        for field in ("uri", "url", "path", "table_name", "delta_table_name", "sql", "repo_id"):
            if isinstance(parsed.get(field), str) and parsed[field]:
                shown = parsed[field]
                break
    context = next(
        (t["value"] for t in item.get("tags", []) if t["key"] == "mlflow.data.context"), ""
    )
    return {
        "name": dataset.get("name", ""),
        "digest": dataset.get("digest", ""),
        "source_type": dataset.get("source_type", ""),
        "source": shown,
        "source_raw": source,
        "context": context,
    }


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
    from core.storage import clean_artifact_path, get_artifact_store

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

    from core.storage import clean_artifact_path, get_artifact_store

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


def _plot_values(run_ids: list[str], params: list[dict], metrics: list[dict]) -> dict:
    """For the scatter and parallel-coordinates plots: the numeric params and final metrics,
    {"columns": ["params.lr", "metrics.auc", ...], "runs": {run id: [value or None, ...]}}.
    A param counts when every run that has it holds a number."""
    columns, values = [], {run_id: [] for run_id in run_ids}
    for section, rows in (("params", params), ("metrics", metrics)):
        for row in rows:
            numbers = [_as_number(v) for v in row["values"]]
            if any(n is None for n, v in zip(numbers, row["values"], strict=True) if v is not None):
                continue
            if all(n is None for n in numbers):
                continue
            columns.append(f"{section}.{row['key']}")
            for run_id, number in zip(run_ids, numbers, strict=True):
                values[run_id].append(number)
    return {"columns": columns, "runs": values}


def _as_number(value) -> float | None:
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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
    back = request.GET.get("experiment", "")
    back_experiment = back if back.isdigit() and len(back) < 19 else ""
    if len(run_ids) < 2:
        if back_experiment:  # from the runs table: back to it, saying why
            from django.contrib import messages

            messages.warning(request, "Choose at least two different runs to compare.")
            return HttpResponseRedirect(reverse("web:experiment", args=[back_experiment]))
        raise InvalidParameterValue(
            f"Choose at least two different runs to compare (up to {MAX_COMPARE})."
        )
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

    chart_data = charts.histories(
        run_ids, max_points=min(charts.MAX_CHART_POINTS, COMPARE_POINTS // len(run_ids))
    )
    params_rows, metric_rows = table("params"), table("metrics")
    return render(
        request,
        "web/compare.html",
        {
            "nav": "experiments",
            "runs": [p["info"] for p in payloads],
            "params": params_rows,
            "metrics": metric_rows,
            "plot_values": _plot_values(run_ids, params_rows, metric_rows),
            "chart_data": chart_data,
            "chart_keys": sorted(chart_data),
            "chart_summary": charts.chart_summary(
                chart_data, {p["info"]["run_id"]: p["info"]["run_name"] for p in payloads}
            ),
            "names": {p["info"]["run_id"]: p["info"]["run_name"] for p in payloads},
            "left_out": len(chosen) - len(run_ids),
            "back_experiment": back_experiment,
            "run_order": run_ids,
            "max_compare": MAX_COMPARE,
        },
    )


@page(access.RUN_EDIT)
def run_edit(request, run_id: str):
    """Rename the run, set its description, add or remove one of its own tags (EDIT on the
    experiment); audited by the service. Back to the run page either way."""
    from django.contrib import messages

    from core import refusals
    from core.errors import ApplicationError
    from tracking import services

    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    action = request.POST.get("action", "")
    edits = {
        "rename": lambda: {"name": request.POST.get("name", "")},
        "describe": lambda: {"description": request.POST.get("description", "")},
        "set-tag": lambda: {
            "set_tags": [(request.POST.get("key", "").strip(), request.POST.get("value", ""))]
        },
        "delete-tag": lambda: {"delete_tags": [request.POST.get("key", "")]},
    }
    if action not in edits:
        raise InvalidParameterValue(
            f"Unknown run edit {action[:40]!r}; allowed: rename, describe, set-tag, delete-tag."
        )
    try:
        services.run_edit(run_id=run_id, **edits[action]())
        messages.success(request, _EDITED[action])
    except ApplicationError as exc:
        if exc.status == 404 and action != "delete-tag":
            raise
        refusals.show(request, exc)
    return HttpResponseRedirect(reverse("web:run", args=[run_id]) + "#edit")


_EDITED = {
    "rename": "Run renamed.",
    "describe": "Description saved.",
    "set-tag": "Tag saved.",
    "delete-tag": "Tag removed.",
}


@page(access.RUN_MANAGE)
def run_lifecycle(request, run_id: str):
    """Delete a run (it leaves the runs table and can be restored) or restore it (MANAGE on
    the experiment, as the MLflow API asks); the service records the audit event."""
    from django.contrib import messages

    from core import refusals
    from core.errors import ApplicationError
    from tracking import services

    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    action = request.POST.get("action", "")
    if action not in ("delete", "restore"):
        raise InvalidParameterValue(
            f"Unknown run action {action[:40]!r}; allowed: delete, restore."
        )
    try:
        if action == "delete":
            services.run_delete(run_id=run_id)
            messages.success(request, "Run deleted. It is no longer listed; restore it here.")
        else:
            services.run_restore(run_id=run_id)
            messages.success(request, "Run restored.")
    except ApplicationError as exc:
        refusals.show(request, exc)
    return HttpResponseRedirect(reverse("web:run", args=[run_id]))

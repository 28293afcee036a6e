"""Reads of tracking state. Payload builders fetch each related table once per page (a fixed
number of queries whatever the page size) and build wire dicts from value rows, skipping model
instantiation on the hot search path."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    IntegerField,
    Model,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models import Field as DjangoField
from django.db.models.functions import Left

from core import identifiers, process_cache
from core.errors import InvalidParameterValue, ResourceDoesNotExist
from core.lookups import AnyOf
from core.mlflow_api import encode_double
from core.prepared import OneOrMany, server_prepared_cursor
from tracking.models import (
    VALUE_INDEX_PREFIX,
    Dataset,
    Experiment,
    ExperimentKey,
    ExperimentTag,
    LatestMetric,
    LifecycleStage,
    LoggedModel,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunInputTag,
    RunModelInput,
    RunOutput,
    RunTag,
)
from tracking.permissions import readable_experiments_q as permissions_q  # noqa: E402
from tracking.permissions import unreadable_experiment_ids  # noqa: E402
from tracking.search import experiments as experiment_search
from tracking.search import logged_models as logged_model_search
from tracking.search import runs as run_search

_EXPERIMENT_ID = re.compile(r"^\d{1,18}$")

VIEW_TYPES = {
    "ACTIVE_ONLY": "active",
    "DELETED_ONLY": "deleted",
    "ALL": "all",
    "1": "active",
    "2": "deleted",
    "3": "all",
}


def _view_filter(qs: QuerySet, view: str) -> QuerySet:
    if view == "active":
        return qs.filter(lifecycle_stage=LifecycleStage.ACTIVE)
    if view == "deleted":
        return qs.filter(lifecycle_stage=LifecycleStage.DELETED)
    return qs


def parse_experiment_id(experiment_id: Any) -> int:
    return identifiers.experiment_id(experiment_id)


# ---------------------------------------------------------------------------------------------
# Experiments


def experiment_get(experiment_id: Any, *, for_update: bool = False) -> Experiment:
    pk = parse_experiment_id(experiment_id)
    qs = Experiment.objects.select_for_update() if for_update else Experiment.objects
    experiment = qs.filter(pk=pk).first()
    if experiment is None:
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    return experiment


def experiment_get_by_name(name: Any) -> Experiment:
    """Found by the name's identity key, as the access layer finds it."""
    given = identifiers.experiment_name(name)
    experiment = Experiment.objects.filter(name_key=identifiers.name_key(given)).first()
    if experiment is None:
        raise ResourceDoesNotExist(f"Could not find experiment with name '{given}'")
    return experiment


_EXPERIMENT_TAGS = OneOrMany(
    lambda **where: ExperimentTag.objects.filter(**where).values_list(
        "experiment_id", "key", "value"
    ),
    "experiment_id",
    int,
)


def experiment_payloads(experiments: Sequence[Experiment]) -> list[dict[str, Any]]:
    """MLflow `Experiment` dicts; the tags of an experiment the access layer read with its
    tags (permissions.experiment_with_tags) are not read again."""
    tags: dict[int, list[dict[str, str]]] = defaultdict(list)
    unread = []
    for e in experiments:
        if hasattr(e, "prefetched_tags"):
            tags[e.experiment_id] = e.prefetched_tags
        else:
            unread.append(e.experiment_id)
    for exp_id, key, value in _EXPERIMENT_TAGS.rows(unread) if unread else []:
        tags[exp_id].append({"key": key, "value": value})
    result = []
    for e in experiments:
        payload: dict[str, Any] = {
            "experiment_id": str(e.experiment_id),
            "name": e.name,
            "artifact_location": e.artifact_location,
            "lifecycle_stage": e.lifecycle_stage,
            "last_update_time": e.last_update_time,
            "creation_time": e.creation_time,
        }
        if tags.get(e.experiment_id):
            payload["tags"] = tags[e.experiment_id]
        result.append(payload)
    return result


def experiments_search(
    *,
    user: Any,
    view_type: str,
    filter_string: str | None,
    order_by: list[str],
    max_results: Any,
    page_token: str | None,
) -> tuple[list[Experiment], str | None]:
    from core.pagination import decode_page_token, encode_page_token, validate_max_results

    limit = validate_max_results(max_results, default=None, maximum=50000)
    scope = {
        "endpoint": "experiments/search",
        "user": getattr(user, "pk", None),
        "view": view_type,
        "filter": filter_string or "",
        "order_by": order_by,
    }
    offset = decode_page_token(page_token, scope)
    qs = _view_filter(Experiment.objects.filter(permissions_q(user, "experiment_id")), view_type)
    qs = experiment_search.filter_experiments(qs, filter_string)
    qs = experiment_search.order_experiments(qs, order_by)
    rows = list(qs[offset : offset + limit + 1])
    token = encode_page_token(offset + limit, scope) if len(rows) > limit else None
    return rows[:limit], token


# ---------------------------------------------------------------------------------------------
# Runs


def run_get(run_id: Any) -> Run:
    run_id = identifiers.run_id(run_id)
    run = Run.objects.select_related("experiment").filter(run_id=run_id).first()
    if run is None:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return run


_RUN_FIELDS = (
    "run_id",
    "experiment_id",
    "name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "artifact_uri",
    "lifecycle_stage",
)


def run_info_payload(row: dict[str, Any]) -> dict[str, Any]:
    info = {
        "run_id": row["run_id"],
        "run_uuid": row["run_id"],
        "run_name": row["name"],
        "experiment_id": str(row["experiment_id"]),
        "user_id": row["user_id"],
        "status": row["status"],
        "start_time": row["start_time"],
        "artifact_uri": row["artifact_uri"],
        "lifecycle_stage": row["lifecycle_stage"],
    }
    if row["end_time"] is not None:
        info["end_time"] = row["end_time"]
    return info


def run_info_from_model(run: Run) -> dict[str, Any]:
    return run_info_payload({field: getattr(run, field) for field in _RUN_FIELDS})


def new_run_payload(run: Run, tags: dict[str, str]) -> dict[str, Any]:
    """The MLflow `Run` of a run just created with these tags: nothing else is logged yet,
    so nothing needs reading back."""
    return {
        "info": run_info_from_model(run),
        "data": {
            "metrics": [],
            "params": [],
            "tags": [{"key": key, "value": value} for key, value in tags.items()],
        },
        "inputs": {},
        "outputs": {},
    }


def _metric_value(value: float, is_nan: bool) -> float | str:
    return "NaN" if is_nan else encode_double(value)


# What a run's payload holds besides the run row, each by one run (prepared) or several.
_RUN_LATEST_METRICS = OneOrMany(
    lambda **where: LatestMetric.objects.filter(**where).values_list(
        "run_id", "key", "value", "is_nan", "timestamp", "step"
    ),
    "run_id",
    str,
)
_RUN_PARAMS = OneOrMany(
    lambda **where: Param.objects.filter(**where).values_list("run_id", "key", "value"),
    "run_id",
    str,
)
_RUN_TAGS = OneOrMany(
    lambda **where: RunTag.objects.filter(**where).values_list("run_id", "key", "value"),
    "run_id",
    str,
)
_RUN_INPUTS = OneOrMany(
    lambda **where: RunInput.objects.filter(**where).values_list(
        "id",
        "run_id",
        "dataset__name",
        "dataset__digest",
        "dataset__source_type",
        "dataset__source",
        "dataset__schema",
        "dataset__profile",
    ),
    "run_id",
    str,
)
_RUN_MODEL_INPUTS = OneOrMany(
    lambda **where: RunModelInput.objects.filter(**where).values_list("run_id", "model_id"),
    "run_id",
    str,
)
_RUN_OUTPUTS = OneOrMany(
    lambda **where: RunOutput.objects.filter(**where).values_list("run_id", "model_id", "step"),
    "run_id",
    str,
)


_ONE_RUN_CHILDREN_SQL: dict[str, str] = {}


def _one_run_children_sql(many: bool = False, with_inputs: bool = True) -> str:
    """One round trip for what one run's payload holds besides the run row: latest metrics
    (0), params (1), tags (2), model inputs (3), model outputs (4), dataset inputs (5) and
    their tags (6), as rows of (kind, key, text, number, is_nan, timestamp, step, and four
    texts for a dataset's source type, source, schema and profile). A dataset input's row
    has the dataset's name as key, its digest as text and the input's id as timestamp; an
    input tag's row its key, value and input id. `many` (PostgreSQL): for the runs of an
    array parameter, the run id after the kind; without `with_inputs` only kinds 0 to 2."""
    cache_key = f"{connection.vendor} {many} {with_inputs}"
    sql = _ONE_RUN_CHILDREN_SQL.get(cache_key)
    if sql is None:
        quote = connection.ops.quote_name
        match = "= ANY(%s)" if many else "= %s"

        def col(model: type[Model], name: str, table: str = "") -> str:
            field = model._meta.get_field(name)
            assert isinstance(field, DjangoField)  # a concrete column, not a reverse relation
            return f"{table}{quote(str(field.column))}"

        def head(kind: int, run: str) -> str:
            return f"SELECT {kind}, {run}, " if many else f"SELECT {kind}, "

        def select(kind: int, model: type[Model], key: str, *rest: str) -> str:
            columns = [col(model, key), *rest, *["NULL"] * (9 - len(rest))]
            run = col(model, "run")
            return (
                f"{head(kind, run)}{', '.join(columns)} "
                f"FROM {quote(model._meta.db_table)} WHERE {run} {match}"
            )

        M, P, T, D, RI, IT = LatestMetric, Param, RunTag, Dataset, RunInput, RunInputTag
        inputs, datasets = f"{quote(RI._meta.db_table)}", f"{quote(D._meta.db_table)}"
        input_run = col(RI, "run", "i.")
        branches = [
            select(
                0,
                M,
                "key",
                "NULL",
                col(M, "value"),
                col(M, "is_nan"),
                col(M, "timestamp"),
                col(M, "step"),
            ),
            select(1, P, "key", col(P, "value")),
            select(2, T, "key", col(T, "value")),
        ]
        if with_inputs:
            branches += [
                select(3, RunModelInput, "model"),
                select(
                    4, RunOutput, "model", "NULL", "NULL", "NULL", "NULL", col(RunOutput, "step")
                ),
                f"{head(5, input_run)}{col(D, 'name', 'd.')}, {col(D, 'digest', 'd.')}, NULL, "
                f"NULL, {col(RI, 'id', 'i.')}, NULL, {col(D, 'source_type', 'd.')}, "
                f"{col(D, 'source', 'd.')}, {col(D, 'schema', 'd.')}, {col(D, 'profile', 'd.')} "
                f"FROM {inputs} i JOIN {datasets} d ON d.{col(D, 'id')} = i.{col(RI, 'dataset')} "
                f"WHERE {input_run} {match}",
                f"{head(6, input_run)}{col(IT, 'key', 't.')}, {col(IT, 'value', 't.')}, NULL, "
                f"NULL, {col(IT, 'run_input', 't.')}, NULL, NULL, NULL, NULL, NULL "
                f"FROM {quote(IT._meta.db_table)} t JOIN {inputs} i "
                f"ON i.{col(RI, 'id')} = t.{col(IT, 'run_input')} WHERE {input_run} {match}",
            ]
        sql = _ONE_RUN_CHILDREN_SQL[cache_key] = " UNION ALL ".join(branches)
    return sql


def _children_by_kind(rows: Iterable[tuple]) -> tuple[list, list, list, list, list, list, list]:
    """Rows of the children read, each (kind, run id, key, text, number, is_nan, timestamp,
    step, four texts), sorted into the seven lists `run_payloads` takes."""
    found: tuple[list, list, list, list, list, list, list] = ([], [], [], [], [], [], [])
    for kind, run_id, key, text, number, is_nan, ident, step, *dataset in rows:
        if kind == 0:
            found[0].append((run_id, key, number, bool(is_nan), ident, step))
        elif kind in (1, 2):
            found[kind].append((run_id, key, text))
        elif kind == 3:
            found[3].append((run_id, key))
        elif kind == 4:
            found[4].append((run_id, key, step))
        elif kind == 5:
            found[5].append((ident, run_id, key, text, *dataset))
        else:
            found[6].append((ident, key, text))
    return found


def _many_runs_children(
    run_ids: Sequence[str], with_inputs: bool, with_runs: bool
) -> tuple[tuple[list, ...], dict[str, dict[str, Any]]]:
    """The rows `run_payloads` reads for several runs, in one query (PostgreSQL: the runs as
    one array parameter, so the statement is prepared once whatever their number); with
    `with_runs` the run rows too, as an eighth kind (7), by run id."""
    key = f"many {with_inputs} {with_runs}"
    sql = _ONE_RUN_CHILDREN_SQL.get(key)
    if sql is None:
        sql = _one_run_children_sql(many=True, with_inputs=with_inputs)
        if with_runs:
            quote = connection.ops.quote_name
            sql += (
                " UNION ALL SELECT 7, run_id, name, user_id, NULL, NULL, start_time, end_time, "
                "status, artifact_uri, lifecycle_stage, CAST(experiment_id AS text) "
                f"FROM {quote(Run._meta.db_table)} WHERE run_id = ANY(%s)"
            )
        _ONE_RUN_CHILDREN_SQL[key] = sql
    branches = (7 if with_inputs else 3) + with_runs
    with server_prepared_cursor() as cursor:
        cursor.execute(sql, [list(run_ids)] * branches)
        rows = cursor.fetchall()
    runs: dict[str, dict[str, Any]] = {}
    if with_runs:
        for kind, run_id, name, user_id, _, _, start, end, status, uri, stage, experiment in rows:
            if kind == 7:
                runs[run_id] = {
                    "run_id": run_id,
                    "experiment_id": int(experiment),
                    "name": name,
                    "user_id": user_id,
                    "status": status,
                    "start_time": start,
                    "end_time": end,
                    "artifact_uri": uri,
                    "lifecycle_stage": stage,
                }
        rows = [row for row in rows if row[0] != 7]
    return _children_by_kind(rows), runs


def _one_run_and_children_sql() -> str:
    """_one_run_children_sql with the run row as an eighth kind (7), read only if the run is
    in the given experiment: its name as key, user id as text, start and end time as the two
    integers, status, artifact URI and lifecycle stage as the first three texts."""
    key = f"{connection.vendor} with the run"
    sql = _ONE_RUN_CHILDREN_SQL.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        sql = _ONE_RUN_CHILDREN_SQL[key] = (
            f"{_one_run_children_sql()} UNION ALL SELECT 7, name, user_id, NULL, NULL, "
            f"start_time, end_time, status, artifact_uri, lifecycle_stage, NULL "
            f"FROM {quote(Run._meta.db_table)} WHERE run_id = %s AND experiment_id = %s"
        )
    return sql


def _one_run_children(
    run_id: str, experiment_id: int | None = None
) -> tuple[tuple[list, ...], dict[str, Any] | None]:
    """The rows `run_payloads` reads for many runs, for one run in one query: latest metrics,
    params, tags, model inputs, outputs, dataset inputs and the inputs' tags; given the
    experiment the run was decided in, the run row too (None when the run is not there)."""
    row: dict[str, Any] | None = None
    with server_prepared_cursor() as cursor:
        if experiment_id is None:
            cursor.execute(_one_run_children_sql(), [run_id] * 7)
        else:
            cursor.execute(_one_run_and_children_sql(), [run_id] * 8 + [experiment_id])
        rows = cursor.fetchall()
    for kind, key, text, _, _, ident, step, *texts in rows:
        if kind == 7:
            row = {
                "run_id": run_id,
                "experiment_id": experiment_id,
                "name": key,
                "user_id": text,
                "status": texts[0],
                "start_time": ident,
                "end_time": step,
                "artifact_uri": texts[1],
                "lifecycle_stage": texts[2],
            }
    return _children_by_kind((kind, run_id, *rest) for kind, *rest in rows if kind != 7), row


def experiment_keys(
    *, experiment_id: int, kind: str, exclude_prefix: str = "", limit: int
) -> list[str]:
    """The distinct keys of one kind (ExperimentKey.Kind) the experiment's active runs have,
    alphabetically, at most `limit`: an index range of ExperimentKey, kept by triggers.
    Finding them in the runs' rows cost as much as the rows of each key in every other
    experiment (bench/web_pages.py's neighbours: 200 ms a page with 20,000 runs elsewhere)."""
    keys = ExperimentKey.objects.filter(experiment_id=experiment_id, kind=kind)
    if exclude_prefix:
        keys = keys.exclude(key__startswith=exclude_prefix)
    return list(keys.order_by("key").values_list("key", flat=True).distinct()[:limit])


def run_payloads(
    run_ids: Sequence[str],
    *,
    runs: Sequence[Run] = (),
    with_inputs: bool = True,
    decided_experiment: int | None = None,
) -> list[dict[str, Any]]:
    """Full MLflow `Run` dicts for these runs, in the given order: for one run 2 queries (the
    run; everything it logged and its inputs and outputs in one UNION ALL), 1 when the run is
    given, as the access layer loaded it, or when `decided_experiment` is (the run row is
    then read in the same UNION ALL, only if the run is in that experiment: an empty list
    when it is not); for several 1 on PostgreSQL (the same UNION ALL for all of them with
    their run rows, the runs as one array parameter), 8 on SQLite. With with_inputs=False, for a list
    that shows only a run's info and data: its inputs and outputs are left empty (and for
    several runs not read)."""
    if not run_ids:
        return []
    rows: dict[str, dict[str, Any]] = {}
    many_on_postgresql = len(run_ids) > 1 and connection.vendor == "postgresql"
    if decided_experiment is not None:
        assert len(run_ids) == 1, "a decided experiment is for one run"
    elif runs and {run.run_id for run in runs} >= set(run_ids):
        rows = {run.run_id: {field: getattr(run, field) for field in _RUN_FIELDS} for run in runs}
    elif not many_on_postgresql:  # there the rows come with everything they logged, below
        rows = {r["run_id"]: r for r in Run.objects.filter(run_id__in=run_ids).values(*_RUN_FIELDS)}
    input_tag_rows: list | None = None  # on SQLite read after the inputs, if there are any
    children = None
    if len(run_ids) == 1:
        children, decided_row = _one_run_children(run_ids[0], decided_experiment)
        if decided_row is not None:
            rows = {run_ids[0]: decided_row}
    elif many_on_postgresql:
        children, read = _many_runs_children(run_ids, with_inputs, with_runs=not rows)
        rows = rows or read
    if children is not None:
        latest_rows, param_rows, tag_rows = children[:3]
        if with_inputs:
            model_input_rows, output_rows, input_rows, input_tag_rows = children[3:]
        else:
            model_input_rows, output_rows, input_rows, input_tag_rows = [], [], [], []
    else:
        latest_rows = _RUN_LATEST_METRICS.rows(run_ids)
        param_rows, tag_rows = _RUN_PARAMS.rows(run_ids), _RUN_TAGS.rows(run_ids)
        model_input_rows = _RUN_MODEL_INPUTS.rows(run_ids) if with_inputs else []
        output_rows = _RUN_OUTPUTS.rows(run_ids) if with_inputs else []
        input_rows = _RUN_INPUTS.rows(run_ids) if with_inputs else []
    metrics: dict[str, list] = defaultdict(list)
    for run_id, key, value, is_nan, ts, step in latest_rows:
        metrics[run_id].append(
            {"key": key, "value": _metric_value(value, is_nan), "timestamp": ts, "step": step}
        )
    params: dict[str, list] = defaultdict(list)
    for run_id, key, text in param_rows:
        params[run_id].append({"key": key, "value": text})
    tags: dict[str, list] = defaultdict(list)
    for run_id, key, text in tag_rows:
        tags[run_id].append({"key": key, "value": text})
    inputs: dict[str, list] = defaultdict(list)
    input_tags: dict[int, list] = defaultdict(list)
    if input_tag_rows is None and input_rows:
        input_tag_rows = list(
            RunInputTag.objects.filter(run_input_id__in=[r[0] for r in input_rows]).values_list(
                "run_input_id", "key", "value"
            )
        )
    for input_id, key, text in input_tag_rows or []:
        input_tags[input_id].append({"key": key, "value": text})
    for input_id, run_id, name, digest, source_type, source, schema, profile in input_rows:
        dataset = {"name": name, "digest": digest, "source_type": source_type, "source": source}
        if schema:
            dataset["schema"] = schema
        if profile:
            dataset["profile"] = profile
        inputs[run_id].append({"tags": input_tags.get(input_id, []), "dataset": dataset})
    model_inputs: dict[str, list] = defaultdict(list)
    for run_id, model_id in model_input_rows:
        model_inputs[run_id].append({"model_id": model_id})
    outputs: dict[str, list] = defaultdict(list)
    for run_id, model_id, step in output_rows:
        outputs[run_id].append({"model_id": model_id, "step": step})

    result = []
    for run_id in run_ids:
        row = rows.get(run_id)
        if row is None:
            continue
        run_inputs: dict[str, Any] = {}
        if inputs.get(run_id):
            run_inputs["dataset_inputs"] = inputs[run_id]
        if model_inputs.get(run_id):
            run_inputs["model_inputs"] = model_inputs[run_id]
        run_outputs: dict[str, Any] = {}
        if outputs.get(run_id):
            run_outputs["model_outputs"] = outputs[run_id]
        result.append(
            {
                "info": run_info_payload(row),
                "data": {
                    "metrics": metrics.get(run_id, []),
                    "params": params.get(run_id, []),
                    "tags": tags.get(run_id, []),
                },
                "inputs": run_inputs,
                "outputs": run_outputs,
            }
        )
    return result


def runs_search_scope(
    *,
    user,
    experiment_ids: list[str],
    filter_string: str | None,
    view_type: str,
    order_by: list[str],
) -> dict[str, Any]:
    """What a runs_search page token is bound to (the web UI's Previous link signs an earlier
    offset for the same scope)."""
    ids = sorted({parse_experiment_id(e) for e in experiment_ids})
    # Like MLflow: experiments the caller may not read are dropped from the request.
    hidden = unreadable_experiment_ids(user) or set()
    return {
        "endpoint": "runs/search",
        "user": getattr(user, "pk", None),
        "experiments": [e for e in ids if e not in hidden],
        "view": view_type,
        "filter": filter_string or "",
        "order_by": order_by,
    }


def runs_search(
    *,
    user: Any,
    experiment_ids: list[str],
    filter_string: str | None,
    view_type: str,
    max_results: Any,
    order_by: list[str],
    page_token: str | None,
) -> tuple[list[str], str | None]:
    from core.pagination import decode_page_token, encode_page_token, validate_max_results

    limit = validate_max_results(max_results, default=1000, maximum=50000)
    scope = runs_search_scope(
        user=user,
        experiment_ids=experiment_ids,
        filter_string=filter_string,
        view_type=view_type,
        order_by=order_by,
    )
    ids = scope["experiments"]
    offset = decode_page_token(page_token, scope)
    if not ids:
        return [], None
    qs = _view_filter(Run.objects.filter(experiment_id__in=ids), view_type)
    qs = run_search.filter_runs(qs, filter_string)
    run_ids = run_search.page_of_runs(qs, order_by, offset, limit + 1)
    token = encode_page_token(offset + limit, scope) if len(run_ids) > limit else None
    return run_ids[:limit], token


def runs_search_count(
    *, readable_experiment_ids: list[int], filter_string: str | None, view_type: str, limit: int
) -> int:
    """How many runs a runs_search matches, counted up to limit + 1 (the web UI says "more
    than limit" rather than count a huge experiment's every run on each page). The
    experiments are those of the search's scope (runs_search_scope), already cut to the
    readable ones."""

    if not readable_experiment_ids:
        return 0
    qs = _view_filter(Run.objects.filter(experiment_id__in=readable_experiment_ids), view_type)
    return run_search.filter_runs(qs, filter_string).values("run_id")[: limit + 1].count()


# A param or tag value that reads as a number, so that groups order 2 < 10 < 100.
NUMERIC_TEXT = re.compile(r"[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?")
GROUP_KINDS = {"param": "params", "tag": "tags"}
MAX_GROUPS = 1000
PER_GROUP_READS = 3  # a grouped page covering up to this many groups reads each on its own


@dataclass(frozen=True)
class GroupedPage:
    """A page of a runs search grouped by a param or tag: (run id, group value) per run; the
    size of each of the page's groups ({value: runs}, the value None for the runs lacking the
    key; the size None when the group holds more runs than were counted) and the total (None
    when not every group was counted); the group value of the run just before the page and
    just after it (NO_RUN when there is none), so that a page can say whether its first and
    last groups go on beyond it."""

    rows: list[tuple[str, str | None]]
    sizes: dict[str | None, int | None]
    total: int | None
    before: Any
    after: Any
    offset: int
    next_token: str | None
    scope: dict[str, Any]
    # The run ids of the page's groups that its figures take in (group_figures): its groups
    # in page order while they hold at most the figure budget together.
    figured: dict[str | None, list[str]] = field(default_factory=dict)


NO_RUN = object()

# How many runs a grouped search (experiments, view, filter, grouping) matched when this
# process last counted them: a hint for choosing how to read, never an answer. When they
# were few, the next such search reads the matching runs themselves (stopping past
# FEW_MATCHES) and counts the groups in Python, then reads the page's groups by run id: the
# filter is searched once rather than twice. Past that, reading them costs more than the
# aggregate (which PostgreSQL runs in parallel): the sizes are counted in SQL. A search
# without a filter matches the experiments' runs, seldom few enough to be worth the read.
# Kept beside the access caches (the scope is the readable experiments): a grant change drops
# the hints with them, which costs one aggregate search.
FEW_MATCHES = 10_000
_last_matched = process_cache.Store(process_cache.ACCESS, "grouped-search-matches", size=256)

# A grouped search over experiments of more active runs than this counts its groups only as
# far as its page needs (_walk_groups): each group in order, each count stopped at what the
# page needs to know, so a page costs what it shows (and the runs before it), not a pass over
# every matching run. Below it, one aggregate of every group's size is cheaper.
BOUNDED_FROM = 10_000
MAX_GROUP_PROBES = 24  # groups counted one by one for a page before one aggregate is cheaper
# A page starting further in than this uses the aggregate: the walk counts every run before
# its page, which past here costs about what one pass over the experiment's runs does.
WALK_BEFORE = 10_000


class TooManyGroups(InvalidParameterValue):
    """The grouping key has more than MAX_GROUPS values among the runs searched."""


def group_order(value: str | None) -> tuple:
    """Groups in order of value: numbers by their value, then text, then the runs lacking the
    key."""
    if value is None:
        return (2, 0.0, "")
    if NUMERIC_TEXT.fullmatch(value):
        return (0, float(value), value)
    return (1, 0.0, value)


def _grouped_runs(
    experiment_ids: list[int], view_type: str, filter_string: str | None, kind: str, key: str
) -> QuerySet[Run]:
    """The runs a search matches, each with its value of the param or tag as `grouping__value`
    (NULL when it has none): one LEFT JOIN on the (run, key) row."""
    relation = GROUP_KINDS[kind]
    qs = _view_filter(Run.objects.filter(experiment_id__in=experiment_ids), view_type)
    qs = run_search.filter_runs(qs, filter_string)
    return qs.annotate(
        grouping=FilteredRelation(relation, condition=Q(**{f"{relation}__key": key}))
    )


def _in_groups(qs: QuerySet[Run], values: list[str | None]) -> QuerySet[Run]:
    """Only the runs of these groups, matched on the values' indexed prefix so that
    PostgreSQL reads the groups' rows from the (key, prefix) index rather than every run. A
    value shorter than the prefix equals its prefix; only a longer one is compared whole (the
    planner takes the two conditions as independent and would expect far too few rows)."""
    known = [v for v in values if v is not None]
    short = [v for v in known if len(v) < VALUE_INDEX_PREFIX]
    long = [v for v in known if len(v) >= VALUE_INDEX_PREFIX]
    wanted = Q(pk__in=[])
    if short:
        wanted |= Q(group_prefix__in=short)
    if long:
        wanted |= Q(
            group_value__in=long,
            group_prefix__in=sorted({v[:VALUE_INDEX_PREFIX] for v in long}),
        )
    if None in values:
        wanted |= Q(group_value__isnull=True)
    # Through aliases of the one joined row: a filter on grouping__value would join it again.
    return qs.alias(
        group_value=F("grouping__value"),
        group_prefix=Left("grouping__value", VALUE_INDEX_PREFIX),
    ).filter(wanted)


def runs_search_grouped(
    *,
    user: Any,
    experiment_ids: list[str],
    filter_string: str | None,
    view_type: str,
    order_by: list[str],
    group: tuple[str, str],
    max_results: int,
    page_token: str | None,
    figure_budget: int = 0,
) -> GroupedPage:
    """A runs_search page in group order (group_order; the search's own order within a group).
    Two queries: every group's size (one aggregate, at most MAX_GROUPS groups, else an
    InvalidParameterValue saying so), from which the groups the page covers follow; then the
    page of runs from those groups only. The page token is bound to the grouping as well.

    Over more than BOUNDED_FROM runs, for a page starting before WALK_BEFORE, the groups are
    counted one by one instead, only as far as the page needs (_walk_groups): a group that
    goes on past the page, or past figure_budget runs, has the size None ("more than"), and
    the total is None unless every group was counted.

    The page's groups, in page order while they hold at most figure_budget runs together,
    are `figured`: their runs' ids, for group_figures. When that is every group of the page,
    the page query reads all their runs and the page is cut from them: the groups' runs are
    found once rather than twice, and the figures need no search of their own."""
    from core.pagination import decode_page_token, encode_page_token

    scope = {
        **runs_search_scope(
            user=user,
            experiment_ids=experiment_ids,
            filter_string=filter_string,
            view_type=view_type,
            order_by=order_by,
        ),
        "group": list(group),
    }
    offset = decode_page_token(page_token, scope)
    if not scope["experiments"]:
        return GroupedPage([], {}, 0, NO_RUN, NO_RUN, offset, None, scope)
    base = _grouped_runs(scope["experiments"], view_type, filter_string, *group)
    hint = (tuple(scope["experiments"]), view_type, filter_string or "", tuple(group))
    matched = None  # (run id, group value) of every run the search matches, when read
    if filter_string and _last_matched.get(hint, FEW_MATCHES + 1) <= FEW_MATCHES:
        found = list(base.values_list("run_id", F("grouping__value"))[: FEW_MATCHES + 1])
        matched = found if len(found) <= FEW_MATCHES else None
    page_groups = None
    if (
        matched is None
        and offset < WALK_BEFORE
        and runs_search_count(  # the experiments' runs, read only as far as BOUNDED_FROM
            readable_experiment_ids=scope["experiments"],
            filter_string=None,
            view_type=view_type,
            limit=BOUNDED_FROM,
        )
        > BOUNDED_FROM
    ):
        values = _group_values(*group)
        if values is not None:
            ordered = sorted(values, key=group_order)
            page_groups = _walk_groups(base, ordered, offset, max_results, figure_budget)
    if page_groups is None:
        page_groups = _every_group(base, group, hint, matched, offset, max_results)
    covered, sizes, known = page_groups.covered, page_groups.sizes, page_groups.runs
    figured: list[str | None] = []
    room = figure_budget
    for value, _ in covered:
        size = sizes[value]
        if size is None or size > room:
            break
        figured.append(value)
        room -= size
    rows: list[tuple[str, str | None]] = []
    figured_runs: Iterable[tuple[str, str | None]] = ()
    if matched is not None:
        rows = _page_of_matched(
            scope["experiments"], view_type, order_by, matched, covered, offset, max_results
        )
        wanted = set(figured)
        figured_runs = [(run_id, value) for run_id, value in matched if value in wanted]
    elif covered and all(value in known for value, _ in covered):
        # Every run of the page's groups was read by the walk: the page is read by their ids.
        read = [(run_id, value) for value, _ in covered for run_id in known[value]]
        rows = _page_of_matched(
            scope["experiments"], view_type, order_by, read, covered, offset, max_results
        )
    elif covered and len(figured) == len(covered):
        qs = _in_group_order(_in_groups(base, figured), order_by, covered)
        figured_runs = list(qs.values_list("run_id", F("grouping__value")))
        skip = offset - covered[0][1]
        rows = figured_runs[skip : skip + max_results]
    elif 0 < len(covered) <= PER_GROUP_READS:
        # A query per group: each is then ordered by the search alone, which a metric order
        # reads from the (key, value) index (run_search.page_of_runs) and stops early.
        for value, first in covered:
            if len(rows) == max_results:
                break
            start = max(0, offset - first)
            ids = run_search.page_of_runs(
                _in_groups(base, [value]), order_by, start, max_results - len(rows)
            )
            rows += [(run_id, value) for run_id in ids]
    elif covered:
        qs = _in_group_order(_in_groups(base, [v for v, _ in covered]), order_by, covered)
        skip = offset - covered[0][1]
        rows = list(qs.values_list("run_id", F("grouping__value"))[skip : skip + max_results])
    if figured and not figured_runs and all(value in known for value in figured):
        figured_runs = [(run_id, value) for value in figured for run_id in known[value]]
    elif figured and not figured_runs:
        figured_runs = _in_groups(base, figured).values_list("run_id", F("grouping__value"))
    runs_of: dict[str | None, list[str]] = {value: [] for value in figured}
    for run_id, value in figured_runs:
        runs_of[value].append(run_id)
    after = page_groups.after
    token = encode_page_token(offset + max_results, scope) if after is not NO_RUN else None
    return GroupedPage(
        rows, sizes, page_groups.total, page_groups.before, after, offset, token, scope, runs_of
    )


@dataclass(frozen=True)
class _Groups:
    """Where a grouped page stands: the groups it covers (value, first position) in order,
    their sizes (None: more than were counted), the group value of the run just before the
    page and just after it (NO_RUN when none), the total (None when not every group was
    counted), and the run ids of those of its groups whose every run was read."""

    covered: list[tuple[str | None, int]]
    sizes: dict[str | None, int | None]
    before: Any
    after: Any
    total: int | None
    runs: dict[str | None, list[str]] = field(default_factory=dict)


def _every_group(
    base: QuerySet[Run],
    group: tuple[str, str],
    hint: tuple,
    matched: list[tuple[str, str | None]] | None,
    offset: int,
    max_results: int,
) -> _Groups:
    """Every group's size, from the matching runs when they were read, else one aggregate."""
    if matched is not None:
        sizes: dict[str | None, int] = dict(Counter(value for _, value in matched))
    else:
        counted: Any = base.values(value=F("grouping__value")).annotate(runs=Count("run_id"))
        sizes = {row["value"]: row["runs"] for row in counted.order_by()[: MAX_GROUPS + 1]}
    if len(sizes) > MAX_GROUPS:
        raise TooManyGroups(
            f"Grouping by the {group[0]} “{group[1]}” makes more than {MAX_GROUPS} groups; "
            "group by a key with fewer values, or filter the runs first."
        )
    _last_matched.put(hint, sum(sizes.values()), process_cache.epoch(process_cache.ACCESS))
    spans, start = [], 0  # (value, first position) in group order
    for value in sorted(sizes, key=group_order):
        spans.append((value, start))
        start += sizes[value]
    total = start

    def group_at(position: int) -> Any:
        if not 0 <= position < total:
            return NO_RUN
        return next(v for v, first in reversed(spans) if first <= position)

    covered = [(v, first) for v, first in spans if first < offset + max_results]
    covered = [(v, first) for v, first in covered if first + sizes[v] > offset]
    page_sizes: dict[str | None, int | None] = {v: sizes[v] for v, _ in covered}
    return _Groups(
        covered,
        page_sizes,
        group_at(offset - 1),
        group_at(offset + max_results),
        total,
    )


def _group_values(kind: str, key: str) -> list[str] | None:
    """Every value the param or tag `key` has on any run (any experiment), read from its
    (key, value prefix) index one value at a time (a loose index scan: one probe per value,
    not a row per run). None when there are more than MAX_GROUPS, or when a value may be
    longer than the prefix: such groups need their values whole, which the aggregate reads."""
    table = (Param if kind == "param" else RunTag)._meta.db_table
    prefix = (
        f"LEFT(value, {VALUE_INDEX_PREFIX})"  # the index's own expression
        if connection.vendor == "postgresql"
        else f"SUBSTR(value, 1, {VALUE_INDEX_PREFIX})"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE found(value) AS ("
            f"SELECT (SELECT {prefix} FROM {table} WHERE key = %s ORDER BY {prefix} LIMIT 1) "
            f"UNION ALL SELECT (SELECT {prefix} FROM {table} WHERE key = %s "
            f"AND {prefix} > found.value ORDER BY {prefix} LIMIT 1) "
            "FROM found WHERE found.value IS NOT NULL) "
            "SELECT value FROM found WHERE value IS NOT NULL LIMIT %s",
            [key, key, MAX_GROUPS + 1],
        )
        values = [row[0] for row in cursor.fetchall()]
    if len(values) > MAX_GROUPS or any(len(v) >= VALUE_INDEX_PREFIX for v in values):
        return None
    return values


def _walk_groups(
    base: QuerySet[Run],
    values: list[str],
    offset: int,
    max_results: int,
    counted_to: int,
) -> _Groups | None:
    """The groups a page covers, found one group at a time in group order (the runs lacking
    the key last), each read stopped as soon as it says what the page needs. A group that may
    lie before the page is counted (exactly, when it does: its runs move the page's groups
    along); the others are read as run ids. The first group that reaches past the page's end
    or past `counted_to` runs is "more than" (size None) and ends the walk. The ids of the
    page's groups read whole are kept: the page and its figures are then read by id, without
    searching again. Values no matching run has cost a read each; past MAX_GROUP_PROBES reads,
    None (one aggregate is cheaper)."""
    end = offset + max_results
    covered: list[tuple[str | None, int]] = []
    sizes: dict[str | None, int | None] = {}
    runs: dict[str | None, list[str]] = {}
    before, previous, position = NO_RUN, NO_RUN, 0
    candidates: list[str | None] = [*values, None]
    for probes, value in enumerate(candidates):
        if probes == MAX_GROUP_PROBES:
            return None
        need = max(end + 1 - position, counted_to + 1)
        in_group = _in_groups(base, [value])
        ids: list[str] | None = None
        if position < offset:  # it may lie wholly before the page: counted, its ids unused
            count = in_group.values("run_id")[:need].count()
        else:
            ids = list(in_group.values_list("run_id", flat=True)[:need])
            count = len(ids)
        if not count:
            continue
        exact = count < need
        if exact and position + count <= offset:  # wholly before the page
            position += count
            previous = value
            continue
        if position >= end:  # the first run after the page begins this group
            return _Groups(covered, sizes, before, value, None, runs)
        if not covered:
            before = value if position < offset else previous
        covered.append((value, position))
        sizes[value] = count if exact else None
        if exact and ids is not None:
            runs[value] = ids
        if not exact or position + count > end:
            return _Groups(covered, sizes, before, value, None, runs)
        position += count
    return _Groups(covered, sizes, before, NO_RUN, position, runs)


def _page_of_matched(
    experiment_ids: list[int],
    view_type: str,
    order_by: list[str],
    matched: list[tuple[str, str | None]],
    covered: list[tuple[str | None, int]],
    offset: int,
    count: int,
) -> list[tuple[str, str | None]]:
    """A grouped page when every run the search matches is known (run id, group value): the
    covered groups' runs read by id (the filter is not searched again) in the search's order,
    then put in group order in Python (a stable sort keeps the search's order within each)."""
    if not covered:
        return []
    group_of = {run_id: value for run_id, value in matched}
    rank = {value: i for i, (value, _) in enumerate(covered)}
    qs = _view_filter(Run.objects.filter(experiment_id__in=experiment_ids), view_type).filter(
        AnyOf(F("run_id"), [run_id for run_id, value in matched if value in rank])
    )
    skip = offset - covered[0][1]
    if len(covered) == 1:  # the page's slice of the one group, cut in SQL
        ids = run_search.page_of_runs(qs, order_by, skip, count)
    else:
        in_order = run_search.order_runs(qs, order_by).values_list("run_id", flat=True)
        ids = sorted(in_order, key=lambda run_id: rank[group_of[run_id]])[skip : skip + count]
    return [(run_id, group_of[run_id]) for run_id in ids]


def _in_group_order(qs: QuerySet[Run], order_by: list[str], covered: list) -> QuerySet[Run]:
    """The runs of the covered groups (value, first position) in their order, the search's
    order within each."""
    qs = run_search.order_runs(qs, order_by)
    if len(covered) < 2:
        return qs
    rank = Case(
        *(When(grouping__value=v, then=Value(i)) for i, (v, _) in enumerate(covered)),
        default=Value(len(covered)),
        output_field=IntegerField(),
    )
    return qs.order_by(rank, *qs.query.order_by)


def group_figures(
    groups: dict[str | None, list[str]], metric_keys: list[str]
) -> dict[str | None, dict[str, Any]]:
    """For groups of a grouped runs search (value, or None for the runs lacking the key, to its
    runs' ids: GroupedPage.figured): how many runs, and per metric key the mean, lowest and
    highest latest value over those of its runs that have it (NaN left out). One read of the
    runs' latest values by run id (at most the figure budget's runs): the search that found
    the runs is not run again."""
    group_of = {run_id: value for value, run_ids in groups.items() for run_id in run_ids}
    values: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    if group_of and metric_keys:
        latest = LatestMetric.objects.filter(
            AnyOf(F("run_id"), list(group_of)), key__in=metric_keys, is_nan=False
        ).values_list("run_id", "key", "value")
        for run_id, key, value in latest:
            values[group_of[run_id], key].append(value)
    figures: dict[str | None, dict[str, Any]] = {}
    for group, run_ids in groups.items():
        metrics = {}
        for key in metric_keys:
            found = values.get((group, key), [])
            metrics[key] = {
                "mean": sum(found) / len(found) if found else None,
                "min": min(found, default=None),
                "max": max(found, default=None),
                "runs": len(found),
            }
        figures[group] = {"runs": len(run_ids), "metrics": metrics}
    return figures


def metric_history(
    *, run_id: str, key: str, max_results: Any, page_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    from core.pagination import decode_page_token, encode_page_token, validate_max_results

    run = run_get(run_id)
    limit = (
        validate_max_results(max_results, default=None, maximum=10**9)
        if max_results not in (None, "")
        else None
    )
    scope = {"endpoint": "metrics/get-history", "run": run.run_id, "key": key, "limit": limit}
    offset = decode_page_token(page_token, scope)
    qs = Metric.objects.filter(run_id=run.run_id, key=key).order_by(
        "timestamp", "step", "value", "id"
    )
    fields = (
        "key",
        "value",
        "is_nan",
        "timestamp",
        "step",
        "model_id",
        "dataset_name",
        "dataset_digest",
    )
    if limit is None:
        rows = list(qs.values_list(*fields)[offset:])
        token = None
    else:
        rows = list(qs.values_list(*fields)[offset : offset + limit + 1])
        token = encode_page_token(offset + limit, scope) if len(rows) > limit else None
        rows = rows[:limit]
    metrics = []
    for k, value, is_nan, ts, step, model_id, ds_name, ds_digest in rows:
        point: dict[str, Any] = {
            "key": k,
            "value": _metric_value(value, is_nan),
            "timestamp": ts,
            "step": step,
            "run_id": run.run_id,
        }
        if model_id:
            point["model_id"] = model_id
        if ds_name:
            point["dataset_name"] = ds_name
            point["dataset_digest"] = ds_digest
        metrics.append(point)
    return metrics, token


def _evenly_spaced(total: int, count: int) -> list[int]:
    """At most `count` evenly spaced indices into `total` items, first and last included."""
    if total <= count:
        return list(range(total))
    if count == 1:
        return [total - 1]
    stride = (total - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)})


def metric_history_bulk(*, run_ids: list[str], key: str, max_results: int) -> list[dict[str, Any]]:
    """Every point of `key` in `run_ids` (ascending run id, then timestamp, step, value), the
    first `max_results` of them, as MLflow's get-history-bulk answers."""
    rows = (
        Metric.objects.filter(run_id__in=run_ids, key=key)
        .order_by("run_id", "timestamp", "step", "value", "id")
        .values_list("run_id", "key", "value", "is_nan", "timestamp", "step")[:max_results]
    )
    return [
        {
            "key": k,
            "value": _metric_value(value, is_nan),
            "timestamp": ts,
            "step": step,
            "run_id": run_id,
        }
        for run_id, k, value, is_nan, ts, step in rows
    ]


def metric_history_bulk_interval(
    *, run_ids: list[str], key: str, start_step: int | None, end_step: int | None, max_results: int
) -> list[dict[str, Any]]:
    """The points of `key` at steps sampled across all the runs together, as MLflow's store
    does (mlflow.store.tracking.abstract_store): the union of every run's steps is sampled
    evenly to `max_results` (the range's last step kept), each run's first and last step are
    added, and each run answers its points at those steps, so the runs' charts line up on
    the same steps. Without a range the range is 0 to the largest step logged."""
    steps_by_run: dict[str, set[int]] = defaultdict(set)
    for run_id, step in (
        Metric.objects.filter(run_id__in=run_ids, key=key).values_list("run_id", "step").distinct()
    ):
        steps_by_run[run_id].add(step)
    all_steps = sorted(set().union(*steps_by_run.values()))
    if start_step is None or end_step is None:
        start_step, end_step = 0, (all_steps[-1] if all_steps else 0)
    in_range = [step for step in all_steps if start_step <= step <= end_step]
    sampled = {in_range[i] for i in _evenly_spaced_by_interval(len(in_range), max_results)}
    sampled |= {
        step
        for steps in steps_by_run.values()
        for step in (min(steps), max(steps))
        if start_step <= step <= end_step
    }
    per_run_limit = max(max_results, len(sampled))
    rows_by_run: dict[str, list[tuple]] = defaultdict(list)
    for row in (
        Metric.objects.filter(run_id__in=run_ids, key=key, step__in=sampled)
        .order_by("step", "timestamp", "value", "id")
        .values_list("run_id", "value", "is_nan", "timestamp", "step")
    ):
        rows_by_run[row[0]].append(row)
    result = []
    for run_id in run_ids:
        rows = rows_by_run.get(run_id, [])
        for index in _evenly_spaced(len(rows), per_run_limit):
            _, value, is_nan, ts, step = rows[index]
            result.append(
                {
                    "key": key,
                    "value": _metric_value(value, is_nan),
                    "timestamp": ts,
                    "step": step,
                    "run_id": run_id,
                }
            )
    return result


def _evenly_spaced_by_interval(total: int, count: int) -> list[int]:
    """MLflow's step sampling: every `total / count`-th index, and the last one."""
    if total <= count:
        return list(range(total))
    interval = total / count
    return sorted({int(i * interval) for i in range(count)} | {total - 1})


MAX_DATASET_SUMMARIES = 1000  # MLflow's MAX_DATASET_SUMMARIES_RESULTS


def dataset_summaries(*, user: Any, experiment_ids: list[str]) -> list[dict[str, Any]]:
    """The distinct (experiment, dataset name, digest, context) of the runs' inputs in the
    readable ones of `experiment_ids` (the UI's dataset filter); unreadable or missing
    experiments contribute nothing, as missing ones do in MLflow."""
    ids = sorted({parse_experiment_id(e) for e in experiment_ids})
    rows = (
        RunInput.objects.filter(
            permissions_q(user, "run__experiment_id"), run__experiment_id__in=ids
        )
        .values_list("dataset__experiment_id", "dataset__name", "dataset__digest", "context")
        .order_by("dataset__experiment_id", "dataset__name", "dataset__digest", "context")
        .distinct()[:MAX_DATASET_SUMMARIES]
    )
    summaries = []
    for experiment_id, name, digest, context in rows:
        summary = {"experiment_id": str(experiment_id), "name": name, "digest": digest}
        if context:
            summary["context"] = context
        summaries.append(summary)
    return summaries


# ---------------------------------------------------------------------------------------------
# Logged models


def logged_model_get(
    model_id: str, *, for_update: bool = False, allow_deleted: bool = False
) -> LoggedModel:
    model_id = identifiers.logged_model_id(model_id)
    qs = LoggedModel.objects.select_for_update() if for_update else LoggedModel.objects
    model = qs.filter(model_id=model_id).first()
    if model is None or (model.lifecycle_stage == LifecycleStage.DELETED and not allow_deleted):
        raise ResourceDoesNotExist(f"Logged model with id={model_id} not found")
    return model


def logged_model_payloads(models: Sequence[LoggedModel]) -> list[dict[str, Any]]:
    ids = [m.model_id for m in models]
    tags: dict[str, list] = defaultdict(list)
    for model_id, key, text in LoggedModelTag.objects.filter(model_id__in=ids).values_list(
        "model_id", "key", "value"
    ):
        tags[model_id].append({"key": key, "value": text})
    params: dict[str, list] = defaultdict(list)
    for model_id, key, text in LoggedModelParam.objects.filter(model_id__in=ids).values_list(
        "model_id", "key", "value"
    ):
        params[model_id].append({"key": key, "value": text})
    metrics: dict[str, list] = defaultdict(list)
    for model_id, run_id, key, value, is_nan, ts, step, ds_name, ds_digest in (
        Metric.objects.filter(model_id__in=ids)
        .order_by("key", "step", "timestamp")
        .values_list(
            "model_id",
            "run_id",
            "key",
            "value",
            "is_nan",
            "timestamp",
            "step",
            "dataset_name",
            "dataset_digest",
        )
    ):
        point: dict[str, Any] = {
            "key": key,
            "value": _metric_value(value, is_nan),
            "timestamp": ts,
            "step": step,
            "run_id": run_id,
            "model_id": model_id,
        }
        if ds_name:
            point["dataset_name"] = ds_name
            point["dataset_digest"] = ds_digest
        metrics[model_id].append(point)
    result = []
    for m in models:
        info: dict[str, Any] = {
            "model_id": m.model_id,
            "experiment_id": str(m.experiment_id),
            "name": m.name,
            "creation_timestamp_ms": m.creation_timestamp,
            "last_updated_timestamp_ms": m.last_updated_timestamp,
            "artifact_uri": m.artifact_uri,
            "status": m.status,
            "tags": tags.get(m.model_id, []),
        }
        if m.model_type:
            info["model_type"] = m.model_type
        if m.source_run_id or m.source_run_reference:
            info["source_run_id"] = m.source_run_id or m.source_run_reference
        if m.creator_id.isascii() and m.creator_id.isdigit():
            info["creator_id"] = int(m.creator_id)
        if m.status_message:
            info["status_message"] = m.status_message
        result.append(
            {
                "info": info,
                "data": {
                    "params": params.get(m.model_id, []),
                    "metrics": metrics.get(m.model_id, []),
                },
            }
        )
    return result


def logged_models_search(
    *,
    user: Any,
    experiment_ids: list[str],
    filter_string: str | None,
    datasets: list[dict[str, Any]],
    max_results: Any,
    order_by: list[dict[str, Any]],
    page_token: str | None,
) -> tuple[list[LoggedModel], str | None]:
    from core.pagination import decode_page_token, encode_page_token, validate_max_results

    limit = validate_max_results(max_results, default=50, maximum=50000)
    ids = sorted({parse_experiment_id(e) for e in experiment_ids})
    scope = {
        "endpoint": "logged-models/search",
        "experiments": ids,
        "filter": filter_string or "",
        "datasets": datasets,
        "order_by": order_by,
    }
    offset = decode_page_token(page_token, scope)
    qs = LoggedModel.objects.filter(
        permissions_q(user, "experiment_id"), lifecycle_stage=LifecycleStage.ACTIVE
    )
    if ids:
        qs = qs.filter(experiment_id__in=ids)
    qs = logged_model_search.filter_logged_models(qs, filter_string, datasets or None)
    qs = logged_model_search.order_logged_models(qs, order_by)
    rows = list(qs[offset : offset + limit + 1])
    token = encode_page_token(offset + limit, scope) if len(rows) > limit else None
    return rows[:limit], token

"""Writes to tracking state. Each public function is one transaction; lifecycle changes of
experiments, runs and logged models write their audit event in that same transaction."""

from __future__ import annotations

import functools
import json
import math
import time
import uuid
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Model

from audit import services as audit
from core import process_cache
from core.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from core.mlflow_api import check_text, clean_name, name_identity, normalize_name, to_int64
from core.prepared import insert_of, server_prepared_cursor, stored
from tracking import permissions, selectors
from tracking.models import (
    Dataset,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LifecycleStage,
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunInputTag,
    RunModelInput,
    RunOutput,
    RunStatus,
    RunTag,
)
from tracking.names import generate_name
from tracking.validation import (
    MAX_DATASET_DIGEST,
    MAX_DATASET_NAME,
    MAX_DATASET_PROFILE,
    MAX_DATASET_SCHEMA,
    MAX_DATASET_SOURCE,
    MAX_EXPERIMENT_NAME_LENGTH,
    MAX_EXPERIMENT_TAG_VALUE_LENGTH,
    MAX_INPUT_TAG_KEY,
    MAX_INPUT_TAG_VALUE,
    MAX_PARAM_VALUE_LENGTH,
    MAX_RUN_NAME_LENGTH,
    MAX_RUN_TAG_VALUE_LENGTH,
    check_batch_limits,
    parse_key_values,
    parse_metric,
    validate_key,
    value_as_text,
)

RUN_NAME_TAG = "mlflow.runName"
DATASET_CONTEXT_TAG = "mlflow.data.context"
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"
# On a logged model: the registered versions built from it, `[{"name", "version"}, ...]`.
MODEL_VERSIONS_TAG = "mlflow.modelVersions"


def now_ms() -> int:
    return int(time.time() * 1000)


def _experiment_snapshot(experiment: Experiment) -> dict[str, Any]:
    return {
        "name": experiment.name,
        "lifecycle_stage": experiment.lifecycle_stage,
        "artifact_location": experiment.artifact_location,
    }


def _run_snapshot(run: Run) -> dict[str, Any]:
    return {
        "experiment_id": str(run.experiment_id),
        "name": run.name,
        "status": run.status,
        "lifecycle_stage": run.lifecycle_stage,
        "user_id": run.user_id,
    }


def _require_active_experiment(experiment: Experiment, action: str) -> None:
    if experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(
            f"The experiment {experiment.experiment_id} must be in the 'active' state to "
            f"{action}. Current state is {experiment.lifecycle_stage}."
        )


def _require_active_run(run: Run) -> None:
    if run.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(
            f"The run {run.run_id} must be in the 'active' state. "
            f"Current state is {run.lifecycle_stage}."
        )


def _lock_run(run_id: str) -> Run:
    # Writers to one run queue on its row, so the latest-metric upsert and the param
    # "changed value" check see each other's committed rows.
    run = Run.objects.select_for_update().filter(run_id=run_id).first()
    if run is None:
        raise ResourceDoesNotExist(f"Run with id={run_id} not found")
    return run


# ---------------------------------------------------------------------------------------------
# Experiments


def _clean_experiment_name(name: str | None) -> str:
    return clean_name(name, "experiment name", max_length=MAX_EXPERIMENT_NAME_LENGTH)


def _name_taken(name: str) -> ResourceAlreadyExists:
    existing = (
        Experiment.objects.filter(name_key=name_identity(name))
        .values_list("name", flat=True)
        .first()
    )
    detail = f" (as '{existing}')" if existing and existing != name else ""
    return ResourceAlreadyExists(
        f"Experiment(name={name}) already exists{detail}. Names are unique regardless of case "
        "and look-alike characters; deleted experiments keep their names."
    )


def _insert_experiment(*, name: str, experiment_id: int | None = None, **fields: Any) -> Experiment:
    """A new experiment row with its server-assigned artifact location; `experiment_id` is
    given only by imports, which keep a source's free ids."""
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                **({"experiment_id": experiment_id} if experiment_id is not None else {}),
                name=name,
                name_key=name_identity(name),
                artifact_location="",
                **fields,
            )
    except IntegrityError:
        raise _name_taken(name) from None
    if experiment_id is not None and connection.vendor == "postgresql":
        # The next id the server assigns must be above the ones inserted (SQLite's
        # AUTOINCREMENT follows explicit ids by itself).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('tracking_experiment', 'experiment_id'), "
                "GREATEST((SELECT MAX(experiment_id) FROM tracking_experiment), 1))"
            )
    experiment.artifact_location = f"mlflow-artifacts:/{experiment.experiment_id}"
    experiment.save(update_fields=["artifact_location"])
    return experiment


@transaction.atomic
def experiment_create(
    *,
    name: str | None,
    artifact_location: str | None = None,
    tags: Iterable[dict[str, Any]] = (),
    created_by: str = "",
    owner: Any = None,
) -> Experiment:
    name = _clean_experiment_name(name)
    if artifact_location:
        # Storage locations are assigned by the server: a client-chosen location is how
        # MLflow's file-read CVEs started (reference/security.md §1a).
        raise InvalidParameterValue(
            "artifact_location is assigned by the server and cannot be set by the client; "
            "omit it to get mlflow-artifacts:/<experiment_id>."
        )
    parsed_tags = parse_key_values(
        list(tags), "tag", value_limit=MAX_EXPERIMENT_TAG_VALUE_LENGTH, truncate_values=False
    )
    now = now_ms()
    experiment = _insert_experiment(
        name=name, creation_time=now, last_update_time=now, created_by=created_by
    )
    ExperimentTag.objects.bulk_create(
        [ExperimentTag(experiment=experiment, key=k, value=v) for k, v in dict(parsed_tags).items()]
    )
    permissions.grant_creator(experiment, owner)
    audit.record(
        action="experiment.create",
        object_type="experiment",
        object_id=experiment.experiment_id,
        object_name=name,
        after=_experiment_snapshot(experiment),
    )
    return experiment


@transaction.atomic
def experiment_rename(*, experiment_id: str, new_name: str | None) -> Experiment:
    experiment = selectors.experiment_get(experiment_id, for_update=True)
    _require_active_experiment(experiment, "be renamed")
    new_name = _clean_experiment_name(new_name)
    before = _experiment_snapshot(experiment)
    experiment.name = new_name
    experiment.name_key = name_identity(new_name)
    experiment.last_update_time = now_ms()
    try:
        with transaction.atomic():
            experiment.save(update_fields=["name", "name_key", "last_update_time"])
    except IntegrityError:
        raise _name_taken(new_name) from None
    audit.record(
        action="experiment.rename",
        object_type="experiment",
        object_id=experiment.experiment_id,
        object_name=new_name,
        before=before,
        after=_experiment_snapshot(experiment),
    )
    return experiment


@transaction.atomic
def experiment_delete(*, experiment_id: str) -> None:
    experiment = selectors.experiment_get(experiment_id, for_update=True)
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        return
    before = _experiment_snapshot(experiment)
    now = now_ms()
    experiment.lifecycle_stage = LifecycleStage.DELETED
    experiment.last_update_time = now
    experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
    # Deleting an experiment deletes its active runs; the shared timestamp lets restore
    # bring back exactly those runs and not ones deleted on their own before.
    Run.objects.filter(experiment=experiment, lifecycle_stage=LifecycleStage.ACTIVE).update(
        lifecycle_stage=LifecycleStage.DELETED, deleted_time=now
    )
    process_cache.changed_in_database(process_cache.LIFECYCLE)  # no signal for an update
    audit.record(
        action="experiment.delete",
        object_type="experiment",
        object_id=experiment.experiment_id,
        object_name=experiment.name,
        before=before,
        after=_experiment_snapshot(experiment),
    )


@transaction.atomic
def experiment_restore(*, experiment_id: str) -> None:
    experiment = selectors.experiment_get(experiment_id, for_update=True)
    if experiment.lifecycle_stage == LifecycleStage.ACTIVE:
        return
    before = _experiment_snapshot(experiment)
    deleted_at = experiment.last_update_time
    experiment.lifecycle_stage = LifecycleStage.ACTIVE
    experiment.last_update_time = now_ms()
    experiment.save(update_fields=["lifecycle_stage", "last_update_time"])
    Run.objects.filter(
        experiment=experiment, lifecycle_stage=LifecycleStage.DELETED, deleted_time=deleted_at
    ).update(lifecycle_stage=LifecycleStage.ACTIVE, deleted_time=None)
    process_cache.changed_in_database(process_cache.LIFECYCLE)  # no signal for an update
    audit.record(
        action="experiment.restore",
        object_type="experiment",
        object_id=experiment.experiment_id,
        object_name=experiment.name,
        before=before,
        after=_experiment_snapshot(experiment),
    )


@transaction.atomic
def experiment_set_tag(*, experiment_id: str, key: Any, value: Any) -> None:
    experiment = selectors.experiment_get(experiment_id)
    _require_active_experiment(experiment, "set tags")
    ((key, value),) = parse_key_values(
        [{"key": key, "value": value}],
        "tag",
        value_limit=MAX_EXPERIMENT_TAG_VALUE_LENGTH,
        truncate_values=False,
    )
    ExperimentTag.objects.update_or_create(
        experiment=experiment, key=key, defaults={"value": value}
    )


@transaction.atomic
def experiment_delete_tag(*, experiment_id: str, key: Any) -> None:
    experiment = selectors.experiment_get(experiment_id)
    _require_active_experiment(experiment, "delete tags")
    key = validate_key(key, "tag")
    deleted, _ = ExperimentTag.objects.filter(experiment=experiment, key=key).delete()
    if not deleted:
        raise ResourceDoesNotExist(
            f"No tag with name: {key} in experiment with id {experiment.experiment_id}"
        )


# ---------------------------------------------------------------------------------------------
# Runs


@transaction.atomic
def run_create(
    *,
    experiment_id: str | None,
    user_id: str,
    run_name: str | None,
    start_time: int | None,
    tags: Iterable[dict[str, Any]] = (),
    experiment: Experiment | None = None,
) -> Run:
    """`experiment`: the experiment as the access layer found it, when it is the one named.
    The run comes back with `tags_at_creation` (its tags, as stored), so the answer needs no
    read of what was just written; once committed, the process knows its experiment
    (`permissions.remember_run`), as it would after reading it."""
    epoch = process_cache.epoch(process_cache.ACCESS)
    wanted = experiment_id if experiment_id not in (None, "") else "0"
    if experiment is None or str(experiment.pk) != str(wanted):
        experiment = selectors.experiment_get(wanted)
    _require_active_experiment(experiment, "create runs")
    parsed_tags = dict(
        parse_key_values(
            list(tags), "tag", value_limit=MAX_RUN_TAG_VALUE_LENGTH, truncate_values=True
        )
    )
    tag_name = parsed_tags.get(RUN_NAME_TAG)
    if run_name and tag_name and run_name != tag_name:
        raise InvalidParameterValue(
            f"Both 'run_name' argument and 'mlflow.runName' tag are specified, but with "
            f"different values (run_name='{run_name}', mlflow.runName='{tag_name}')."
        )
    name = run_name or tag_name or generate_name()
    if len(name) > MAX_RUN_NAME_LENGTH:
        raise InvalidParameterValue(
            f"Run name exceeds the maximum length of {MAX_RUN_NAME_LENGTH} characters."
        )
    parsed_tags[RUN_NAME_TAG] = name
    run_id = uuid.uuid4().hex
    run = Run(
        run_id=run_id,
        experiment=experiment,
        name=name,
        user_id=user_id,
        status=RunStatus.RUNNING,
        start_time=start_time if start_time is not None else now_ms(),
        artifact_uri=f"{experiment.artifact_location}/{run_id}/artifacts",
    )
    if connection.vendor == "postgresql":
        _insert_run_with_tags(run, parsed_tags)
    else:
        run.save(force_insert=True)
        RunTag.objects.bulk_create(
            [RunTag(run=run, key=k, value=v) for k, v in parsed_tags.items()]
        )
    run.tags_at_creation = dict(parsed_tags)  # type: ignore[attr-defined]
    transaction.on_commit(functools.partial(permissions.remember_run, run_id, experiment.pk, epoch))
    audit.record(
        action="run.create",
        object_type="run",
        object_id=run_id,
        object_name=name,
        after=_run_snapshot(run),
    )
    return run


def _insert_run_with_tags(run: Run, tags: dict[str, str]) -> None:
    """PostgreSQL: the run (the ORM's own INSERT) and its tags (`_recordset`) in one
    statement, a data-modifying CTE: one round trip fewer for every run created. The tags'
    triggers (tracking.ExperimentKey) fire at the end of the statement and see the run."""
    insert, params = insert_of(run)
    columns, rows = _recordset(RunTag, ("key", "value"))
    with server_prepared_cursor() as cursor:
        cursor.execute(
            f"WITH run AS ({insert}) INSERT INTO "
            f"{connection.ops.quote_name(RunTag._meta.db_table)} ({columns}) {rows}",
            [*params, run.run_id, _json_rows(("key", "value"), tags.items())],
        )
    stored(run)


def run_update(
    *,
    run_id: str,
    status: str | None,
    end_time: int | None,
    run_name: str | None,
    run: Run | None = None,
) -> Run:
    """`run`: the run as the access layer found it. A change of status or end time is then
    one UPDATE conditioned on the run being active (no lock, no transaction); a rename also
    writes the name tag, so it queues on the run's row."""
    if run is not None and run.run_id == run_id and not run_name:
        fields = {
            name: value
            for name, value in (("status", status), ("end_time", end_time))
            if value is not None
        }
        _require_active_run(run)
        active = Run.objects.filter(pk=run_id, lifecycle_stage=LifecycleStage.ACTIVE)
        if not fields or active.update(**fields):
            for name, value in fields.items():
                setattr(run, name, value)
            return run
        # Deleted since the access decision read it: the locked path says so.
    with transaction.atomic():
        return _update_locked(run_id, status, end_time, run_name)


def run_update_decided(
    *, run_id: str, experiment_id: int, status: str | None, end_time: int | None
) -> Run | None:
    """PostgreSQL, a run decided on from its cached experiment (a DecidedRun): the status and
    end time given, as one UPDATE that writes only if the run is active in that experiment and
    returns the run; None when it is not (nothing written: decide again from the stored
    run)."""
    fields = list(Run._meta.concrete_fields)
    quote = connection.ops.quote_name
    returning = ", ".join(quote(str(field.column)) for field in fields)
    with server_prepared_cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Run._meta.db_table)} SET "
            f"{quote('status')} = COALESCE(%s::varchar, {quote('status')}), "
            f"{quote('end_time')} = COALESCE(%s::bigint, {quote('end_time')}) "
            f"WHERE {quote('run_id')} = %s AND {quote('experiment_id')} = %s "
            f"AND {quote('lifecycle_stage')} = '{LifecycleStage.ACTIVE}' RETURNING {returning}",
            [status, end_time, run_id, experiment_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return Run.from_db(connection.alias, [field.attname for field in fields], row)


def _update_locked(
    run_id: str, status: str | None, end_time: int | None, run_name: str | None
) -> Run:
    run = _lock_run(run_id)
    _require_active_run(run)
    fields = []
    if status is not None:
        run.status = status
        fields.append("status")
    if end_time is not None:
        run.end_time = end_time
        fields.append("end_time")
    if run_name:
        if len(run_name) > MAX_RUN_NAME_LENGTH:
            raise InvalidParameterValue(
                f"Run name exceeds the maximum length of {MAX_RUN_NAME_LENGTH} characters."
            )
        run.name = run_name
        fields.append("name")
        _upsert_run_tags(run, [(RUN_NAME_TAG, run_name)])
    if fields:
        run.save(update_fields=fields)
    return run


def _set_run_lifecycle(run_id: str, stage: str, action: str) -> None:
    run = _lock_run(run_id)
    if run.lifecycle_stage == stage:
        return
    before = _run_snapshot(run)
    run.lifecycle_stage = stage
    run.deleted_time = now_ms() if stage == LifecycleStage.DELETED else None
    run.save(update_fields=["lifecycle_stage", "deleted_time"])
    audit.record(
        action=action,
        object_type="run",
        object_id=run.run_id,
        object_name=run.name,
        before=before,
        after=_run_snapshot(run),
    )


@transaction.atomic
def run_delete(*, run_id: str) -> None:
    _set_run_lifecycle(run_id, LifecycleStage.DELETED, "run.delete")


@transaction.atomic
def run_restore(*, run_id: str) -> None:
    run = selectors.run_get(run_id)
    if run.experiment.lifecycle_stage != LifecycleStage.ACTIVE:
        raise InvalidParameterValue(
            f"Cannot restore run {run_id}: its experiment {run.experiment_id} is deleted; "
            "restore the experiment instead."
        )
    _set_run_lifecycle(run_id, LifecycleStage.ACTIVE, "run.restore")


def _upsert_run_tags(run: Run, tags: list[tuple[str, str]]) -> None:
    if not tags:
        return
    latest = dict(tags)
    RunTag.objects.bulk_create(
        [RunTag(run=run, key=k, value=v) for k, v in latest.items()],
        update_conflicts=True,
        unique_fields=["run", "key"],
        update_fields=["value"],
    )
    if RUN_NAME_TAG in latest and latest[RUN_NAME_TAG] != run.name:
        run.name = latest[RUN_NAME_TAG][:MAX_RUN_NAME_LENGTH]
        run.save(update_fields=["name"])


def _distinct_params(params: list[tuple[str, str]]) -> dict[str, str]:
    """The batch's params by key; a key sent twice must carry the same value."""
    seen: dict[str, str] = {}
    for key, value in params:
        if key in seen and seen[key] != value:
            raise InvalidParameterValue(
                f"Duplicate parameter keys have been submitted: ['{key}']. Please ensure the "
                "request contains only one param value per param key."
            )
        seen[key] = value
    return seen


def _changed_params(run: Run, params: dict[str, str]) -> dict[str, str]:
    """The stored params among these keys, raising MLflow's error for the first whose
    stored value differs from the one sent (a param is written once)."""
    existing = dict(Param.objects.filter(run=run, key__in=list(params)).values_list("key", "value"))
    for key, value in params.items():
        if key in existing and existing[key] != value:
            raise InvalidParameterValue(
                f"Changing param values is not allowed. Param with key='{key}' was already "
                f"logged with value='{existing[key]}' for run ID='{run.run_id}'. Attempted "
                f"logging new value '{value}'."
            )
    return existing


def _insert_params(run: Run, params: list[tuple[str, str]]) -> None:
    if not params:
        return
    seen = _distinct_params(params)
    existing = _changed_params(run, seen)
    Param.objects.bulk_create(
        [Param(run=run, key=k, value=v) for k, v in seen.items() if k not in existing]
    )


def _metric_order(step: int, timestamp: int, value: float, is_nan: bool) -> tuple:
    # "Latest" is the largest (step, timestamp, value); a NaN value ranks below numbers.
    return (step, timestamp, not is_nan, -math.inf if is_nan else value)


# A point as stored: the metric table's columns after run_id, in this order.
_POINT_COLUMNS = (
    "key",
    "value",
    "is_nan",
    "timestamp",
    "step",
    "model_id",
    "dataset_name",
    "dataset_digest",
)
_LATEST_COLUMNS = ("key", "value", "is_nan", "timestamp", "step", "history_version")


def _metric_points(
    metrics: list[dict[str, Any]],
) -> tuple[list[tuple], dict[str, dict[str, Any]]]:
    """The points to store (`_POINT_COLUMNS`), and each key's newest point among them with
    the number of its points sent (`history_version`, what the write adds to the stored one)."""
    points = []
    newest: dict[str, dict[str, Any]] = {}
    sent: dict[str, int] = {}
    for m in metrics:
        is_nan = math.isnan(m["value"])
        value = 0.0 if is_nan else m["value"]
        points.append(
            (
                m["key"],
                value,
                is_nan,
                m["timestamp"],
                m["step"],
                m["model_id"],
                m["dataset_name"],
                m["dataset_digest"],
            )
        )
        candidate = {
            "value": value,
            "is_nan": is_nan,
            "timestamp": m["timestamp"],
            "step": m["step"],
        }
        sent[m["key"]] = sent.get(m["key"], 0) + 1
        current = newest.get(m["key"])
        if current is None or _metric_order(**candidate) > _metric_order(**current):
            newest[m["key"]] = candidate
    return points, {k: {**p, "history_version": sent[k]} for k, p in newest.items()}


def _insert_metrics(run: Run, metrics: list[dict[str, Any]]) -> None:
    if not metrics:
        return
    points, newest = _metric_points(metrics)
    # A point identical to one already stored is the client re-sending it (with model_id,
    # after log_model): it is accepted and not duplicated.
    Metric.objects.bulk_create(
        [Metric(run=run, **dict(zip(_POINT_COLUMNS, point, strict=True))) for point in points],
        ignore_conflicts=True,
        batch_size=1000,
    )
    items = list(newest.items())
    for start in range(0, len(items), 500):
        sql, params = _upsert_latest_sql(run.pk, items[start : start + 500])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _recordset(model: type[Model], names: tuple[str, ...]) -> tuple[str, str]:
    """PostgreSQL: `(run_id, columns)` and a SELECT of rows sent as two parameters, the run's
    id and one JSON array of objects keyed by these fields' columns (`_json_rows`). One text
    parameter whatever the number of rows: the driver dumped a batch of 1,000 metrics as nine
    arrays in 9 ms, longer than PostgreSQL took to insert them."""
    fields = [model._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = [quote(str(field.column)) for field in fields]  # type: ignore[union-attr]
    types = ", ".join(
        f"{column} {field.db_type(connection)}"
        for column, field in zip(columns, fields, strict=True)
    )
    picked = ", ".join(f"r.{column}" for column in columns)
    return (
        f"{quote('run_id')}, {', '.join(columns)}",
        f"SELECT %s::text, {picked} FROM json_to_recordset(%s::json) AS r({types})",
    )


def _json_rows(names: tuple[str, ...], rows: Iterable[Iterable[Any]], double: str = "") -> str:
    """Rows for `_recordset` (values in the order of `names`). JSON has no infinities: in the
    column `double`, one goes as the text PostgreSQL's float input reads."""
    objects = [dict(zip(names, row, strict=True)) for row in rows]
    # A sum is finite only if every value is (NaN is stored as 0.0 with is_nan).
    if double and not math.isfinite(sum(o[double] for o in objects)):
        for o in objects:
            if math.isinf(o[double]):
                o[double] = "Infinity" if o[double] > 0 else "-Infinity"
    return orjson.dumps(objects).decode()


@functools.cache
def _one_statement_sql(params: bool, tags: bool, metrics: bool, guarded: bool = False) -> str:
    """The text of `_log_one_statement` for a batch of this shape (the same on every call:
    built once per process). Guarded: every row is written only if the run is active in the
    experiment given (its first two parameters), and the statement answers whether it was."""
    quote = connection.ops.quote_name

    def rows_of(model: type[Model], names: tuple[str, ...]) -> tuple[str, str]:
        columns, rows = _recordset(model, names)
        return columns, rows + (" WHERE EXISTS (SELECT 1 FROM live)" if guarded else "")

    writes = []
    if params:
        table = quote(Param._meta.db_table)
        columns, rows = rows_of(Param, ("key", "value"))
        writes.append(
            f"INSERT INTO {table} ({columns}) {rows} ON CONFLICT (run_id, key) "
            f"DO UPDATE SET value = NULL WHERE {table}.value <> excluded.value"
        )
    if tags:
        columns, rows = rows_of(RunTag, ("key", "value"))
        writes.append(
            f"INSERT INTO {quote(RunTag._meta.db_table)} ({columns}) {rows} "
            "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value"
        )
    if metrics:
        columns, rows = rows_of(Metric, _POINT_COLUMNS)
        writes.append(
            f"INSERT INTO {quote(Metric._meta.db_table)} ({columns}) {rows} ON CONFLICT DO NOTHING"
        )
        writes.append(_latest_upsert(*rows_of(LatestMetric, _LATEST_COLUMNS)))
    if guarded:
        run = quote(Run._meta.db_table)
        live = (
            f"SELECT 1 FROM {run} WHERE {quote('run_id')} = %s AND {quote('experiment_id')} = %s"
            f" AND {quote('lifecycle_stage')} = '{LifecycleStage.ACTIVE}'"
        )
        # Data-modifying CTEs run to completion whether or not the last SELECT reads them.
        writes = [live, *writes, "SELECT count(*) FROM live"]
    *ctes, last = writes
    if not ctes:
        return last
    names = ["live" if guarded and i == 0 else f"w{i}" for i in range(len(ctes))]
    return (
        "WITH "
        + ", ".join(f"{n} AS ({sql})" for n, sql in zip(names, ctes, strict=True))
        + " "
        + last
    )


def _log_one_statement(
    run: Run,
    params: dict[str, str],
    tags: dict[str, str],
    metrics: list[dict[str, Any]],
    *,
    in_experiment: int | None = None,
) -> bool:
    """PostgreSQL: a batch as one statement, each table's rows a SELECT from JSON and every
    write but the last a data-modifying CTE. A statement is atomic on its own, so a batch
    costs one round trip, no transaction and no lock on the run: the unique indexes
    arbitrate concurrent writers. A param is written once: a stored param sent again with
    another value is set to NULL on conflict, which its NOT NULL refuses, so the whole
    statement fails and nothing of the batch is kept; the error is then read for MLflow's
    message (`_changed_params`).

    With `in_experiment` (a run decided on from the cache, not read): nothing is written
    unless the run is active in that experiment; answers whether it was."""
    if not (params or tags or metrics):
        return True
    arguments: list[Any] = [] if in_experiment is None else [run.pk, in_experiment]
    for given in (params, tags):
        if given:
            arguments += [run.pk, _json_rows(("key", "value"), given.items())]
    if metrics:
        points, newest = _metric_points(metrics)
        arguments += [run.pk, _json_rows(_POINT_COLUMNS, points, "value")]
        latest = ((key, *(p[c] for c in _LATEST_COLUMNS[1:])) for key, p in newest.items())
        arguments += [run.pk, _json_rows(_LATEST_COLUMNS, latest, "value")]
    sql = _one_statement_sql(bool(params), bool(tags), bool(metrics), in_experiment is not None)
    # Inside a caller's transaction a refused statement would abort it: a savepoint keeps
    # it usable for the read of the error (only params can be refused).
    guard = transaction.atomic() if params and connection.in_atomic_block else nullcontext()
    try:
        with guard, server_prepared_cursor() as cursor:
            cursor.execute(sql, arguments)
            return in_experiment is None or cursor.fetchone()[0] > 0
    except IntegrityError:
        if params:
            _changed_params(run, params)
        if not Run.objects.filter(pk=run.pk).exists():  # deleted for good meanwhile
            raise ResourceDoesNotExist(f"Run with id={run.run_id} not found") from None
        raise


def _upsert_latest_sql(run_id: str, items: list[tuple[str, dict[str, Any]]]) -> tuple[str, list]:
    """One statement for these keys (VALUES rows: SQLite, and PostgreSQL outside the
    one-statement path)."""
    columns = ", ".join(connection.ops.quote_name(name) for name in ("run_id", *_LATEST_COLUMNS))
    values = "VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(items))
    params: list[Any] = []
    for key, c in items:
        params += [run_id, key, *(c[column] for column in _LATEST_COLUMNS[1:])]
    return _latest_upsert(columns, values), params


def _latest_upsert(columns: str, rows: str) -> str:
    """Insert each key's newest point, or replace the stored one when the new point ranks
    higher (`_metric_order`: step, timestamp, a number above NaN, value); either way add the
    points sent to `history_version`. The conflict arbitration makes concurrent writers to
    one run safe without a lock on the run (PostgreSQL and SQLite 3.24+ share the syntax)."""
    table = connection.ops.quote_name(LatestMetric._meta.db_table)
    q = {c: connection.ops.quote_name(c) for c in ("run_id", *_LATEST_COLUMNS)}

    def order(row: str) -> str:
        return (
            f"({row}.{q['step']}, {row}.{q['timestamp']}, "
            f"CASE WHEN {row}.{q['is_nan']} THEN 0 ELSE 1 END, {row}.{q['value']})"
        )

    newer = f"{order('excluded')} > {order(table)}"
    point_columns = _LATEST_COLUMNS[1:-1]
    return (
        f"INSERT INTO {table} ({columns}) {rows} "
        f"ON CONFLICT ({q['run_id']}, {q['key']}) DO UPDATE SET "
        + ", ".join(
            f"{q[c]} = CASE WHEN {newer} THEN excluded.{q[c]} ELSE {table}.{q[c]} END"
            for c in point_columns
        )
        + f", {q['history_version']} = {table}.{q['history_version']}"
        f" + excluded.{q['history_version']}"
    )


class RunNotAsDecided(Exception):
    """A write decided on from the cached experiment of a run found the run not active in
    that experiment, and wrote nothing: the caller decides again from the stored run."""


def run_log_batch(
    *,
    run_id: str,
    metrics: list[dict[str, Any]] = (),  # type: ignore[assignment]
    params: list[dict[str, Any]] = (),  # type: ignore[assignment]
    tags: list[dict[str, Any]] = (),  # type: ignore[assignment]
    run: Run | None = None,
    decided_experiment: int | None = None,
) -> None:
    """`run`: the run as the access layer found it. On PostgreSQL the batch is then one
    statement with no lock on the run (`_log_one_statement`), unless it sets the run's name
    tag, which renames the run: that batch, and on SQLite any batch with params or tags,
    queues on the run's row.

    `decided_experiment`: the access layer decided on the run's cached experiment without
    reading the run (PostgreSQL). The one statement then writes only if the run is active
    in that experiment; otherwise, or for a batch that renames the run, RunNotAsDecided
    (nothing written)."""
    check_batch_limits(len(metrics), len(params), len(tags))
    parsed_metrics = [parse_metric(m) for m in metrics]
    parsed_params = parse_key_values(
        list(params), "param", value_limit=MAX_PARAM_VALUE_LENGTH, truncate_values=True
    )
    parsed_tags = parse_key_values(
        list(tags), "tag", value_limit=MAX_RUN_TAG_VALUE_LENGTH, truncate_values=True
    )
    if decided_experiment is not None:
        latest_tags = dict(parsed_tags)
        if connection.vendor != "postgresql" or RUN_NAME_TAG in latest_tags:
            raise RunNotAsDecided(run_id)
        written = _log_one_statement(
            Run(run_id=run_id, experiment_id=decided_experiment),
            _distinct_params(parsed_params),
            latest_tags,
            parsed_metrics,
            in_experiment=decided_experiment,
        )
        if not written:
            raise RunNotAsDecided(run_id)
        return
    if run is not None and run.run_id == run_id:
        latest_tags = dict(parsed_tags)
        if connection.vendor == "postgresql" and RUN_NAME_TAG not in latest_tags:
            # The name tag also renames the run: that batch takes the locked path below.
            _require_active_run(run)
            _log_one_statement(run, _distinct_params(parsed_params), latest_tags, parsed_metrics)
            return
        if not parsed_params and not parsed_tags:
            _require_active_run(run)
            with transaction.atomic():
                _insert_metrics(run, parsed_metrics)
            return
    with transaction.atomic():
        run = _lock_run(run_id)
        _require_active_run(run)
        _insert_params(run, parsed_params)
        _upsert_run_tags(run, parsed_tags)
        _insert_metrics(run, parsed_metrics)


@transaction.atomic
def run_delete_tag(*, run_id: str, key: Any) -> None:
    run = _lock_run(run_id)
    _require_active_run(run)
    key = validate_key(key, "tag")
    deleted, _ = RunTag.objects.filter(run=run, key=key).delete()
    if not deleted:
        raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run_id}")


NOTE_TAG = "mlflow.note.content"  # where MLflow keeps a run's description
SYSTEM_TAG_PREFIX = "mlflow."


@transaction.atomic
def run_edit(
    *,
    run_id: str,
    name: str | None = None,
    description: str | None = None,
    set_tags: Iterable[tuple[str, str]] = (),
    delete_tags: Iterable[str] = (),
) -> Run:
    """A person's edit of a run from the web UI: its name, its description (MLflow's
    `mlflow.note.content` tag) and its own tags. System tags (`mlflow.*`) are the client's
    record of the run and are not edited here. Audited as one `run.edit` event with the
    fields that changed, before and after; an edit that changes nothing records nothing."""
    run = _lock_run(run_id)
    _require_active_run(run)
    current = dict(RunTag.objects.filter(run=run).values_list("key", "value"))
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if name is not None:
        name = check_text(name, "run name").strip()
        if not name:
            raise InvalidParameterValue("A run name cannot be empty.")
        if len(name) > MAX_RUN_NAME_LENGTH:
            raise InvalidParameterValue(
                f"Run name exceeds the maximum length of {MAX_RUN_NAME_LENGTH} characters."
            )
        if name != run.name:
            before["name"], after["name"] = run.name, name
    if description is not None:
        description = check_text(description, "description")
        if len(description) > MAX_RUN_TAG_VALUE_LENGTH:
            raise InvalidParameterValue(
                f"A description may be at most {MAX_RUN_TAG_VALUE_LENGTH} characters."
            )
        if description != current.get(NOTE_TAG, ""):
            before["description"] = current.get(NOTE_TAG, "")
            after["description"] = description
    tags_before: dict[str, str | None] = {}
    tags_after: dict[str, str | None] = {}
    for key, value in set_tags:
        key = _user_tag_key(key)
        value = check_text(value, f"tag {key}")
        if len(value) > MAX_RUN_TAG_VALUE_LENGTH:
            raise InvalidParameterValue(
                f"Tag values may be at most {MAX_RUN_TAG_VALUE_LENGTH} characters."
            )
        if current.get(key) != value:
            tags_before[key], tags_after[key] = current.get(key), value
    for key in delete_tags:
        key = _user_tag_key(key)
        if key not in current:
            raise ResourceDoesNotExist(f"No tag with name: {key} in run with id {run_id}")
        tags_before[key], tags_after[key] = current[key], None
    if tags_after:
        before["tags"], after["tags"] = tags_before, tags_after
    if not after:
        return run
    if "name" in after:
        run.name = after["name"]
        run.save(update_fields=["name"])
    upserts = [(k, v) for k, v in tags_after.items() if v is not None]
    if "name" in after:
        upserts.append((RUN_NAME_TAG, after["name"]))
    if "description" in after:
        upserts.append((NOTE_TAG, after["description"]))
    _upsert_run_tags(run, upserts)
    removed = [k for k, v in tags_after.items() if v is None]
    if removed:
        RunTag.objects.filter(run=run, key__in=removed).delete()
    audit.record(
        action="run.edit",
        object_type="run",
        object_id=run.run_id,
        object_name=run.name,
        before=before,
        after=after,
    )
    return run


def _user_tag_key(key: Any) -> str:
    key = validate_key(key, "tag")
    if key.startswith(SYSTEM_TAG_PREFIX):
        raise InvalidParameterValue(
            f"'{key}' is a system tag: mlflow.* tags record how the run was made and are set "
            "by the MLflow client, not edited here (the run name and description have their "
            "own fields)."
        )
    return key


@transaction.atomic
def run_append_log_model_history(*, run_id: str, model_json: str | None) -> None:
    """Legacy MLflow 2 `runs/log-model`: append the model description to a run tag."""
    if not model_json:
        raise InvalidParameterValue("Missing value for required parameter 'model_json'.")
    try:
        entry = json.loads(model_json)
    except ValueError:
        raise InvalidParameterValue("model_json is not valid JSON.") from None
    run = _lock_run(run_id)
    _require_active_run(run)
    current = RunTag.objects.filter(run=run, key=LOG_MODEL_HISTORY_TAG).first()
    history = json.loads(current.value) if current else []
    history.append(entry)
    value = json.dumps(history)
    if len(value) > MAX_RUN_TAG_VALUE_LENGTH:
        raise InvalidParameterValue("The model history of this run is full.")
    _upsert_run_tags(run, [(LOG_MODEL_HISTORY_TAG, value)])


def _clean_dataset(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidParameterValue("Each dataset input must carry a 'dataset' object.")

    def text(field: str, limit: int, *, required: bool = False) -> str:
        value = raw.get(field)
        if value in (None, ""):
            if required:
                raise InvalidParameterValue(f"Dataset is missing the required field '{field}'.")
            return ""
        value = value_as_text(value, f"dataset {field}")
        if len(value) > limit:
            raise InvalidParameterValue(
                f"Dataset {field} exceeds the maximum length of {limit} characters."
            )
        return value

    return {
        "name": text("name", MAX_DATASET_NAME, required=True),
        "digest": text("digest", MAX_DATASET_DIGEST, required=True),
        "source_type": text("source_type", 36),
        "source": text("source", MAX_DATASET_SOURCE),
        "schema": text("schema", MAX_DATASET_SCHEMA),
        "profile": text("profile", MAX_DATASET_PROFILE),
    }


@transaction.atomic
def run_log_inputs(
    *, run_id: str, datasets: list[dict[str, Any]], models: list[dict[str, Any]]
) -> None:
    cleaned = []
    for item in datasets:
        if not isinstance(item, dict):
            raise InvalidParameterValue("Each dataset input must be an object.")
        dataset = _clean_dataset(item.get("dataset"))
        tag_pairs: list[tuple[str, str]] = []
        for tag in item.get("tags") or []:
            if not isinstance(tag, dict):
                raise InvalidParameterValue("Dataset input tags must be objects.")
            key = check_text(tag.get("key") or "", "input tag key", max_length=MAX_INPUT_TAG_KEY)
            if not key:
                raise InvalidParameterValue("Dataset input tags need a non-empty key.")
            value = value_as_text(tag.get("value"), "input tag value")
            if len(value) > MAX_INPUT_TAG_VALUE:
                raise InvalidParameterValue(
                    f"Dataset input tag value exceeds the maximum length of "
                    f"{MAX_INPUT_TAG_VALUE} characters."
                )
            tag_pairs.append((key, value))
        cleaned.append((dataset, dict(tag_pairs)))
    model_ids = []
    for item in models:
        model_id = item.get("model_id") if isinstance(item, dict) else None
        if not model_id:
            raise InvalidParameterValue("Each model input needs a 'model_id'.")
        model_ids.append(check_text(model_id, "model_id", max_length=64))
    run = _lock_run(run_id)
    _require_active_run(run)
    for dataset_fields, tags in cleaned:
        stored_dataset, _ = Dataset.objects.get_or_create(
            experiment_id=run.experiment_id,
            name=dataset_fields["name"],
            digest=dataset_fields["digest"],
            defaults=dataset_fields,
        )
        run_input, created = RunInput.objects.get_or_create(
            run=run, dataset=stored_dataset, defaults={"context": tags.get(DATASET_CONTEXT_TAG, "")}
        )
        if created and tags:
            RunInputTag.objects.bulk_create(
                [RunInputTag(run_input=run_input, key=k, value=v) for k, v in tags.items()]
            )
    if model_ids:
        found = set(LoggedModel.objects.filter(model_id__in=model_ids).values_list("pk", flat=True))
        missing = [m for m in model_ids if m not in found]
        if missing:
            raise ResourceDoesNotExist(f"Logged model with id={missing[0]} not found")
        RunModelInput.objects.bulk_create(
            [RunModelInput(run=run, model_id=m) for m in model_ids], ignore_conflicts=True
        )


@transaction.atomic
def run_log_outputs(*, run_id: str, models: list[dict[str, Any]]) -> None:
    outputs = []
    for item in models:
        if not isinstance(item, dict) or not item.get("model_id"):
            raise InvalidParameterValue("Each model output needs a 'model_id'.")
        outputs.append(
            (
                check_text(item["model_id"], "model_id", max_length=64),
                to_int64(item.get("step") or 0, "step"),
            )
        )
    run = _lock_run(run_id)
    _require_active_run(run)
    found = set(
        LoggedModel.objects.filter(model_id__in=[m for m, _ in outputs]).values_list(
            "pk", flat=True
        )
    )
    for model_id, _ in outputs:
        if model_id not in found:
            raise ResourceDoesNotExist(f"Logged model with id={model_id} not found")
    RunOutput.objects.bulk_create(
        [RunOutput(run=run, model_id=m, step=s) for m, s in outputs], ignore_conflicts=True
    )


# ---------------------------------------------------------------------------------------------
# Logged models (MLflow 3)


def _logged_model_snapshot(model: LoggedModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "experiment_id": str(model.experiment_id),
        "source_run_id": model.source_run_id or model.source_run_reference,
        "status": model.status,
        "lifecycle_stage": model.lifecycle_stage,
    }


_LOGGED_MODEL_NAME_FORBIDDEN = ("/", ":", ".", "%", '"', "'")


@transaction.atomic
def logged_model_create(
    *,
    experiment_id: str | None,
    name: str | None,
    model_type: str | None,
    source_run_id: str | None,
    params: list[dict[str, Any]],
    tags: list[dict[str, Any]],
    creator_id: str = "",
) -> LoggedModel:
    if experiment_id in (None, ""):
        raise InvalidParameterValue("Missing value for required parameter 'experiment_id'.")
    experiment = selectors.experiment_get(experiment_id)
    _require_active_experiment(experiment, "create logged models")
    name = normalize_name(check_text(name, "name", max_length=500)) if name else generate_name()
    if any(c in name for c in _LOGGED_MODEL_NAME_FORBIDDEN):
        # MLflow's rule: the name becomes part of `models:/` URIs and artifact paths.
        raise InvalidParameterValue(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_LOGGED_MODEL_NAME_FORBIDDEN}"
        )
    parsed_params = dict(
        parse_key_values(params, "param", value_limit=MAX_PARAM_VALUE_LENGTH, truncate_values=True)
    )
    parsed_tags = dict(
        parse_key_values(tags, "tag", value_limit=MAX_RUN_TAG_VALUE_LENGTH, truncate_values=True)
    )
    # MLflow stores any source_run_id. Only a run of the model's own experiment is linked:
    # a run elsewhere would lend the model its lineage and, once registered, its metrics
    # and tags to the promotion policy; and whether it exists must not show.
    source_run_id = check_text(source_run_id or "", "source_run_id", max_length=256)
    source_run = (
        Run.objects.filter(run_id=source_run_id, experiment=experiment).first()
        if source_run_id
        else None
    )
    now = now_ms()
    model_id = f"m-{uuid.uuid4().hex}"
    model = LoggedModel.objects.create(
        model_id=model_id,
        experiment=experiment,
        name=name,
        model_type=check_text(model_type or "", "model_type", max_length=500),
        source_run=source_run,
        source_run_reference="" if source_run is not None else source_run_id,
        creation_timestamp=now,
        last_updated_timestamp=now,
        artifact_uri=f"{experiment.artifact_location}/models/{model_id}/artifacts",
        creator_id=creator_id,
    )
    LoggedModelParam.objects.bulk_create(
        [LoggedModelParam(model=model, key=k, value=v) for k, v in parsed_params.items()]
    )
    LoggedModelTag.objects.bulk_create(
        [LoggedModelTag(model=model, key=k, value=v) for k, v in parsed_tags.items()]
    )
    audit.record(
        action="logged_model.create",
        object_type="logged_model",
        object_id=model_id,
        object_name=name,
        after=_logged_model_snapshot(model),
    )
    return model


_FINAL_STATUSES = {
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
    "2": LoggedModelStatus.READY,
    "3": LoggedModelStatus.FAILED,
}


@transaction.atomic
def logged_model_finalize(*, model_id: str, status: Any) -> LoggedModel:
    key = str(status) if status is not None else ""
    if key not in _FINAL_STATUSES:
        raise InvalidParameterValue(
            f"Invalid status {status!r} for finalizing a logged model. Allowed: "
            "LOGGED_MODEL_READY, LOGGED_MODEL_UPLOAD_FAILED."
        )
    model = selectors.logged_model_get(model_id, for_update=True)
    model.status = _FINAL_STATUSES[key]
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["status", "last_updated_timestamp"])
    return model


@transaction.atomic
def logged_model_set_tags(*, model_id: str, tags: list[dict[str, Any]]) -> None:
    model = selectors.logged_model_get(model_id, for_update=True)
    parsed = dict(
        parse_key_values(tags, "tag", value_limit=MAX_RUN_TAG_VALUE_LENGTH, truncate_values=True)
    )
    if MODEL_VERSIONS_TAG in parsed:
        parsed[MODEL_VERSIONS_TAG] = _merged_version_links(parsed[MODEL_VERSIONS_TAG])
    LoggedModelTag.objects.bulk_create(
        [LoggedModelTag(model=model, key=k, value=v) for k, v in parsed.items()],
        update_conflicts=True,
        unique_fields=["model", "key"],
        update_fields=["value"],
    )
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["last_updated_timestamp"])


def _version_links_json(links: Iterable[tuple[str, str]]) -> str:
    return json.dumps([{"name": name, "version": version} for name, version in links])


def _merged_version_links(value: str) -> str:
    """The client's own `mlflow.modelVersions` write (mlflow.register_model reads the tag,
    appends the version it created and writes it back, after the server has already added
    it): the same list with each (name, version) once, versions as strings as on the wire.
    A value that is not such a list is kept as sent, as MLflow keeps it."""
    try:
        entries = json.loads(value)
    except ValueError:
        return value
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and {"name", "version"} <= e.keys() for e in entries
    ):
        return value
    links = dict.fromkeys((str(e["name"]), str(e["version"])) for e in entries)
    return _version_links_json(links)


@transaction.atomic
def logged_model_set_version_links(*, model_id: str, links: list[tuple[str, str]]) -> None:
    """Set the `mlflow.modelVersions` tag to exactly the registered versions (name, version)
    built from this logged model, or remove it when there are none. Called by the registry
    in the transaction that creates, deletes or renames them, so the tag never disagrees
    with the registry. A logged model that no longer exists has nothing to keep."""
    model = LoggedModel.objects.select_for_update().filter(model_id=model_id).first()
    if model is None:
        return
    if links:
        LoggedModelTag.objects.update_or_create(
            model=model, key=MODEL_VERSIONS_TAG, defaults={"value": _version_links_json(links)}
        )
    else:
        LoggedModelTag.objects.filter(model=model, key=MODEL_VERSIONS_TAG).delete()


@transaction.atomic
def logged_model_delete_tag(*, model_id: str, key: str) -> None:
    model = selectors.logged_model_get(model_id, for_update=True)
    deleted, _ = LoggedModelTag.objects.filter(model=model, key=key).delete()
    if not deleted:
        raise ResourceDoesNotExist(f"No tag with key {key!r} on logged model {model_id}")


@transaction.atomic
def logged_model_log_params(*, model_id: str, params: list[dict[str, Any]]) -> None:
    model = selectors.logged_model_get(model_id, for_update=True)
    parsed = dict(
        parse_key_values(params, "param", value_limit=MAX_PARAM_VALUE_LENGTH, truncate_values=True)
    )
    LoggedModelParam.objects.bulk_create(
        [LoggedModelParam(model=model, key=k, value=v) for k, v in parsed.items()],
        update_conflicts=True,
        unique_fields=["model", "key"],
        update_fields=["value"],
    )


@transaction.atomic
def logged_model_delete(*, model_id: str) -> None:
    model = selectors.logged_model_get(model_id, for_update=True)
    if model.lifecycle_stage == LifecycleStage.DELETED:
        return
    before = _logged_model_snapshot(model)
    model.lifecycle_stage = LifecycleStage.DELETED
    model.last_updated_timestamp = now_ms()
    model.save(update_fields=["lifecycle_stage", "last_updated_timestamp"])
    audit.record(
        action="logged_model.delete",
        object_type="logged_model",
        object_id=model.model_id,
        object_name=model.name,
        before=before,
        after=_logged_model_snapshot(model),
    )


# ---------------------------------------------------------------------------------------------
# Imports from another MLflow server (mlflow_import). History is written as it was: original
# ids, times, users and states, in bulk, with one `*.import` audit event per object naming
# the source server. Nothing here is reachable from an HTTP route.


@dataclass
class ImportedRun:
    run_id: str
    name: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    deleted_time: int | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[dict[str, Any]]  # every point: key, value, timestamp, step, model_id...
    # (dataset fields: name, digest, source_type, source, schema, profile; input tags)
    datasets: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)
    source_id: str = ""


@transaction.atomic
def experiment_import(
    *,
    experiment_id: int | None,
    name: str,
    lifecycle_stage: str,
    creation_time: int,
    last_update_time: int,
    tags: dict[str, str],
    source: dict[str, Any],
    existing: Experiment | None = None,
    merge: bool = False,
) -> Experiment:
    """Create (with `experiment_id` when given, i.e. free) or bring up to date an imported
    experiment. `existing` is the experiment an earlier import made, or (`merge`) one of the
    same name that was here before, which receives the source's runs and tags but keeps its
    own tags and state."""
    name = _clean_experiment_name(name)
    if lifecycle_stage not in LifecycleStage.values:
        raise InvalidParameterValue(f"Unknown lifecycle stage {lifecycle_stage!r}.")
    before = _experiment_snapshot(existing) if existing else None
    if existing is None:
        experiment = _insert_experiment(
            name=name,
            experiment_id=experiment_id,
            lifecycle_stage=lifecycle_stage,
            creation_time=creation_time,
            last_update_time=last_update_time,
        )
    elif merge:
        experiment = existing
    else:
        experiment = existing
        experiment.name, experiment.name_key = name, name_identity(name)
        experiment.lifecycle_stage = lifecycle_stage
        experiment.last_update_time = last_update_time
        try:
            with transaction.atomic():
                experiment.save(
                    update_fields=["name", "name_key", "lifecycle_stage", "last_update_time"]
                )
        except IntegrityError:
            raise _name_taken(name) from None
        ExperimentTag.objects.filter(experiment=experiment).exclude(key__in=list(tags)).delete()
    ExperimentTag.objects.bulk_create(
        [ExperimentTag(experiment=experiment, key=k, value=v) for k, v in tags.items()],
        update_conflicts=True,
        unique_fields=["experiment", "key"],
        update_fields=["value"],
    )
    audit.record(
        action="experiment.import",
        object_type="experiment",
        object_id=experiment.experiment_id,
        object_name=name,
        before=before,
        after={**_experiment_snapshot(experiment), "source": source},
    )
    return experiment


def _metric_rows(
    run_id: str, points: list[dict[str, Any]]
) -> tuple[list[Metric], list[LatestMetric]]:
    rows: list[Metric] = []
    newest: dict[str, dict[str, Any]] = {}
    sent: dict[str, int] = {}
    for m in points:
        value = float(m["value"])
        is_nan = math.isnan(value)
        point: dict[str, Any] = {
            "value": 0.0 if is_nan else value,
            "is_nan": is_nan,
            "timestamp": int(m["timestamp"]),
            "step": int(m.get("step") or 0),
        }
        rows.append(
            Metric(
                run_id=run_id,
                key=m["key"],
                model_id=m.get("model_id") or "",
                dataset_name=m.get("dataset_name") or "",
                dataset_digest=m.get("dataset_digest") or "",
                **point,
            )
        )
        sent[m["key"]] = sent.get(m["key"], 0) + 1
        current = newest.get(m["key"])
        if current is None or _metric_order(**point) > _metric_order(**current):
            newest[m["key"]] = point
    latest = [
        LatestMetric(run_id=run_id, key=k, history_version=sent[k], **p) for k, p in newest.items()
    ]
    return rows, latest


@transaction.atomic
def runs_import(
    *, experiment: Experiment, runs: list[ImportedRun], replace: set[str], source: dict[str, Any]
) -> None:
    """Write a batch of imported runs of one experiment in a few statements. Runs in
    `replace` were imported before and changed at the source: their params, tags, inputs and
    latest metrics are rewritten; metric points are only ever added (a point is immutable)."""
    if not runs:
        return
    run_fields = ["experiment", "name", "user_id", "status", "start_time", "end_time",
                  "lifecycle_stage", "deleted_time", "artifact_uri"]  # fmt: skip
    Run.objects.bulk_create(
        [
            Run(
                run_id=r.run_id,
                experiment=experiment,
                name=r.name[:MAX_RUN_NAME_LENGTH],
                user_id=r.user_id,
                status=r.status,
                start_time=r.start_time,
                end_time=r.end_time,
                lifecycle_stage=r.lifecycle_stage,
                deleted_time=r.deleted_time,
                artifact_uri=f"{experiment.artifact_location}/{r.run_id}/artifacts",
            )
            for r in runs
        ],
        update_conflicts=bool(replace),
        unique_fields=["run_id"] if replace else None,
        update_fields=run_fields if replace else None,
    )
    versions: dict[tuple[str, str], int] = {}
    if replace:
        # A rewritten run may name another experiment and artifact directory: the processes'
        # cached run experiments (tracking.permissions) go; the upsert's update bumped the
        # artifact owners' family in the database (tracking migration 0010).
        process_cache.bump(process_cache.ACCESS)
        process_cache.changed_in_database(process_cache.LIFECYCLE)
        ids = list(replace)
        # A rewritten latest value keeps counting from the old history_version (it only rises).
        versions = {
            (run_id, key): version
            for run_id, key, version in LatestMetric.objects.filter(run_id__in=ids).values_list(
                "run_id", "key", "history_version"
            )
        }
        for model in (Param, RunTag, LatestMetric, RunInput):
            model.objects.filter(run_id__in=ids).delete()
    params, tags, metrics, latest = [], [], [], []
    for r in runs:
        params += [Param(run_id=r.run_id, key=k, value=v) for k, v in r.params.items()]
        tags += [RunTag(run_id=r.run_id, key=k, value=v) for k, v in r.tags.items()]
        points, newest = _metric_rows(r.run_id, r.metrics)
        metrics += points
        for row in newest:
            row.history_version += versions.get((row.run_id, row.key), 0)
        latest += newest
    Param.objects.bulk_create(params, batch_size=1000)
    RunTag.objects.bulk_create(tags, batch_size=1000)
    Metric.objects.bulk_create(metrics, ignore_conflicts=True, batch_size=2000)
    LatestMetric.objects.bulk_create(latest, batch_size=1000)
    _import_run_inputs(experiment, runs)
    audit.record_many(
        [
            {
                "action": "run.import",
                "object_type": "run",
                "object_id": r.run_id,
                "object_name": r.name,
                "after": {
                    "experiment_id": str(experiment.experiment_id),
                    "name": r.name,
                    "status": r.status,
                    "lifecycle_stage": r.lifecycle_stage,
                    "user_id": r.user_id,
                    "start_time": r.start_time,
                    "metric_points": len(r.metrics),
                    "source": {**source, "run_id": r.source_id or r.run_id},
                },
                "reason": "re-imported: changed at the source" if r.run_id in replace else "",
            }
            for r in runs
        ]
    )


def _import_run_inputs(experiment: Experiment, runs: list[ImportedRun]) -> None:
    wanted = {(d["name"], d["digest"]): d for r in runs for d, _ in r.datasets}
    if not wanted:
        return
    Dataset.objects.bulk_create(
        [Dataset(experiment=experiment, **d) for d in wanted.values()], ignore_conflicts=True
    )
    ids = {
        (name, digest): pk
        for pk, name, digest in Dataset.objects.filter(
            experiment=experiment, name__in={n for n, _ in wanted}
        ).values_list("pk", "name", "digest")
    }
    inputs, input_tags = [], []
    for r in runs:
        seen = set()
        for d, tags in r.datasets:
            key = (d["name"], d["digest"])
            if key in seen:
                continue
            seen.add(key)
            run_input = RunInput(
                run_id=r.run_id, dataset_id=ids[key], context=tags.get(DATASET_CONTEXT_TAG, "")
            )
            inputs.append(run_input)
            input_tags.append((run_input, tags))
    RunInput.objects.bulk_create(inputs, batch_size=1000)
    RunInputTag.objects.bulk_create(
        [
            RunInputTag(run_input=i, key=k, value=v)
            for i, tags in input_tags
            for k, v in tags.items()
        ],
        batch_size=1000,
    )


@transaction.atomic
def logged_models_import(
    *,
    experiment: Experiment,
    models: list[dict[str, Any]],
    replace: set[str],
    source: dict[str, Any],
) -> None:
    """Imported MLflow 3 logged models with their ids, times, tags and params. Each dict:
    model_id, name, model_type, source_run_id, status, status_message, creation_timestamp,
    last_updated_timestamp, creator_id, tags, params."""
    if not models:
        return
    fields = ["experiment", "name", "model_type", "source_run", "status", "status_message",
              "creation_timestamp", "last_updated_timestamp", "artifact_uri", "creator_id"]  # fmt: skip
    runs = set(
        Run.objects.filter(
            run_id__in=[m["source_run_id"] for m in models if m["source_run_id"]]
        ).values_list("run_id", flat=True)
    )
    LoggedModel.objects.bulk_create(
        [
            LoggedModel(
                model_id=m["model_id"],
                experiment=experiment,
                name=m["name"],
                model_type=m["model_type"],
                source_run_id=m["source_run_id"] if m["source_run_id"] in runs else None,
                status=m["status"],
                status_message=m["status_message"],
                creation_timestamp=m["creation_timestamp"],
                last_updated_timestamp=m["last_updated_timestamp"],
                artifact_uri=f"{experiment.artifact_location}/models/{m['model_id']}/artifacts",
                creator_id=m["creator_id"],
            )
            for m in models
        ],
        update_conflicts=bool(replace),
        unique_fields=["model_id"] if replace else None,
        update_fields=fields if replace else None,
    )
    if replace:
        LoggedModelTag.objects.filter(model_id__in=list(replace)).delete()
        LoggedModelParam.objects.filter(model_id__in=list(replace)).delete()
    LoggedModelTag.objects.bulk_create(
        [
            LoggedModelTag(model_id=m["model_id"], key=k, value=v)
            for m in models
            for k, v in m["tags"].items()
        ]
    )
    LoggedModelParam.objects.bulk_create(
        [
            LoggedModelParam(model_id=m["model_id"], key=k, value=v)
            for m in models
            for k, v in m["params"].items()
        ]
    )
    audit.record_many(
        [
            {
                "action": "logged_model.import",
                "object_type": "logged_model",
                "object_id": m["model_id"],
                "object_name": m["name"],
                "after": {
                    "name": m["name"],
                    "experiment_id": str(experiment.experiment_id),
                    "source_run_id": m["source_run_id"],
                    "status": m["status"],
                    "source": source,
                },
            }
            for m in models
        ]
    )


@transaction.atomic
def run_model_links_import(
    *, outputs: list[tuple[str, str, int]], inputs: list[tuple[str, str]]
) -> None:
    """Run outputs (run, logged model, step) and model inputs (run, logged model) of imported
    runs, once both ends exist; links to models that were not imported are left out."""
    models = set(
        LoggedModel.objects.filter(
            model_id__in={m for _, m, _ in outputs} | {m for _, m in inputs}
        ).values_list("model_id", flat=True)
    )
    RunOutput.objects.bulk_create(
        [RunOutput(run_id=r, model_id=m, step=s) for r, m, s in outputs if m in models],
        ignore_conflicts=True,
    )
    RunModelInput.objects.bulk_create(
        [RunModelInput(run_id=r, model_id=m) for r, m in inputs if m in models],
        ignore_conflicts=True,
    )

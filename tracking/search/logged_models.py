"""Search logged models (MLflow 3): the grammar, compiled to SQL (§5.6)."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    Case,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat, NullIf

from core.errors import InvalidParameterValue
from tracking.models import (
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
)
from tracking.search.grammar import (
    LIST_COMPARATORS,
    MAX_SUBQUERIES,
    NULL_COMPARATORS,
    NUMBER_COMPARATORS,
    STRING_COMPARATORS,
    check_comparator,
    check_order_count,
    duplicate,
    need_number,
    need_strings,
    parse_filter,
)
from tracking.search.sql import (
    KeyedExists,
    direction,
    id_condition,
    number_condition,
    string_condition,
)

# ---------------------------------------------------------------------------------------------
# Logged models (MLflow 3): a simpler grammar with plural prefixes only.

_LM_ENTITIES = {"attributes": "attribute", "metrics": "metric", "params": "param", "tags": "tag"}
_LM_STRING = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "status": "status",
    "source_run_id": "source_run_id",
    "experiment_id": "experiment_id",
}
_LM_NUMBER = {
    "creation_timestamp": "creation_timestamp",
    "creation_time": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
}
_LM_STATUS = {
    "PENDING": LoggedModelStatus.PENDING,
    "READY": LoggedModelStatus.READY,
    "FAILED": LoggedModelStatus.FAILED,
}


def _check_datasets(datasets: Any) -> list[dict[str, Any]]:
    if not datasets:
        return []
    if not isinstance(datasets, list | tuple):
        raise InvalidParameterValue("datasets must be a list of {dataset_name, dataset_digest?}.")
    for d in datasets:
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("dataset_name"), str)
            or not isinstance(d.get("dataset_digest") or "", str)
        ):
            raise InvalidParameterValue(
                "Each entry of datasets needs a string 'dataset_name' and an optional string "
                "'dataset_digest'."
            )
        if not d["dataset_name"]:
            raise InvalidParameterValue(
                "`dataset_name` in the `datasets` clause must be specified."
            )
    return list(datasets)


def _dataset_condition(datasets: list[dict[str, Any]]) -> Q:
    """Metric points logged against any of `datasets` (a digest narrows its name)."""
    condition = Q()
    for d in datasets:
        part = Q(dataset_name=d["dataset_name"])
        if d.get("dataset_digest"):
            part &= Q(dataset_digest=d["dataset_digest"])
        condition |= part
    return condition


def _model_metric_rows(key: str, datasets: list[dict[str, Any]]) -> QuerySet:
    """The model's points of one metric, latest first (largest step, timestamp, value)."""
    rows = Metric.objects.filter(model_id=OuterRef("pk"), key=key)
    if datasets:
        rows = rows.filter(_dataset_condition(datasets))
    return rows.order_by("-step", "-timestamp", "-value", "-id")


def _latest_model_metric_sortable(key: str, datasets: list[dict[str, Any]]) -> Subquery:
    rows = _model_metric_rows(key, datasets).annotate(
        sortable=Case(When(is_nan=True, then=Value(None)), default=F("value"))
    )
    return Subquery(rows.values("sortable")[:1])


def source_run_text() -> Expression:
    """The model's source run id as the client gave it: the linked run's, or the
    unlinked reference (LoggedModel.source_run_reference); NULL when there is none."""
    return NullIf(Concat(Coalesce("source_run_id", Value("")), "source_run_reference"), Value(""))


def filter_logged_models(
    qs: QuerySet[LoggedModel], filter_string: str | None, datasets: list[dict] | None = None
) -> QuerySet:
    datasets = _check_datasets(datasets)
    subqueries = KeyedExists()
    metric_aliases: dict[str, str] = {}
    for entity, key, comparator, value in parse_filter(filter_string):
        if comparator in NULL_COMPARATORS:
            raise InvalidParameterValue(
                "Invalid filter string: IS NULL / IS NOT NULL is not supported for logged models."
            )
        kind = _LM_ENTITIES.get(entity) if entity is not None else "attribute"
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{entity}' in filter string. Valid entity types are "
                "'attributes', 'metrics', 'params' and 'tags' (plural only)."
            )
        if kind == "metric":
            check_comparator(comparator, NUMBER_COMPARATORS, "metrics")
            value = need_number(value, "metric")
            if key not in metric_aliases:
                # One pair of subqueries per metric key, however many clauses use it.
                metric_aliases[key] = f"lm_metric_{len(metric_aliases)}"
                rows = _model_metric_rows(key, datasets)
                qs = qs.annotate(
                    **{
                        metric_aliases[key]: Subquery(rows.values("value")[:1]),
                        f"{metric_aliases[key]}_nan": Subquery(rows.values("is_nan")[:1]),
                    }
                )
            alias_value, alias_nan = metric_aliases[key], f"{metric_aliases[key]}_nan"
            if comparator == "!=":
                condition = Q(**{alias_nan: True}) | (
                    Q(**{alias_nan: False}) & number_condition(alias_value, "!=", value)
                )
            else:
                condition = Q(**{alias_nan: False}) & number_condition(
                    alias_value, comparator, value
                )
            qs = qs.filter(condition)
        elif kind in ("param", "tag"):
            check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, f"{kind}s")
            value = need_strings(value, comparator, kind)
            model = LoggedModelParam if kind == "param" else LoggedModelTag
            subqueries.add_rows(model, "model", key, string_condition("value", comparator, value))
        elif key in _LM_STRING:
            check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = need_strings(value, comparator, "attribute")
            if key == "status":
                values = value if isinstance(value, tuple) else (value,)
                unknown = [v for v in values if v not in _LM_STATUS]
                if comparator in ("LIKE", "ILIKE") or unknown:
                    raise InvalidParameterValue(
                        f"Unknown model status in filter: {(unknown or values)[0]!r}; use "
                        "= / != / IN / NOT IN with PENDING, READY or FAILED."
                    )
                mapped = tuple(str(_LM_STATUS[v]) for v in values)
                value = mapped if isinstance(value, tuple) else mapped[0]
            if key == "experiment_id":
                qs = qs.filter(id_condition("experiment_id", comparator, value))
            elif key == "source_run_id":
                qs = qs.annotate(lm_source_run=source_run_text()).filter(
                    string_condition("lm_source_run", comparator, value)
                )
            else:
                qs = qs.filter(string_condition(_LM_STRING[key], comparator, value))
        elif key in _LM_NUMBER:
            check_comparator(comparator, NUMBER_COMPARATORS, key)
            value = need_number(value, f"numeric attribute: {key}")
            qs = qs.filter(number_condition(_LM_NUMBER[key], comparator, value, integer=True))
        else:
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' for logged models. Valid keys are "
                f"{sorted({*_LM_STRING, *_LM_NUMBER})}."
            )
    if len(metric_aliases) > MAX_SUBQUERIES:
        raise InvalidParameterValue(
            f"A filter may compare at most {MAX_SUBQUERIES} different metrics (filter too long)."
        )
    if datasets and not metric_aliases:
        # As MLflow: without a metric clause, `datasets` keeps the models that have any
        # metric logged against one of them (with one, it narrows that metric's points).
        qs = qs.filter(
            Exists(Metric.objects.filter(_dataset_condition(datasets), model_id=OuterRef("pk")))
        )
    return subqueries.apply(qs)


def order_logged_models(qs: QuerySet[LoggedModel], order_by: list[dict]) -> QuerySet:
    """Items {field_name, ascending=True, dataset_name?, dataset_digest?}; attributes or
    metrics.<key> (latest value, NaN and missing last). Default creation_timestamp DESC;
    model_id ASC always breaks ties."""
    order_by = check_order_count(order_by)
    ordering, seen = [], set()
    for i, item in enumerate(order_by):
        name = item.get("field_name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue("Each order_by entry needs a 'field_name'.")
        ascending = item.get("ascending", True) is not False
        if name.startswith("metrics."):
            key = name[len("metrics.") :]
            dataset_name = item.get("dataset_name")
            datasets = (
                _check_datasets(
                    [{"dataset_name": dataset_name, "dataset_digest": item.get("dataset_digest")}]
                )
                if dataset_name
                else []
            )
            identity = ("metric", key, dataset_name, item.get("dataset_digest"))
            alias = f"lm_order_{i}"
            qs = qs.annotate(**{alias: _latest_model_metric_sortable(key, datasets)})
            field = F(alias)
            nullable = True
        elif "." in name and not name.startswith("attributes."):
            raise InvalidParameterValue(
                f"Invalid order_by field '{name}': Only metrics are supported besides attributes."
            )
        else:
            key = name[len("attributes.") :] if name.startswith("attributes.") else name
            column = _LM_STRING.get(key) or _LM_NUMBER.get(key)
            if column is None:
                raise InvalidParameterValue(
                    f"Invalid order_by field '{name}' for logged models. Valid attributes are "
                    f"{sorted({*_LM_STRING, *_LM_NUMBER})} or metrics.<key>."
                )
            identity = ("attribute", column)
            field = F(column)
            nullable = column == "source_run_id"
            if nullable:
                qs = qs.annotate(lm_source_run=source_run_text())
                field = F("lm_source_run")
        if identity in seen:
            raise duplicate(name)
        seen.add(identity)
        ordering.append(direction(field, ascending, nullable))
    if not ordering:
        ordering.append(F("creation_timestamp").desc())
    ordering.append(F("model_id").asc())
    return qs.order_by(*ordering)

"""The MLflow search filter grammar (reference/mlflow-protocol.md §5), parsed here and compiled
to ORM conditions that run as SQL: no row is ever loaded to be filtered in Python.

A filter is a conjunction of `<identifier> <comparator> <value>` clauses joined by AND.
`parse_filter` turns the text into `Comparison`s, checking each against the grammar of the
entity searched (runs, experiments, logged models, registered models, model versions);
`filter_*` and `order_*` compile them. The registry compiles its own Comparisons with
`string_condition` / `number_condition`, which give LIKE MLflow's case-sensitive meaning on
both SQLite and PostgreSQL (translated to an anchored regular expression)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast, Left

from core.errors import InvalidParameterValue
from tracking.models import (
    VALUE_INDEX_PREFIX,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunTag,
)

MAX_FILTER_LENGTH = 20_000
MAX_CLAUSES = 100
MAX_WILDCARDS = 20
MAX_ORDER_BY = 20

STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
NUMBER_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
LIST_COMPARATORS = ("IN", "NOT IN")
NULL_COMPARATORS = ("IS NULL", "IS NOT NULL")


@dataclass(frozen=True)
class Comparison:
    entity: str  # attribute, metric, param, tag, dataset
    key: str
    comparator: str
    value: str | float | tuple[str, ...] | None


# ---------------------------------------------------------------------------------------------
# Tokenizing

_WS = re.compile(r"\s*")
_COMPARATOR = re.compile(
    r"(==|<>|!=|>=|<=|=|<|>|NOT\s+IN\b|IN\b|NOT\s+I?LIKE\b|ILIKE\b|LIKE\b|IS\s+NOT\s+NULL\b"
    r"|IS\s+NULL\b|BETWEEN\b)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(?=\s|$|[),;])")
_BARE = re.compile(r"[^\s=!<>()'\",;`]+")
_AND = re.compile(r"AND\s", re.IGNORECASE)


def _invalid(text: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Invalid clause(s) in filter string: {text!r}")


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def rest(self) -> str:
        return self.text[self.pos :].strip()

    def quoted(self, quote: str) -> str:
        """Reads a quoted token; a doubled quote or a backslash escapes the next character."""
        assert self.text[self.pos] == quote
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == quote:
                if self.text[self.pos + 1 : self.pos + 2] == quote:
                    out.append(quote)
                    self.pos += 2
                    continue
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        raise InvalidParameterValue(f"Invalid filter string: unterminated {quote} quote.")

    def identifier(self) -> tuple[str | None, str]:
        """`entity.key`, `` `entity`.key ``, `entity."key"`, `` `key` ``, or a bare key."""
        self.skip_ws()
        char = self.peek()
        if char in ("`", '"'):
            first = self.quoted(char)
            if self.peek() != ".":
                return None, first
            self.pos += 1
            entity = first
        else:
            match = _BARE.match(self.text, self.pos)
            if not match:
                raise _invalid(self.rest()[:80])
            word = match.group(0)
            self.pos = match.end()
            if "." not in word:
                return None, word
            entity, key = word.split(".", 1)
            if key:
                return entity, key
        char = self.peek()
        if char in ("`", '"'):
            return entity, self.quoted(char)
        match = _BARE.match(self.text, self.pos)
        if not match:
            raise _invalid(self.rest()[:80])
        self.pos = match.end()
        return entity, match.group(0)

    def comparator(self) -> str:
        self.skip_ws()
        match = _COMPARATOR.match(self.text, self.pos)
        if not match:
            raise _invalid(self.rest()[:80])
        self.pos = match.end()
        return " ".join(match.group(0).upper().split())

    def value(self, comparator: str) -> Any:
        self.skip_ws()
        if comparator in NULL_COMPARATORS:
            return None
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted(char)
        if char == "(":
            self.pos += 1
            items: list[Any] = []
            while True:
                self.skip_ws()
                if self.peek() == ")":
                    self.pos += 1
                    break
                if items:
                    if self.peek() != ",":
                        raise _invalid(self.rest()[:80])
                    self.pos += 1
                    self.skip_ws()
                if self.peek() in ("'", '"'):
                    items.append(self.quoted(self.peek()))
                else:
                    number = _NUMBER.match(self.text, self.pos)
                    if not number:
                        raise _invalid(self.rest()[:80])
                    items.append(float(number.group(0)))
                    self.pos = number.end()
            return tuple(items)
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            return float(number.group(0))
        bare = _BARE.match(self.text, self.pos)
        if bare:
            raise InvalidParameterValue(
                "Parameter value is either not quoted or unidentified quote types used for "
                f"string value {bare.group(0)}. Use either single or double quotes."
            )
        raise _invalid(self.rest()[:80])


def parse_filter(text: str | None) -> list[tuple[str | None, str, str, Any]]:
    """Clauses as (entity as written or None, key, comparator, value); no entity checks yet."""
    if text is None or not text.strip():
        return []
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidParameterValue(
            f"The filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed."
        )
    reader = _Reader(text)
    clauses = []
    while True:
        reader.skip_ws()
        if reader.peek() == "(":
            raise _invalid(reader.rest()[:80])
        entity, key = reader.identifier()
        if entity is None and key.upper() in ("NOT", "OR", "AND"):
            raise _invalid(key)
        comparator = reader.comparator()
        if comparator in ("==", "<>", "BETWEEN", "NOT LIKE", "NOT ILIKE"):
            raise InvalidParameterValue(
                f"Invalid comparator '{comparator}' in filter string; allowed comparators are "
                "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL and IS NOT NULL."
            )
        value = reader.value(comparator)
        if comparator in LIST_COMPARATORS and not isinstance(value, tuple):
            raise InvalidParameterValue(
                f"Expected a list of quoted string values after {comparator}, e.g. ('a', 'b')."
            )
        if isinstance(value, tuple) and comparator not in LIST_COMPARATORS:
            raise InvalidParameterValue(
                f"A list of values is only allowed with IN and NOT IN, not with {comparator}."
            )
        if isinstance(value, tuple):
            if not value:
                raise InvalidParameterValue(
                    "While parsing a list in the query, expected a non-empty list of string "
                    "values, but got empty list"
                )
            if not all(isinstance(v, str) for v in value):
                raise InvalidParameterValue(
                    "While parsing a list in the query, expected string values in the list."
                )
        clauses.append((entity, key, comparator, value))
        if len(clauses) > MAX_CLAUSES:
            raise InvalidParameterValue(f"A filter may have at most {MAX_CLAUSES} clauses.")
        if reader.at_end():
            return clauses
        match = _AND.match(reader.text, reader.pos)
        if not match:
            raise _invalid(reader.rest()[:80])
        reader.pos = match.end()


# ---------------------------------------------------------------------------------------------
# Grammar per entity


_RUN_ENTITIES = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
_RUN_STRING_ATTRIBUTES = {
    "run_id": "run_id",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
}
_RUN_NAME_ALIASES = {"run name", "Run name", "Run Name"}
_RUN_NUMBER_ATTRIBUTES = {
    "start_time": "start_time",
    "created": "start_time",
    "Created": "start_time",
    "end_time": "end_time",
}
_NOT_NULL_RUN_COLUMNS = {"run_id", "name", "status", "user_id", "artifact_uri", "start_time"}
_DATASET_KEYS = {"name": "dataset__name", "digest": "dataset__digest", "context": "context"}


def _check_comparator(comparator: str, allowed: tuple[str, ...]) -> None:
    if comparator not in allowed:
        raise InvalidParameterValue(
            f"Invalid comparator '{comparator}' not one of '{set(allowed)}'"
        )


def _need_number(value: Any, what: str) -> float:
    if not isinstance(value, float):
        raise InvalidParameterValue(f"Expected numeric value type for {what}. Found {value!r}")
    return value


def _need_string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        shown = (
            "(" + ", ".join(repr(v) for v in value) + ")"
            if isinstance(value, tuple)
            else (f"{value:g}" if isinstance(value, float) else value)
        )
        raise InvalidParameterValue(
            f"Expected a quoted string value for {what} (e.g. 'my-value'). Got value {shown}"
        )
    return value


def run_comparisons(text: str | None) -> list[Comparison]:
    result = []
    for entity, key, comparator, value in parse_filter(text):
        kind = _RUN_ENTITIES.get(entity or "attribute")
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{entity}'. Valid values are ['metric', 'parameter', "
                "'tag', 'attribute', 'dataset']"
            )
        if kind == "metric":
            if comparator in NULL_COMPARATORS:
                raise InvalidParameterValue(
                    f"IS NULL / IS NOT NULL is only supported for tags and params, not for "
                    f"'metric' '{key}'"
                )
            _check_comparator(comparator, NUMBER_COMPARATORS)
            value = _need_number(value, "metric")
        elif kind in ("param", "tag"):
            _check_comparator(comparator, STRING_COMPARATORS + NULL_COMPARATORS)
            if comparator not in NULL_COMPARATORS:
                value = _need_string(value, "parameter" if kind == "param" else "tag")
        elif kind == "dataset":
            if key not in _DATASET_KEYS:
                raise InvalidParameterValue(
                    f"Invalid dataset key '{key}' specified. Valid keys are "
                    "'{'digest', 'name', 'context'}'"
                )
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
            if comparator not in LIST_COMPARATORS:
                value = _need_string(value, "dataset")
        else:
            if key in _RUN_NAME_ALIASES:
                key = "run_name"
            if key in _RUN_STRING_ATTRIBUTES:
                if comparator in NULL_COMPARATORS:
                    raise InvalidParameterValue(
                        f"IS NULL / IS NOT NULL is only supported for tags and params, not for "
                        f"'attribute' '{key}'"
                    )
                if comparator in LIST_COMPARATORS and key != "run_id":
                    raise InvalidParameterValue(
                        "Only ['run_id'] attributes support comparison with a list of quoted "
                        "string values."
                    )
                _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
                if comparator not in LIST_COMPARATORS:
                    value = _need_string(value, "attribute")
            elif key in _RUN_NUMBER_ATTRIBUTES:
                if comparator in NULL_COMPARATORS:
                    raise InvalidParameterValue(
                        f"IS NULL / IS NOT NULL is only supported for tags and params, not for "
                        f"'attribute' '{key}'"
                    )
                _check_comparator(comparator, NUMBER_COMPARATORS)
                value = _need_number(value, f"numeric attribute: {key}")
            else:
                valid = sorted({*_RUN_STRING_ATTRIBUTES, *_RUN_NUMBER_ATTRIBUTES, "run name"})
                raise InvalidParameterValue(
                    f"Invalid attribute key '{key}' specified. Valid keys are '{valid}'"
                )
        result.append(Comparison(kind, key, comparator, value))
    return result


# ---------------------------------------------------------------------------------------------
# Compiling


def like_regex(pattern: str) -> str:
    """MLflow LIKE (`%`, `_`, case-sensitive) as an anchored regular expression."""
    if pattern.count("%") + pattern.count("_") > MAX_WILDCARDS:
        raise InvalidParameterValue(
            f"A LIKE pattern may have at most {MAX_WILDCARDS} wildcards (% and _)."
        )
    out = []
    for char in pattern:
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "^" + "".join(out) + "$"


def string_condition(field: str, comparator: str, value: Any) -> Q:
    if comparator == "=":
        return Q(**{field: value})
    if comparator == "!=":
        return ~Q(**{field: value})
    if comparator == "LIKE":
        return Q(**{f"{field}__regex": like_regex(value)})
    if comparator == "ILIKE":
        return Q(**{f"{field}__iregex": like_regex(value)})
    if comparator == "IN":
        return Q(**{f"{field}__in": list(value)})
    if comparator == "NOT IN":
        return ~Q(**{f"{field}__in": list(value)})
    raise InvalidParameterValue(f"Unsupported comparator {comparator} for a string.")


def number_condition(field: str, comparator: str, value: float) -> Q:
    lookup = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}.get(comparator)
    if comparator == "!=":
        return ~Q(**{field: value})
    if lookup is None:
        raise InvalidParameterValue(f"Unsupported comparator {comparator} for a number.")
    return Q(**{f"{field}__{lookup}": value})


def _key_value_exists(model, owner_field: str, key: str, comparator: str, value: Any) -> Q:
    rows = model.objects.filter(**{owner_field: OuterRef("pk")}, key=key)
    if comparator == "IS NULL":
        return ~Q(Exists(rows))
    if comparator == "IS NOT NULL":
        return Q(Exists(rows))
    if comparator == "=":
        # The leading-characters index answers equality without reading long values.
        rows = rows.alias(value_prefix=Left("value", VALUE_INDEX_PREFIX)).filter(
            value_prefix=value[:VALUE_INDEX_PREFIX], value=value
        )
        return Q(Exists(rows))
    # A key the row lacks never matches a comparison, `!=` included.
    return Q(Exists(rows.filter(string_condition("value", comparator, value))))


def _metric_exists(key: str, comparator: str, value: float) -> Q:
    rows = LatestMetric.objects.filter(run=OuterRef("pk"), key=key)
    if comparator == "!=":
        return Q(Exists(rows.filter(Q(is_nan=True) | ~Q(value=value))))
    return Q(Exists(rows.filter(number_condition("value", comparator, value), is_nan=False)))


def filter_runs(qs: QuerySet[Run], filter_string: str | None) -> QuerySet[Run]:
    for c in run_comparisons(filter_string):
        if c.entity == "metric":
            qs = qs.filter(_metric_exists(c.key, c.comparator, c.value))
        elif c.entity == "param":
            qs = qs.filter(_key_value_exists(Param, "run", c.key, c.comparator, c.value))
        elif c.entity == "tag":
            qs = qs.filter(_key_value_exists(RunTag, "run", c.key, c.comparator, c.value))
        elif c.entity == "dataset":
            inputs = RunInput.objects.filter(run=OuterRef("pk")).filter(
                string_condition(_DATASET_KEYS[c.key], c.comparator, c.value)
            )
            qs = qs.filter(Exists(inputs))
        elif c.key in _RUN_STRING_ATTRIBUTES:
            qs = qs.filter(string_condition(_RUN_STRING_ATTRIBUTES[c.key], c.comparator, c.value))
        else:
            field = _RUN_NUMBER_ATTRIBUTES[c.key]
            qs = qs.filter(number_condition(field, c.comparator, c.value))
    return qs


# ---------------------------------------------------------------------------------------------
# Ordering

_ORDER_SPLIT = re.compile(r"\s+")


def _parse_order(clause: str) -> tuple[str | None, str, bool]:
    if not isinstance(clause, str) or not clause.strip():
        raise InvalidParameterValue(f"Invalid order_by clause {clause!r}.")
    reader = _Reader(clause.strip())
    entity, key = reader.identifier()
    rest = reader.rest().split()
    if len(rest) > 1:
        raise InvalidParameterValue(f"Invalid order_by clause '{clause}'. Could not be parsed.")
    ascending = True
    if rest:
        if rest[0].upper() not in ("ASC", "DESC"):
            raise InvalidParameterValue(f"Invalid ordering key in order_by clause '{clause}'.")
        ascending = rest[0].upper() == "ASC"
    return entity, key, ascending


def _check_order_count(order_by: list[str]) -> None:
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidParameterValue(f"At most {MAX_ORDER_BY} order_by clauses are allowed.")


def order_runs(qs: QuerySet[Run], order_by: list[str]) -> QuerySet[Run]:
    _check_order_count(order_by)
    ordering, seen = [], set()
    has_start_time = False
    for i, clause in enumerate(order_by):
        entity, key, ascending = _parse_order(clause)
        kind = _RUN_ENTITIES.get(entity or "attribute")
        if kind is None or kind == "dataset":
            raise InvalidParameterValue(
                f"Invalid order_by entity '{entity}' in '{clause}'; order by metrics, params, "
                "tags or attributes."
            )
        if (kind, key) in seen:
            raise InvalidParameterValue(f"`order_by` contains duplicate fields: '{clause}'.")
        seen.add((kind, key))
        alias = f"order_{i}"
        if kind == "metric":
            qs = qs.annotate(
                **{
                    alias: Subquery(
                        LatestMetric.objects.filter(
                            run=OuterRef("pk"), key=key, is_nan=False
                        ).values("value")[:1]
                    )
                }
            )
        elif kind in ("param", "tag"):
            model = Param if kind == "param" else RunTag
            qs = qs.annotate(
                **{
                    alias: Subquery(
                        model.objects.filter(run=OuterRef("pk"), key=key).values("value")[:1]
                    )
                }
            )
        elif key in _RUN_STRING_ATTRIBUTES:
            alias = _RUN_STRING_ATTRIBUTES[key]
        elif key in _RUN_NUMBER_ATTRIBUTES:
            alias = _RUN_NUMBER_ATTRIBUTES[key]
            has_start_time = has_start_time or alias == "start_time"
        else:
            raise InvalidParameterValue(
                f"Invalid order_by key '{key}' in '{clause}'. Valid attribute keys are "
                f"{sorted({*_RUN_STRING_ATTRIBUTES, *_RUN_NUMBER_ATTRIBUTES})}."
            )
        expression = F(alias)
        if alias in _NOT_NULL_RUN_COLUMNS:
            # No NULLs to place: a plain ORDER BY lets PostgreSQL walk the index.
            ordering.append(expression.asc() if ascending else expression.desc())
        else:
            ordering.append(
                expression.asc(nulls_last=True) if ascending else expression.desc(nulls_last=True)
            )
    if not has_start_time:
        ordering.append(F("start_time").desc())
    ordering.append(F("run_id").asc())
    return qs.order_by(*ordering)


# ---------------------------------------------------------------------------------------------
# Experiments

_EXPERIMENT_ENTITIES = {
    "attribute": "attribute",
    "attributes": "attribute",
    "tag": "tag",
    "tags": "tag",
}
_EXPERIMENT_STRING = {"name": "name", "experiment_id": "experiment_id"}
_EXPERIMENT_NUMBER = {"creation_time": "creation_time", "last_update_time": "last_update_time"}


def filter_experiments(qs: QuerySet[Experiment], filter_string: str | None) -> QuerySet:
    qs = qs.alias(experiment_id_text=Cast("experiment_id", CharField()))
    for entity, key, comparator, value in parse_filter(filter_string):
        kind = _EXPERIMENT_ENTITIES.get(entity or "attribute")
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{entity}'. Valid entity types are ('attribute', "
                "'attributes', 'tag', 'tags')"
            )
        if kind == "tag":
            _check_comparator(comparator, STRING_COMPARATORS + NULL_COMPARATORS)
            if comparator not in NULL_COMPARATORS:
                value = _need_string(value, "tag")
            qs = qs.filter(_key_value_exists(ExperimentTag, "experiment", key, comparator, value))
        elif key in _EXPERIMENT_STRING:
            if comparator in LIST_COMPARATORS and key != "experiment_id":
                raise InvalidParameterValue(
                    "Only ['experiment_id'] attributes support comparison with a list of "
                    "quoted string values."
                )
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
            if comparator not in LIST_COMPARATORS:
                value = _need_string(value, "attributes")
            if key == "experiment_id":
                qs = qs.filter(_experiment_id_condition(comparator, value))
            else:
                qs = qs.filter(string_condition("name", comparator, value))
        elif key in _EXPERIMENT_NUMBER:
            _check_comparator(comparator, NUMBER_COMPARATORS)
            qs = qs.filter(number_condition(key, comparator, _need_number(value, key)))
        else:
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' specified. Valid keys are "
                "'{'experiment_id', 'name', 'last_update_time', 'creation_time'}'"
            )
    return qs


def _experiment_id_condition(comparator: str, value: Any) -> Q:
    # Ids are integers in the database and quoted strings in the grammar.
    if comparator in ("LIKE", "ILIKE"):
        return string_condition("experiment_id_text", comparator, value)
    values = value if isinstance(value, tuple) else (value,)
    ids = [int(v) for v in values if v.isdigit() and len(v) < 19]
    if comparator in ("=", "IN"):
        return Q(experiment_id__in=ids)
    return ~Q(experiment_id__in=ids)


def order_experiments(qs: QuerySet[Experiment], order_by: list[str]) -> QuerySet:
    _check_order_count(order_by)
    ordering, seen = [], set()
    for clause in order_by:
        entity, key, ascending = _parse_order(clause)
        if entity is not None and _EXPERIMENT_ENTITIES.get(entity) != "attribute":
            raise InvalidParameterValue(f"Invalid order_by entity: {entity.rstrip('s')}")
        if key not in {**_EXPERIMENT_STRING, **_EXPERIMENT_NUMBER}:
            raise InvalidParameterValue(f"Invalid order_by key '{key}' for experiments.")
        if key in seen:
            raise InvalidParameterValue(f"`order_by` contains duplicate fields: '{clause}'.")
        seen.add(key)
        ordering.append(F(key).asc() if ascending else F(key).desc())
    if "creation_time" not in seen and not ordering:
        ordering.append(F("creation_time").desc())
    ordering.append(F("experiment_id").asc())
    return qs.order_by(*ordering)


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


def _latest_model_metric(key: str, datasets: list[dict] | None) -> Subquery:
    rows = Metric.objects.filter(model_id=OuterRef("pk"), key=key, is_nan=False)
    if datasets:
        condition = Q()
        for d in datasets:
            part = Q(dataset_name=d.get("dataset_name", ""))
            if d.get("dataset_digest"):
                part &= Q(dataset_digest=d["dataset_digest"])
            condition |= part
        rows = rows.filter(condition)
    return Subquery(rows.order_by("-step", "-timestamp").values("value")[:1])


def filter_logged_models(
    qs: QuerySet[LoggedModel], filter_string: str | None, datasets: list[dict] | None = None
) -> QuerySet:
    for i, (entity, key, comparator, value) in enumerate(parse_filter(filter_string)):
        if comparator in NULL_COMPARATORS:
            raise InvalidParameterValue(
                "Invalid filter string: IS NULL is not supported for logged models."
            )
        kind = _LM_ENTITIES.get(entity) if entity is not None else "attribute"
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity '{entity}' in filter string; use attributes., metrics., "
                "params. or tags."
            )
        if kind == "metric":
            _check_comparator(comparator, NUMBER_COMPARATORS)
            alias = f"lm_metric_{i}"
            qs = qs.annotate(**{alias: _latest_model_metric(key, datasets)}).filter(
                number_condition(alias, comparator, _need_number(value, "metric"))
            )
        elif kind in ("param", "tag"):
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
            model = LoggedModelParam if kind == "param" else LoggedModelTag
            rows = model.objects.filter(model=OuterRef("pk"), key=key).filter(
                string_condition("value", comparator, value)
            )
            qs = qs.filter(Exists(rows))
        elif key in _LM_STRING:
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
            if key == "status":
                values = value if isinstance(value, tuple) else (value,)
                unknown = [v for v in values if v not in _LM_STATUS]
                if unknown:
                    raise InvalidParameterValue(
                        f"Unknown model status in filter: {unknown[0]!r}; use PENDING, READY "
                        "or FAILED."
                    )
                mapped = tuple(_LM_STATUS[v] for v in values)
                value = mapped if isinstance(value, tuple) else mapped[0]
            field = {"source_run_id": "source_run_id", "experiment_id": "experiment_id"}.get(
                key, key
            )
            qs = qs.filter(string_condition(field, comparator, value))
        elif key in _LM_NUMBER:
            _check_comparator(comparator, NUMBER_COMPARATORS)
            qs = qs.filter(number_condition(_LM_NUMBER[key], comparator, _need_number(value, key)))
        else:
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' for logged models. Valid keys are "
                f"{sorted({*_LM_STRING, *_LM_NUMBER})}."
            )
    return qs


def order_logged_models(qs: QuerySet[LoggedModel], order_by: list[dict]) -> QuerySet:
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidParameterValue(f"At most {MAX_ORDER_BY} order_by entries are allowed.")
    ordering = []
    for i, item in enumerate(order_by):
        name = item.get("field_name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue("Each order_by entry needs a 'field_name'.")
        ascending = item.get("ascending", True) is not False
        if name.startswith("metrics."):
            alias = f"lm_order_{i}"
            datasets = (
                [
                    {
                        "dataset_name": item["dataset_name"],
                        "dataset_digest": item.get("dataset_digest"),
                    }
                ]
                if item.get("dataset_name")
                else None
            )
            qs = qs.annotate(**{alias: _latest_model_metric(name[len("metrics.") :], datasets)})
            field = F(alias)
        elif name.startswith("params.") or name.startswith("tags."):
            raise InvalidParameterValue(
                f"Invalid order_by field '{name}': Only metrics are supported besides attributes."
            )
        else:
            key = name[len("attributes.") :] if name.startswith("attributes.") else name
            column = _LM_STRING.get(key) or _LM_NUMBER.get(key)
            if column is None:
                raise InvalidParameterValue(f"Invalid order_by field '{name}' for logged models.")
            field = F(column)
        ordering.append(field.asc(nulls_last=True) if ascending else field.desc(nulls_last=True))
    if not ordering:
        ordering.append(F("creation_timestamp").desc())
    ordering.append(F("model_id").asc())
    return qs.order_by(*ordering)


# ---------------------------------------------------------------------------------------------
# Registry grammars (registered models, model versions), compiled by the registry app.

PROMPT_TAG = "mlflow.prompt.is_prompt"


def registry_comparisons(text: str | None, entity: str) -> list[Comparison]:
    """`entity` is "registered_model" or "model_version" (reference §5.4, §5.5)."""
    if entity == "registered_model":
        attributes = {"name": "string"}
    else:
        attributes = {
            "name": "string",
            "run_id": "string",
            "source_path": "string",
            "version_number": "number",
        }
    result = []
    for ent, key, comparator, value in parse_filter(text):
        kind = {
            None: "attribute",
            "attribute": "attribute",
            "attributes": "attribute",
            "tag": "tag",
            "tags": "tag",
        }.get(ent)
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{ent}'. Valid entity types are ('attribute', 'tag')."
            )
        if comparator in NULL_COMPARATORS:
            what = "registered model" if entity == "registered_model" else "model version"
            raise InvalidParameterValue(
                f"IS NULL / IS NOT NULL is not supported for {what} search."
            )
        if kind == "tag":
            _check_comparator(comparator, STRING_COMPARATORS)
            value = _need_string(value, "tag")
        elif attributes.get(key) == "string":
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS)
            if comparator not in LIST_COMPARATORS:
                value = _need_string(value, "attribute")
        elif attributes.get(key) == "number":
            _check_comparator(comparator, NUMBER_COMPARATORS)
            if isinstance(value, str) and re.fullmatch(r"\d+", value):
                value = float(value)
            value = _need_number(value, f"numeric attribute: {key}")
        else:
            if ent is None and key.lower() == "version":
                raise _invalid(f"{key}, {comparator}, {value}")
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' specified. Valid keys are '{set(attributes)}'"
            )
        result.append(Comparison(kind, key, comparator, value))
    return result


def parse_registry_order_by(order_by: list[str], allowed: dict[str, str]) -> list[tuple[str, bool]]:
    """[(column, ascending)] from "<key> [ASC|DESC]" clauses, `allowed` mapping key -> column."""
    _check_order_count(order_by)
    result, seen = [], set()
    for clause in order_by:
        entity, key, ascending = _parse_order(clause)
        if entity not in (None, "attribute", "attributes") or key not in allowed:
            raise InvalidParameterValue(
                f"Invalid order by key '{clause}' specified. Valid keys are {sorted(allowed)}."
            )
        if allowed[key] in seen:
            raise InvalidParameterValue(f"`order_by` contains duplicate fields: '{clause}'.")
        seen.add(allowed[key])
        result.append((allowed[key], ascending))
    return result

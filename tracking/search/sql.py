"""SQL for search conditions, shared by every search (the registry's too): LIKE compiled per
database, string/number/key-value conditions as bound parameters and correlated EXISTS,
ordering directions."""

from __future__ import annotations

import math
import re
from typing import Any

from django.db.models import (
    BooleanField,
    CharField,
    Exists,
    Expression,
    F,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.functions import Cast, Left

from core.errors import InvalidParameterValue
from tracking.models import (
    VALUE_INDEX_PREFIX,
    LatestMetric,
)
from tracking.search.grammar import (
    INT64_MAX,
    INT64_MIN,
    MAX_LIKE_PERCENT,
    MAX_LIKE_UNDERSCORE,
    MAX_SUBQUERIES,
    PROMPT_TAG,
    Comparison,
)

# ---------------------------------------------------------------------------------------------
# LIKE, compiled per database


_ANY_ONE, _ANY_MANY = object(), object()


def _like_parts(pattern: str) -> list[Any]:
    """The pattern as literal characters and wildcards; `\\` makes the next char literal."""
    parts: list[Any] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            parts.append(pattern[i + 1])
            i += 2
            continue
        if char == "%":
            if not parts or parts[-1] is not _ANY_MANY:  # `%%` is one wildcard
                parts.append(_ANY_MANY)
        elif char == "_":
            parts.append(_ANY_ONE)
        else:
            parts.append(char)  # a trailing lone backslash is a literal backslash
        i += 1
    percent = sum(1 for p in parts if p is _ANY_MANY)
    underscore = sum(1 for p in parts if p is _ANY_ONE)
    if percent > MAX_LIKE_PERCENT or underscore > MAX_LIKE_UNDERSCORE:
        raise InvalidParameterValue(
            f"A LIKE pattern may have at most {MAX_LIKE_PERCENT} '%' and "
            f"{MAX_LIKE_UNDERSCORE} '_' wildcards; this one has {percent} and {underscore}. "
            "Escape a literal % or _ with a backslash."
        )
    return parts


def _render_like(parts: list[Any]) -> str:
    out = []
    for p in parts:
        if p is _ANY_MANY:
            out.append("%")
        elif p is _ANY_ONE:
            out.append("_")
        elif p in ("%", "_", "\\"):
            out.append("\\" + p)
        else:
            out.append(p)
    return "".join(out)


def _render_glob(parts: list[Any]) -> str:
    out = []
    for p in parts:
        if p is _ANY_MANY:
            out.append("*")
        elif p is _ANY_ONE:
            out.append("?")
        elif p in ("*", "?", "["):
            out.append(f"[{p}]")
        else:
            out.append(p)
    return "".join(out)


class LikeMatch(Expression):
    """`<expression> LIKE <pattern>` with MLflow's meaning on every database: case-sensitive
    unless `case_sensitive=False` (ILIKE). Usable in filter()/Q() like a lookup."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, expression: Any, pattern: str, *, case_sensitive: bool = True):
        super().__init__()
        self.expression = F(expression) if isinstance(expression, str) else expression
        self.parts = _like_parts(pattern)
        self.case_sensitive = case_sensitive

    def get_source_expressions(self) -> list[Any]:
        return [self.expression]

    def set_source_expressions(self, exprs: list[Any]) -> None:
        (self.expression,) = exprs

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.expression)
        if connection.vendor == "sqlite":
            if self.case_sensitive:
                return f"({sql} GLOB %s)", [*params, _render_glob(self.parts)]
            return f"({sql} LIKE %s ESCAPE '\\')", [*params, _render_like(self.parts)]
        if connection.vendor == "postgresql":
            # PostgreSQL's default LIKE escape character is the backslash.
            operator = "LIKE" if self.case_sensitive else "ILIKE"
            return f"({sql}::text {operator} %s)", [*params, _render_like(self.parts)]
        pattern = _render_like(self.parts)
        if self.case_sensitive:
            return f"({sql} LIKE %s ESCAPE '\\')", [*params, pattern]
        return f"(LOWER({sql}) LIKE LOWER(%s) ESCAPE '\\')", [*params, pattern]


def like_condition(field: str | Any, pattern: str, *, case_sensitive: bool = True) -> Q:
    """MLflow LIKE (or ILIKE with case_sensitive=False) on a column name or expression."""
    return Q(LikeMatch(field, pattern, case_sensitive=case_sensitive))


# ---------------------------------------------------------------------------------------------
# Conditions (public: the registry compiles its Comparisons with these)


def string_condition(field: str, comparator: str, value: Any) -> Q:
    """`= != LIKE ILIKE IN NOT IN` on a string column; `!=` and NOT IN never match NULL."""
    if comparator == "=":
        return Q(**{field: value})
    if comparator == "!=":
        return Q(**{f"{field}__isnull": False}) & ~Q(**{field: value})
    if comparator == "LIKE":
        return like_condition(field, value)
    if comparator == "ILIKE":
        return like_condition(field, value, case_sensitive=False)
    if comparator == "IN":
        return Q(**{f"{field}__in": list(value)})
    if comparator == "NOT IN":
        return Q(**{f"{field}__isnull": False}) & ~Q(**{f"{field}__in": list(value)})
    raise InvalidParameterValue(f"Unsupported comparator {comparator} for a string.")


_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def number_condition(field: str, comparator: str, value: float, *, integer: bool = False) -> Q:
    """`= != < <= > >=`; `!=` never matches NULL. With integer=True (integer columns) the
    bound is turned into an exact integer one, so `> 1.5` is `>= 2` and `< 1e30` is "any"."""
    if integer:
        return _integer_condition(field, comparator, value)
    if comparator == "!=":
        return Q(**{f"{field}__lt": value}) | Q(**{f"{field}__gt": value})
    lookup = _LOOKUPS.get(comparator)
    if lookup is None:
        raise InvalidParameterValue(f"Unsupported comparator {comparator} for a number.")
    return Q(**{f"{field}__{lookup}": value})


def _integer_condition(field: str, comparator: str, value: float) -> Q:
    anything = Q(**{f"{field}__isnull": False})
    nothing = Q(pk__in=[])
    if math.isnan(value):
        return anything if comparator == "!=" else nothing
    if comparator in ("=", "!="):
        exact = math.isfinite(value) and value.is_integer() and INT64_MIN <= value <= INT64_MAX
        if not exact:
            return anything if comparator == "!=" else nothing
        return number_condition(field, comparator, int(value))
    # x > v  <=>  x >= floor(v) + 1,  x < v  <=>  x <= ceil(v) - 1, for integer x.
    if comparator in (">", ">="):
        if value == math.inf:
            return nothing
        if value == -math.inf:
            return anything
        bound = math.floor(value) + 1 if comparator == ">" else math.ceil(value)
        if bound > INT64_MAX:
            return nothing
        return anything if bound <= INT64_MIN else Q(**{f"{field}__gte": bound})
    if comparator in ("<", "<="):
        if value == -math.inf:
            return nothing
        if value == math.inf:
            return anything
        bound = math.ceil(value) - 1 if comparator == "<" else math.floor(value)
        if bound < INT64_MIN:
            return nothing
        return anything if bound >= INT64_MAX else Q(**{f"{field}__lte": bound})
    raise InvalidParameterValue(f"Unsupported comparator {comparator} for a number.")


def key_value_condition(model: Any, owner_field: str, key: str, comparator: str, value: Any) -> Q:
    """Correlated EXISTS on a (owner, key, value) table such as RunTag or ExperimentTag."""
    rows = model.objects.filter(**{owner_field: OuterRef("pk")}, key=key)
    if comparator == "IS NULL":
        return ~Q(Exists(rows))
    # An owner lacking the key never matches a comparison, `!=` included.
    rows = rows.alias(value_prefix=Left("value", VALUE_INDEX_PREFIX))
    return Q(Exists(rows.filter(_value_row_condition(comparator, value))))


class KeyedExists:
    """Clauses on one key of a table with at most one row per (owner, key) are one EXISTS
    whose row must satisfy all of them. PostgreSQL plans each EXISTS as a semi-join, and
    planning time grows much faster than linearly with their number (about 3 s for 100), so
    repeated keys are merged and the number of subqueries is capped (MAX_SUBQUERIES)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, str, str], list[Q]] = {}
        self.extra: list[Q] = []

    def add(self, model: Any, owner_field: str, key: str, comparator: str, value: Any) -> None:
        if comparator == "IS NULL":
            self.extra.append(key_value_condition(model, owner_field, key, comparator, value))
            return
        self.groups.setdefault((model, owner_field, key), []).append(
            _value_row_condition(comparator, value)
        )

    def add_rows(self, model: Any, owner_field: str, key: str, condition: Q) -> None:
        self.groups.setdefault((model, owner_field, key), []).append(condition)

    def add_other(self, condition: Q) -> None:
        self.extra.append(condition)

    def apply(self, qs: QuerySet) -> QuerySet:
        if len(self.groups) + len(self.extra) > MAX_SUBQUERIES:
            raise InvalidParameterValue(
                f"A filter may compare at most {MAX_SUBQUERIES} different metrics, params, tags "
                f"and datasets; this one has {len(self.groups) + len(self.extra)} (filter too "
                "long)."
            )
        for (model, owner_field, key), conditions in self.groups.items():
            rows = model.objects.filter(**{owner_field: OuterRef("pk")}, key=key)
            if model is not LatestMetric:
                rows = rows.alias(value_prefix=Left("value", VALUE_INDEX_PREFIX))
            for condition in conditions:
                rows = rows.filter(condition)
            qs = qs.filter(Exists(rows))
        for condition in self.extra:
            qs = qs.filter(condition)
        return qs


def _value_row_condition(comparator: str, value: Any) -> Q:
    """The condition on a tag/param row (with the `value_prefix` alias) for one comparator."""
    if comparator == "IS NOT NULL":
        return Q()
    if comparator == "=":
        # Matches the (key, LEFT(value, 200)) index so PostgreSQL reads no long values. A
        # value shorter than the prefix equals its prefix, so the prefix alone says it: with
        # both conditions the planner, taking them as independent, expects far too few rows
        # (and picks nested loops over thousands).
        if len(value) < VALUE_INDEX_PREFIX:
            return Q(value_prefix=value)
        return Q(value_prefix=value[:VALUE_INDEX_PREFIX], value=value)
    return string_condition("value", comparator, value)


def is_prompt_exclusion(c: Comparison) -> bool:
    """The clause the MLflow client adds to every registered-model search. Unlike any other
    tag comparison it must also match models WITHOUT the tag (they are not prompts)."""
    return (
        c.entity == "tag"
        and c.key == PROMPT_TAG
        and (
            (c.comparator == "!=" and c.value == "true")
            or (c.comparator == "=" and c.value == "false")
        )
    )


def registry_tag_condition(tag_model: Any, owner_field: str, c: Comparison) -> Q:
    """A registry tag Comparison as a Q, with the prompt special case."""
    if is_prompt_exclusion(c):
        rows = tag_model.objects.filter(**{owner_field: OuterRef("pk")}, key=c.key, value="true")
        return ~Q(Exists(rows))
    return key_value_condition(tag_model, owner_field, c.key, c.comparator, c.value)


def direction(expression: Any, ascending: bool, nullable: bool = True) -> Any:
    if not nullable:
        # No NULLs to place: a plain ORDER BY lets PostgreSQL walk the index.
        return expression.asc() if ascending else expression.desc()
    return expression.asc(nulls_last=True) if ascending else expression.desc(nulls_last=True)


def id_condition(field: str, comparator: str, value: Any) -> Q:
    """An integer id column compared with quoted strings, as the grammar writes ids."""
    if comparator in ("LIKE", "ILIKE"):
        return like_condition(Cast(field, CharField()), value, case_sensitive=comparator == "LIKE")
    values = value if isinstance(value, tuple) else (value,)
    # A string that is no valid id matches no row (rather than failing in the database).
    ids = [int(v) for v in values if re.fullmatch(r"[0-9]{1,18}", v)]
    if comparator in ("=", "IN"):
        return Q(**{f"{field}__in": ids})
    return Q(**{f"{field}__isnull": False}) & ~Q(**{f"{field}__in": ids})

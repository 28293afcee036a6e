"""The MLflow search filter grammar (reference/mlflow-protocol.md §5), parsed here and compiled
to ORM conditions that run as SQL: no row is ever loaded to be filtered in Python.

A filter is a conjunction of `<identifier> <comparator> <value>` clauses joined by AND (any
case). The tokenizer (`parse_filter`) knows nothing about entities; each search then checks
the clauses against its own grammar and compiles them:

* runs: `filter_runs`, `order_runs` (§5.2)
* experiments: `filter_experiments`, `order_experiments` (§5.3)
* logged models: `filter_logged_models`, `order_logged_models` (§5.6)
* registry (compiled by the registry app): `parse_registered_model_filter`,
  `parse_model_version_filter` -> `list[Comparison]`, `parse_registry_order_by`.

Compiling a registry `Comparison` (the registry owns its models, so it does this itself):

    for c in parse_model_version_filter(text):
        if c.entity == "tag":
            qs = qs.filter(registry_tag_condition(ModelVersionTag, "version", c))
        elif c.key == "version_number":
            qs = qs.filter(number_condition("version", c.comparator, c.value, integer=True))
        else:  # name, run_id, source_path
            qs = qs.filter(string_condition(column_for[c.key], c.comparator, c.value))

`string_condition(field, comparator, value)` handles `= != LIKE ILIKE IN NOT IN`;
`number_condition` handles `= != < <= > >=`; `key_value_condition` is the correlated
EXISTS for tag/param tables; `registry_tag_condition` adds the prompt special case
(`is_prompt_exclusion`): ``tags.`mlflow.prompt.is_prompt` != 'true'`` (and `= 'false'`) also
match models that do not have the tag at all, unlike every other tag comparison.

Semantics chosen where MLflow is vague or database-dependent:

* LIKE is case-sensitive on both databases: `GLOB` on SQLite (its LIKE ignores ASCII case),
  `LIKE` on PostgreSQL. ILIKE is `LIKE` on SQLite (ASCII-only case folding, as MLflow's own
  SQLite store) and `ILIKE` on PostgreSQL. `%` and `_` are wildcards; a backslash makes the
  next character literal (`'a\\_b'` in the filter text, or `'a\\_b'` written as `a\\_b` once
  unquoted). Neither engine backtracks exponentially, unlike a regular expression would.
* Quoted strings: a doubled quote (`'it''s'`) or a backslash before the quote (`'it\\'s'`)
  is a literal quote and `\\\\` is one backslash; other backslashes are kept as they are.
* Metrics compare the run's latest value (`LatestMetric`). A NaN latest value matches only
  `!=` (NaN is unequal to everything and not ordered); ±infinity compares as usual.
* A run (experiment, model) lacking a param/tag never matches a comparison on it, `!=`
  included; `IS NULL` selects those.
* Integer columns (times, ids) compared with fractional or out-of-range numbers are
  compared exactly (`start_time > 1.5` means `>= 2`), never truncated or overflowed.

Limits (each refusal is a 400 `INVALID_PARAMETER_VALUE` saying what the limit is):
`MAX_FILTER_LENGTH` characters, `MAX_CLAUSES` clauses, `MAX_LIKE_PERCENT` `%` and
`MAX_LIKE_UNDERSCORE` `_` wildcards per pattern, `MAX_SUBQUERIES` distinct metric/param/tag
keys and dataset clauses (clauses on the same key share one EXISTS; PostgreSQL's planning time
explodes with the number of semi-joins), `MAX_ORDER_BY` order_by entries. List sizes are
bounded by the filter length (about 5,000 values at most), well under SQLite's bound-parameter
limit. Values are always bound parameters."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    Expression,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, Left, NullIf

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
MAX_LIKE_PERCENT = 10
MAX_LIKE_UNDERSCORE = 100
MAX_ORDER_BY = 20
MAX_SUBQUERIES = 30
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

STRING_COMPARATORS = ("=", "!=", "LIKE", "ILIKE")
NUMBER_COMPARATORS = ("=", "!=", "<", "<=", ">", ">=")
LIST_COMPARATORS = ("IN", "NOT IN")
NULL_COMPARATORS = ("IS NULL", "IS NOT NULL")

PROMPT_TAG = "mlflow.prompt.is_prompt"


@dataclass(frozen=True)
class Comparison:
    """One clause. `entity` is "attribute", "metric", "param", "tag" or "dataset"; `value` is a
    str, a float (numbers), a tuple of str (IN / NOT IN; a tuple so the clause stays
    hashable) or None (IS [NOT] NULL)."""

    entity: str
    key: str
    comparator: str
    value: str | float | tuple[str, ...] | None


class _Number(float):
    """A number literal that remembers how it was written, for error messages."""

    raw: str


class _Bare(str):
    """An unquoted word in value position: always an error, but which one depends on the
    entity (a metric wants a number, a param wants a quoted string)."""


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
_AND = re.compile(r"AND(\s+|$)", re.IGNORECASE)
_SNIPPET = 80


def _invalid(text: str, hint: str = "") -> InvalidParameterValue:
    shown = text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"
    message = f"Invalid clause(s) in filter string: {shown!r}."
    return InvalidParameterValue(f"{message} {hint}".strip())


_GRAMMAR_HINT = (
    "A filter is clauses '<entity>.<key> <comparator> <value>' joined by AND; OR, NOT, "
    "parentheses, BETWEEN and ';' are not supported."
)


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
        # Only the quote itself and the backslash are escapable: any other backslash is kept,
        # so `'a\_b'` reaches LIKE as `a\_b` (a literal underscore), as with MLflow.
        text, pos = self.text, self.pos + 1
        out = []
        while pos < len(text):
            char = text[pos]
            if char == "\\" and text[pos + 1 : pos + 2] in (quote, "\\"):
                out.append(text[pos + 1])
                pos += 2
                continue
            if char == quote:
                if text[pos + 1 : pos + 2] == quote:
                    out.append(quote)
                    pos += 2
                    continue
                self.pos = pos + 1
                return "".join(out)
            out.append(char)
            pos += 1
        raise InvalidParameterValue(
            f"Invalid filter string: unterminated {quote} quote starting at character "
            f"{self.pos + 1}."
        )

    def _bare(self) -> str:
        match = _BARE.match(self.text, self.pos)
        if not match:
            if self.at_end():
                raise InvalidParameterValue(
                    "Invalid filter string: it ends where an identifier was expected "
                    "(a trailing AND?)."
                )
            raise _invalid(self.rest(), _GRAMMAR_HINT)
        self.pos = match.end()
        return match.group(0)

    def identifier(self) -> tuple[str | None, str]:
        """`entity.key`, `` `entity`.key ``, `entity."key"`, `` `key` `` or a bare key; only
        the first dot separates the entity from the key."""
        self.skip_ws()
        char = self.peek()
        if char in ("`", '"'):
            first = self.quoted(char)
            if self.peek() != ".":
                return None, first
            self.pos += 1
            entity = first
        else:
            word = self._bare()
            if "." not in word:
                return None, word
            entity, key = word.split(".", 1)
            if key:
                return entity, key
        char = self.peek()
        if char in ("`", '"'):
            return entity, self.quoted(char)
        return entity, self._bare()

    def comparator(self) -> str:
        self.skip_ws()
        match = _COMPARATOR.match(self.text, self.pos)
        if not match:
            raise _invalid(self.rest(), "Expected a comparator after the identifier.")
        self.pos = match.end()
        return " ".join(match.group(0).upper().split())

    def number(self) -> _Number | None:
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            return None
        self.pos = match.end()
        number = _Number(match.group(0))
        number.raw = match.group(0)
        return number

    def value(self) -> Any:
        self.skip_ws()
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted(char)
        if char == "(":
            return self.list()
        number = self.number()
        if number is not None:
            return number
        bare = _BARE.match(self.text, self.pos)
        if bare:
            self.pos = bare.end()
            return _Bare(bare.group(0))
        raise _invalid(self.rest(), "Expected a value.")

    def list(self) -> tuple[Any, ...]:
        start = self.pos
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip_ws()
            if self.peek() == ")":
                self.pos += 1
                return tuple(items)
            if items:
                if self.peek() != ",":
                    raise _invalid(self.text[start:].strip(), "Expected ',' or ')' in the list.")
                self.pos += 1
                self.skip_ws()
            if self.peek() in ("'", '"'):
                items.append(self.quoted(self.peek()))
                continue
            number = self.number()
            if number is None:
                raise _invalid(
                    self.text[start:].strip(), "A list holds quoted strings, e.g. ('a', 'b')."
                )
            items.append(number)


def parse_filter(text: str | None) -> list[tuple[str | None, str, str, Any]]:
    """Clauses as (entity as written or None, key, comparator, value); no entity checks yet."""
    if text is None or not text.strip():
        return []
    if not isinstance(text, str):
        raise InvalidParameterValue("The filter must be a string.")
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidParameterValue(
            f"The filter is {len(text)} characters long; at most {MAX_FILTER_LENGTH} are allowed "
            "(filter too long)."
        )
    reader = _Reader(text)
    clauses = []
    while True:
        reader.skip_ws()
        if reader.peek() == "(":
            raise _invalid(reader.rest(), _GRAMMAR_HINT)
        entity, key = reader.identifier()
        if entity is None and key.upper() in ("NOT", "OR", "AND"):
            raise _invalid(key.upper(), _GRAMMAR_HINT)
        comparator = reader.comparator()
        if comparator in ("==", "<>", "NOT LIKE", "NOT ILIKE"):
            raise InvalidParameterValue(
                f"Invalid comparator '{comparator}' in filter string; allowed comparators are "
                "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL and IS NOT NULL."
            )
        if comparator == "BETWEEN":
            raise _invalid(
                f"{entity + '.' if entity else ''}{key} BETWEEN {reader.rest()}",
                "BETWEEN is not supported: use two comparisons joined by AND.",
            )
        if comparator in NULL_COMPARATORS:
            value: Any = None
        else:
            value = reader.value()
        _check_list_shape(comparator, value)
        clauses.append((entity, key, comparator, value))
        if len(clauses) > MAX_CLAUSES:
            raise InvalidParameterValue(
                f"A filter may have at most {MAX_CLAUSES} clauses (filter too long)."
            )
        if reader.at_end():
            return clauses
        match = _AND.match(reader.text, reader.pos)
        if not match:
            raise _invalid(reader.rest(), _GRAMMAR_HINT)
        reader.pos = match.end()
        if reader.at_end():
            raise InvalidParameterValue("Invalid filter string: it ends with AND.")


def _check_list_shape(comparator: str, value: Any) -> None:
    if comparator in LIST_COMPARATORS and not isinstance(value, tuple):
        raise InvalidParameterValue(
            f"Expected a list of quoted string values after {comparator}, e.g. ('a', 'b')."
        )
    if isinstance(value, tuple):
        if comparator not in LIST_COMPARATORS:
            raise InvalidParameterValue(
                f"A list of values is only allowed with IN and NOT IN, not with {comparator}."
            )
        if not value:
            raise InvalidParameterValue(
                "While parsing a list in the query, expected a non-empty list of string "
                "values, but got empty list"
            )
        if not all(isinstance(v, str) for v in value):
            raise InvalidParameterValue(
                "While parsing a list in the query, expected a list of quoted string values "
                "such as ('a', 'b'); found an unquoted number."
            )


# ---------------------------------------------------------------------------------------------
# Value and comparator checks shared by every grammar


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    if isinstance(value, _Number):
        return value.raw
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and not isinstance(value, _Bare):
        return repr(value)
    return str(value)


def _check_comparator(comparator: str, allowed: tuple[str, ...], what: str = "") -> None:
    if comparator not in allowed:
        suffix = f" for {what}" if what else ""
        raise InvalidParameterValue(
            f"Invalid comparator '{comparator}' not one of '{set(allowed)}'{suffix}"
        )


def _need_number(value: Any, what: str) -> float:
    if isinstance(value, _Bare):
        raise InvalidParameterValue(
            f"Expected numeric value type for {what}. Found {value}, which is not a number "
            "and not quoted (NaN and infinity cannot be compared)."
        )
    if not isinstance(value, float):
        raise InvalidParameterValue(f"Expected numeric value type for {what}. Found {_show(value)}")
    return float(value)


def _need_string(value: Any, what: str) -> str:
    if isinstance(value, _Bare):
        raise InvalidParameterValue(
            "Parameter value is either not quoted or unidentified quote types used for "
            f"string value {value}. Use either single or double quotes."
        )
    if not isinstance(value, str):
        raise InvalidParameterValue(
            f"Expected a quoted string value for {what} (e.g. 'my-value'). Got value {_show(value)}"
        )
    return str(value)


def _need_strings(value: Any, comparator: str, what: str) -> str | tuple[str, ...]:
    if comparator in LIST_COMPARATORS:
        return value
    return _need_string(value, what)


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


class _KeyedExists:
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
        # Matches the (key, LEFT(value, 200)) index so PostgreSQL reads no long values.
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


# ---------------------------------------------------------------------------------------------
# Runs

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


def _null_only_for(kind: str, key: str) -> InvalidParameterValue:
    return InvalidParameterValue(
        f"IS NULL / IS NOT NULL is only supported for tags and params, not for '{kind}' '{key}'"
    )


def run_comparisons(text: str | None) -> list[Comparison]:
    """The run filter checked against §5.2; keys are canonical (`Run name` -> run_name)."""
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
                raise _null_only_for("metric", key)
            _check_comparator(comparator, NUMBER_COMPARATORS, "metrics")
            value = _need_number(value, "metric")
        elif kind in ("param", "tag"):
            what = "parameter" if kind == "param" else "tag"
            _check_comparator(comparator, STRING_COMPARATORS + NULL_COMPARATORS, f"{what}s")
            if comparator not in NULL_COMPARATORS:
                value = _need_string(value, what)
        elif kind == "dataset":
            if key not in _DATASET_KEYS:
                raise InvalidParameterValue(
                    f"Invalid dataset key '{key}' specified. Valid keys are "
                    "'{'digest', 'name', 'context'}'"
                )
            if comparator in NULL_COMPARATORS:
                raise _null_only_for("dataset", key)
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, "datasets")
            value = _need_strings(value, comparator, "dataset")
        else:
            if key in _RUN_NAME_ALIASES:
                key = "run_name"
            if key in _RUN_STRING_ATTRIBUTES:
                if comparator in NULL_COMPARATORS:
                    raise _null_only_for("attribute", key)
                if comparator in LIST_COMPARATORS and key != "run_id":
                    raise InvalidParameterValue(
                        "Only ['run_id'] attributes support comparison with a list of quoted "
                        "string values."
                    )
                _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
                value = _need_strings(value, comparator, "attribute")
            elif key in _RUN_NUMBER_ATTRIBUTES:
                if comparator in NULL_COMPARATORS:
                    raise _null_only_for("attribute", key)
                _check_comparator(comparator, NUMBER_COMPARATORS, key)
                value = _need_number(value, f"numeric attribute: {key}")
            else:
                valid = sorted({*_RUN_STRING_ATTRIBUTES, *_RUN_NUMBER_ATTRIBUTES, "run name"})
                raise InvalidParameterValue(
                    f"Invalid attribute key '{key}' specified. Valid keys are '{valid}'"
                )
        result.append(Comparison(kind, key, comparator, value))
    return result


def _metric_row_condition(comparator: str, value: float) -> Q:
    if comparator == "!=":
        # NaN is unequal to every number, so a NaN latest value matches `!=` only.
        return Q(is_nan=True) | number_condition("value", "!=", value)
    return Q(is_nan=False) & number_condition("value", comparator, value)


def filter_runs(qs: QuerySet[Run], filter_string: str | None) -> QuerySet[Run]:
    subqueries = _KeyedExists()
    for c in run_comparisons(filter_string):
        if c.entity == "metric":
            condition = _metric_row_condition(c.comparator, c.value)
            subqueries.add_rows(LatestMetric, "run", c.key, condition)
        elif c.entity == "param":
            subqueries.add(Param, "run", c.key, c.comparator, c.value)
        elif c.entity == "tag":
            subqueries.add(RunTag, "run", c.key, c.comparator, c.value)
        elif c.entity == "dataset":
            # A run can have several inputs: each clause may match a different one.
            inputs = RunInput.objects.filter(run=OuterRef("pk")).filter(
                string_condition(_DATASET_KEYS[c.key], c.comparator, c.value)
            )
            subqueries.add_other(Q(Exists(inputs)))
        elif c.key in _RUN_STRING_ATTRIBUTES:
            qs = qs.filter(string_condition(_RUN_STRING_ATTRIBUTES[c.key], c.comparator, c.value))
        else:
            field = _RUN_NUMBER_ATTRIBUTES[c.key]
            qs = qs.filter(number_condition(field, c.comparator, c.value, integer=True))
    return subqueries.apply(qs)


# ---------------------------------------------------------------------------------------------
# Ordering


def _parse_order(clause: Any) -> tuple[str | None, str, bool]:
    if not isinstance(clause, str) or not clause.strip():
        raise InvalidParameterValue(
            f"Invalid order_by clause {clause!r}: expected '<identifier> [ASC|DESC]'."
        )
    if len(clause) > 1000:
        raise InvalidParameterValue("Invalid order_by clause: longer than 1000 characters.")
    reader = _Reader(clause.strip())
    try:
        entity, key = reader.identifier()
    except InvalidParameterValue:
        raise InvalidParameterValue(
            f"Invalid order_by clause '{clause}'. Could not be parsed: expected "
            "'<identifier> [ASC|DESC]'."
        ) from None
    rest = reader.rest().split()
    if len(rest) > 1:
        raise InvalidParameterValue(
            f"Invalid order_by clause '{clause}'. Could not be parsed: expected "
            "'<identifier> [ASC|DESC]'."
        )
    ascending = True
    if rest:
        if rest[0].upper() not in ("ASC", "DESC"):
            raise InvalidParameterValue(
                f"Invalid ordering key in order_by clause '{clause}': use ASC or DESC."
            )
        ascending = rest[0].upper() == "ASC"
    return entity, key, ascending


def _check_order_count(order_by: Any) -> list[Any]:
    if order_by is None:
        return []
    if not isinstance(order_by, list | tuple):
        raise InvalidParameterValue("order_by must be a list.")
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidParameterValue(
            f"At most {MAX_ORDER_BY} order_by clauses are allowed; got {len(order_by)}."
        )
    return list(order_by)


def _duplicate(clause: Any) -> InvalidParameterValue:
    return InvalidParameterValue(f"`order_by` contains duplicate fields: '{clause}'.")


def _direction(expression: Any, ascending: bool, nullable: bool = True) -> Any:
    if not nullable:
        # No NULLs to place: a plain ORDER BY lets PostgreSQL walk the index.
        return expression.asc() if ascending else expression.desc()
    return expression.asc(nulls_last=True) if ascending else expression.desc(nulls_last=True)


def order_runs(qs: QuerySet[Run], order_by: list[str]) -> QuerySet[Run]:
    """order_by, then start_time DESC (unless given) and run_id ASC; NaN and NULL last."""
    order_by = _check_order_count(order_by)
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
        if kind == "attribute":
            column = _RUN_STRING_ATTRIBUTES.get(key) or _RUN_NUMBER_ATTRIBUTES.get(key)
            if column is None:
                raise InvalidParameterValue(
                    f"Invalid order_by key '{key}' in '{clause}'. Valid attribute keys are "
                    f"{sorted({*_RUN_STRING_ATTRIBUTES, *_RUN_NUMBER_ATTRIBUTES})}."
                )
            identity: tuple[str, str] = ("attribute", column)
        else:
            identity = (kind, key)
        if identity in seen:
            raise _duplicate(clause)
        seen.add(identity)
        if kind == "attribute":
            has_start_time = has_start_time or identity[1] == "start_time"
            ordering.append(
                _direction(F(identity[1]), ascending, identity[1] not in _NOT_NULL_RUN_COLUMNS)
            )
            continue
        # One LEFT JOIN on the (run, key) row, not a subquery per run: PostgreSQL then
        # hash-joins the key's rows once and keeps the top of the page (at 100,000 runs the
        # correlated subquery cost a third of a second per page).
        relation = {"metric": "latest_metrics", "param": "params", "tag": "tags"}[kind]
        condition = Q(**{f"{relation}__key": key})
        if kind == "metric":
            # NaN becomes NULL here so that it sorts last with the runs lacking the metric.
            condition &= Q(**{f"{relation}__is_nan": False})
        alias = f"order_{i}"
        qs = qs.annotate(**{alias: FilteredRelation(relation, condition=condition)})
        ordering.append(_direction(F(f"{alias}__value"), ascending))
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
_EXPERIMENT_STRING = ("name", "experiment_id")
_EXPERIMENT_NUMBER = ("creation_time", "last_update_time")
_EXPERIMENT_KEYS_TEXT = "'{'experiment_id', 'name', 'last_update_time', 'creation_time'}'"


def filter_experiments(qs: QuerySet[Experiment], filter_string: str | None) -> QuerySet:
    subqueries = _KeyedExists()
    for entity, key, comparator, value in parse_filter(filter_string):
        kind = _EXPERIMENT_ENTITIES.get(entity or "attribute")
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{entity}'. Valid entity types are ('attribute', "
                "'attributes', 'tag', 'tags')"
            )
        if kind == "tag":
            if comparator in LIST_COMPARATORS:
                raise InvalidParameterValue(
                    f"Expected a quoted string value for tag (e.g. 'my-value'). Got value "
                    f"{_show(value)}"
                )
            _check_comparator(comparator, STRING_COMPARATORS + NULL_COMPARATORS, "tags")
            if comparator not in NULL_COMPARATORS:
                value = _need_string(value, "tag")
            subqueries.add(ExperimentTag, "experiment", key, comparator, value)
        elif key in _EXPERIMENT_STRING:
            if comparator in NULL_COMPARATORS:
                raise InvalidParameterValue(
                    f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'"
                )
            if comparator in LIST_COMPARATORS and key != "experiment_id":
                raise InvalidParameterValue(
                    "Only ['experiment_id'] attributes support comparison with a list of "
                    "quoted string values."
                )
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = _need_strings(value, comparator, "attributes")
            if key == "experiment_id":
                qs = qs.filter(_id_condition("experiment_id", comparator, value))
            elif key == "source_run_id":
                qs = qs.annotate(lm_source_run=_source_run_text()).filter(
                    string_condition("lm_source_run", comparator, value)
                )
            else:
                qs = qs.filter(string_condition("name", comparator, value))
        elif key in _EXPERIMENT_NUMBER:
            if comparator in NULL_COMPARATORS:
                raise InvalidParameterValue(
                    f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'"
                )
            _check_comparator(comparator, NUMBER_COMPARATORS, key)
            value = _need_number(value, f"numeric attribute: {key}")
            qs = qs.filter(number_condition(key, comparator, value, integer=True))
        else:
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' specified. Valid keys are {_EXPERIMENT_KEYS_TEXT}"
            )
    return subqueries.apply(qs)


def _id_condition(field: str, comparator: str, value: Any) -> Q:
    """An integer id column compared with quoted strings, as the grammar writes ids."""
    if comparator in ("LIKE", "ILIKE"):
        return like_condition(Cast(field, CharField()), value, case_sensitive=comparator == "LIKE")
    values = value if isinstance(value, tuple) else (value,)
    # A string that is no valid id matches no row (rather than failing in the database).
    ids = [int(v) for v in values if re.fullmatch(r"[0-9]{1,18}", v)]
    if comparator in ("=", "IN"):
        return Q(**{f"{field}__in": ids})
    return Q(**{f"{field}__isnull": False}) & ~Q(**{f"{field}__in": ids})


def order_experiments(qs: QuerySet[Experiment], order_by: list[str]) -> QuerySet:
    """order_by (attributes only), default creation_time DESC; always experiment_id ASC last."""
    order_by = _check_order_count(order_by)
    ordering, seen = [], set()
    for clause in order_by:
        entity, key, ascending = _parse_order(clause)
        if entity is not None and _EXPERIMENT_ENTITIES.get(entity) != "attribute":
            singular = _EXPERIMENT_ENTITIES.get(entity) or _RUN_ENTITIES.get(entity) or entity
            raise InvalidParameterValue(
                f"Invalid order_by entity: {singular}. Experiments can only be ordered by "
                "attributes."
            )
        if key not in (*_EXPERIMENT_STRING, *_EXPERIMENT_NUMBER):
            raise InvalidParameterValue(
                f"Invalid order_by key '{key}' for experiments. Valid keys are "
                f"{_EXPERIMENT_KEYS_TEXT}."
            )
        if key in seen:
            raise _duplicate(clause)
        seen.add(key)
        ordering.append(F(key).asc() if ascending else F(key).desc())
    if not ordering:
        ordering.append(F("creation_time").desc())
    if "experiment_id" not in seen:
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


def _source_run_text() -> Expression:
    """The model's source run id as the client gave it: the linked run's, or the
    unlinked reference (LoggedModel.source_run_reference); NULL when there is none."""
    return NullIf(Concat(Coalesce("source_run_id", Value("")), "source_run_reference"), Value(""))


def filter_logged_models(
    qs: QuerySet[LoggedModel], filter_string: str | None, datasets: list[dict] | None = None
) -> QuerySet:
    datasets = _check_datasets(datasets)
    subqueries = _KeyedExists()
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
            _check_comparator(comparator, NUMBER_COMPARATORS, "metrics")
            value = _need_number(value, "metric")
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
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, f"{kind}s")
            value = _need_strings(value, comparator, kind)
            model = LoggedModelParam if kind == "param" else LoggedModelTag
            subqueries.add_rows(model, "model", key, string_condition("value", comparator, value))
        elif key in _LM_STRING:
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = _need_strings(value, comparator, "attribute")
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
                qs = qs.filter(_id_condition("experiment_id", comparator, value))
            elif key == "source_run_id":
                qs = qs.annotate(lm_source_run=_source_run_text()).filter(
                    string_condition("lm_source_run", comparator, value)
                )
            else:
                qs = qs.filter(string_condition(_LM_STRING[key], comparator, value))
        elif key in _LM_NUMBER:
            _check_comparator(comparator, NUMBER_COMPARATORS, key)
            value = _need_number(value, f"numeric attribute: {key}")
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
    order_by = _check_order_count(order_by)
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
                qs = qs.annotate(lm_source_run=_source_run_text())
                field = F("lm_source_run")
        if identity in seen:
            raise _duplicate(name)
        seen.add(identity)
        ordering.append(_direction(field, ascending, nullable))
    if not ordering:
        ordering.append(F("creation_timestamp").desc())
    ordering.append(F("model_id").asc())
    return qs.order_by(*ordering)


# ---------------------------------------------------------------------------------------------
# Registry grammars (registered models, model versions), compiled by the registry app.

_REGISTRY_ENTITIES = {
    None: "attribute",
    "attribute": "attribute",
    "attributes": "attribute",
    "tag": "tag",
    "tags": "tag",
}
_REGISTRY_ATTRIBUTES = {
    "registered_model": {"name": "string"},
    "model_version": {
        "name": "string",
        "run_id": "string",
        "source_path": "string",
        "version_number": "number",
    },
}
# key as written -> canonical key (both timestamps mean the last update for models)
_REGISTRY_ORDER_KEYS = {
    "registered_model": {
        "name": "name",
        "timestamp": "last_updated_timestamp",
        "last_updated_timestamp": "last_updated_timestamp",
    },
    "model_version": {
        "name": "name",
        "version_number": "version_number",
        "creation_timestamp": "creation_timestamp",
        "last_updated_timestamp": "last_updated_timestamp",
        "timestamp": "last_updated_timestamp",
    },
}


def registry_comparisons(text: str | None, entity: str) -> list[Comparison]:
    """`entity` is "registered_model" or "model_version" (reference §5.4, §5.5)."""
    attributes = _REGISTRY_ATTRIBUTES[entity]
    what = "registered model" if entity == "registered_model" else "model version"
    result = []
    for ent, key, comparator, value in parse_filter(text):
        kind = _REGISTRY_ENTITIES.get(ent)
        if kind is None:
            raise InvalidParameterValue(
                f"Invalid entity type '{ent}'. Valid entity types are ('attribute', 'tag')."
            )
        if comparator in NULL_COMPARATORS:
            raise InvalidParameterValue(
                f"IS NULL / IS NOT NULL is not supported for {what} search."
            )
        if kind == "tag":
            if comparator in LIST_COMPARATORS:
                raise InvalidParameterValue(
                    f"Invalid comparator '{comparator}' not one of '{set(STRING_COMPARATORS)}' "
                    "for tags."
                )
            _check_comparator(comparator, STRING_COMPARATORS, "tags")
            value = _need_string(value, "tag")
        elif attributes.get(key) == "string":
            _check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = _need_strings(value, comparator, "attribute")
        elif attributes.get(key) == "number":
            _check_comparator(comparator, NUMBER_COMPARATORS, key)
            if isinstance(value, str) and not isinstance(value, _Bare):
                if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
                    raise InvalidParameterValue(
                        f"Expected an integer value for {key}. Found {value!r}"
                    )
                value = float(value)
            value = _need_number(value, f"numeric attribute: {key}")
            if not (value.is_integer() and abs(value) < 2**53):
                raise InvalidParameterValue(f"Expected an integer value for {key}. Found {value}")
        else:
            if ent is None and key.lower() == "version":
                raise _invalid(
                    f"{key}, {comparator}, {_show(value)}",
                    "'version' is a keyword; use version_number.",
                )
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' specified. Valid keys are '{set(attributes)}'"
            )
        result.append(Comparison(kind, key, comparator, value))
    return result


def parse_registered_model_filter(filter_string: str | None) -> list[Comparison]:
    """§5.4: attribute `name` (= != LIKE ILIKE IN NOT IN) and tags (= != LIKE ILIKE)."""
    return registry_comparisons(filter_string, "registered_model")


def parse_model_version_filter(filter_string: str | None) -> list[Comparison]:
    """§5.5: name, run_id, source_path (strings), version_number (an integer; '1' too), tags."""
    return registry_comparisons(filter_string, "model_version")


def parse_registry_order_by(
    order_by: list[str], entity: str | dict[str, str]
) -> list[tuple[str, bool]]:
    """[(key, ascending)] from "<key> [ASC|DESC]" clauses. `entity` is "registered_model" or
    "model_version" (keys are returned canonical: `timestamp` -> `last_updated_timestamp`), or
    a mapping {key as written: column} whose columns are returned instead."""
    allowed = _REGISTRY_ORDER_KEYS[entity] if isinstance(entity, str) else entity
    result, seen = [], set()
    for clause in _check_order_count(order_by):
        ent, key, ascending = _parse_order(clause)
        if ent not in (None, "attribute", "attributes") or key not in allowed:
            raise InvalidParameterValue(
                f"Invalid order by key '{clause}' specified. Valid keys are {sorted(allowed)}."
            )
        if allowed[key] in seen:
            raise _duplicate(clause)
        seen.add(allowed[key])
        result.append((allowed[key], ascending))
    return result

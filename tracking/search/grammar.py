"""The filter and order_by grammar shared by every search: limits, the tokenizer
(`parse_filter`), the value and comparator checks, the order_by clause parser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import InvalidParameterValue

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


class Bare(str):
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


def invalid(text: str, hint: str = "") -> InvalidParameterValue:
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
            raise invalid(self.rest(), _GRAMMAR_HINT)
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
            raise invalid(self.rest(), "Expected a comparator after the identifier.")
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
            return Bare(bare.group(0))
        raise invalid(self.rest(), "Expected a value.")

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
                    raise invalid(self.text[start:].strip(), "Expected ',' or ')' in the list.")
                self.pos += 1
                self.skip_ws()
            if self.peek() in ("'", '"'):
                items.append(self.quoted(self.peek()))
                continue
            number = self.number()
            if number is None:
                raise invalid(
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
            raise invalid(reader.rest(), _GRAMMAR_HINT)
        entity, key = reader.identifier()
        if entity is None and key.upper() in ("NOT", "OR", "AND"):
            raise invalid(key.upper(), _GRAMMAR_HINT)
        comparator = reader.comparator()
        if comparator in ("==", "<>", "NOT LIKE", "NOT ILIKE"):
            raise InvalidParameterValue(
                f"Invalid comparator '{comparator}' in filter string; allowed comparators are "
                "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL and IS NOT NULL."
            )
        if comparator == "BETWEEN":
            raise invalid(
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
            raise invalid(reader.rest(), _GRAMMAR_HINT)
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


def show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    if isinstance(value, _Number):
        return value.raw
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and not isinstance(value, Bare):
        return repr(value)
    return str(value)


def check_comparator(comparator: str, allowed: tuple[str, ...], what: str = "") -> None:
    if comparator not in allowed:
        suffix = f" for {what}" if what else ""
        raise InvalidParameterValue(
            f"Invalid comparator '{comparator}' not one of '{set(allowed)}'{suffix}"
        )


def need_number(value: Any, what: str) -> float:
    if isinstance(value, Bare):
        raise InvalidParameterValue(
            f"Expected numeric value type for {what}. Found {value}, which is not a number "
            "and not quoted (NaN and infinity cannot be compared)."
        )
    if not isinstance(value, float):
        raise InvalidParameterValue(f"Expected numeric value type for {what}. Found {show(value)}")
    return float(value)


def need_string(value: Any, what: str) -> str:
    if isinstance(value, Bare):
        raise InvalidParameterValue(
            "Parameter value is either not quoted or unidentified quote types used for "
            f"string value {value}. Use either single or double quotes."
        )
    if not isinstance(value, str):
        raise InvalidParameterValue(
            f"Expected a quoted string value for {what} (e.g. 'my-value'). Got value {show(value)}"
        )
    return str(value)


def need_strings(value: Any, comparator: str, what: str) -> str | tuple[str, ...]:
    if comparator in LIST_COMPARATORS:
        return value
    return need_string(value, what)


# ---------------------------------------------------------------------------------------------
# Ordering


def parse_order(clause: Any) -> tuple[str | None, str, bool]:
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


def check_order_count(order_by: Any) -> list[Any]:
    if order_by is None:
        return []
    if not isinstance(order_by, list | tuple):
        raise InvalidParameterValue("order_by must be a list.")
    if len(order_by) > MAX_ORDER_BY:
        raise InvalidParameterValue(
            f"At most {MAX_ORDER_BY} order_by clauses are allowed; got {len(order_by)}."
        )
    return list(order_by)


def duplicate(clause: Any) -> InvalidParameterValue:
    return InvalidParameterValue(f"`order_by` contains duplicate fields: '{clause}'.")

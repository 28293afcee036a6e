"""The registry's filter and order_by grammars (registered models, model versions); the
registry app compiles the `Comparison`s with the conditions in tracking.search.sql."""

from __future__ import annotations

import re

from core.errors import InvalidParameterValue
from tracking.search.grammar import (
    LIST_COMPARATORS,
    NULL_COMPARATORS,
    NUMBER_COMPARATORS,
    STRING_COMPARATORS,
    Bare,
    Comparison,
    check_comparator,
    check_order_count,
    duplicate,
    invalid,
    need_number,
    need_string,
    need_strings,
    parse_filter,
    parse_order,
    show,
)

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
            check_comparator(comparator, STRING_COMPARATORS, "tags")
            value = need_string(value, "tag")
        elif attributes.get(key) == "string":
            check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = need_strings(value, comparator, "attribute")
        elif attributes.get(key) == "number":
            check_comparator(comparator, NUMBER_COMPARATORS, key)
            if isinstance(value, str) and not isinstance(value, Bare):
                if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
                    raise InvalidParameterValue(
                        f"Expected an integer value for {key}. Found {value!r}"
                    )
                value = float(value)
            value = need_number(value, f"numeric attribute: {key}")
            if not (value.is_integer() and abs(value) < 2**53):
                raise InvalidParameterValue(f"Expected an integer value for {key}. Found {value}")
        else:
            if ent is None and key.lower() == "version":
                raise invalid(
                    f"{key}, {comparator}, {show(value)}",
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
    for clause in check_order_count(order_by):
        ent, key, ascending = parse_order(clause)
        if ent not in (None, "attribute", "attributes") or key not in allowed:
            raise InvalidParameterValue(
                f"Invalid order by key '{clause}' specified. Valid keys are {sorted(allowed)}."
            )
        if allowed[key] in seen:
            raise duplicate(clause)
        seen.add(allowed[key])
        result.append((allowed[key], ascending))
    return result

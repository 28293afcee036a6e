"""Search experiments: the grammar of experiment filters and order_by, compiled to SQL (§5.3)."""

from __future__ import annotations

from django.db.models import (
    F,
    QuerySet,
)

from core.errors import InvalidParameterValue
from tracking.models import (
    Experiment,
    ExperimentTag,
)
from tracking.search.grammar import (
    LIST_COMPARATORS,
    NULL_COMPARATORS,
    NUMBER_COMPARATORS,
    STRING_COMPARATORS,
    check_comparator,
    check_order_count,
    duplicate,
    need_number,
    need_string,
    need_strings,
    parse_filter,
    parse_order,
    show,
)
from tracking.search.logged_models import source_run_text
from tracking.search.runs import RUN_ENTITIES
from tracking.search.sql import KeyedExists, id_condition, number_condition, string_condition

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
    subqueries = KeyedExists()
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
                    f"{show(value)}"
                )
            check_comparator(comparator, STRING_COMPARATORS + NULL_COMPARATORS, "tags")
            if comparator not in NULL_COMPARATORS:
                value = need_string(value, "tag")
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
            check_comparator(comparator, STRING_COMPARATORS + LIST_COMPARATORS, key)
            value = need_strings(value, comparator, "attributes")
            if key == "experiment_id":
                qs = qs.filter(id_condition("experiment_id", comparator, value))
            elif key == "source_run_id":
                qs = qs.annotate(lm_source_run=source_run_text()).filter(
                    string_condition("lm_source_run", comparator, value)
                )
            else:
                qs = qs.filter(string_condition("name", comparator, value))
        elif key in _EXPERIMENT_NUMBER:
            if comparator in NULL_COMPARATORS:
                raise InvalidParameterValue(
                    f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'"
                )
            check_comparator(comparator, NUMBER_COMPARATORS, key)
            value = need_number(value, f"numeric attribute: {key}")
            qs = qs.filter(number_condition(key, comparator, value, integer=True))
        else:
            raise InvalidParameterValue(
                f"Invalid attribute key '{key}' specified. Valid keys are {_EXPERIMENT_KEYS_TEXT}"
            )
    return subqueries.apply(qs)


def order_experiments(qs: QuerySet[Experiment], order_by: list[str]) -> QuerySet:
    """order_by (attributes only), default creation_time DESC; always experiment_id ASC last."""
    order_by = check_order_count(order_by)
    ordering, seen = [], set()
    for clause in order_by:
        entity, key, ascending = parse_order(clause)
        if entity is not None and _EXPERIMENT_ENTITIES.get(entity) != "attribute":
            singular = _EXPERIMENT_ENTITIES.get(entity) or RUN_ENTITIES.get(entity) or entity
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
            raise duplicate(clause)
        seen.add(key)
        ordering.append(F(key).asc() if ascending else F(key).desc())
    if not ordering:
        ordering.append(F("creation_time").desc())
    if "experiment_id" not in seen:
        ordering.append(F("experiment_id").asc())
    return qs.order_by(*ordering)

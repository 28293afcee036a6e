"""Validation of what clients log, with MLflow's limits and messages (protocol §4)."""

from __future__ import annotations

import functools
import posixpath
import re
from typing import Any

from core.errors import InvalidParameterValue
from core.mlflow_api import check_text, to_double, to_int64

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_RUN_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_VALUE_LENGTH = 20000
MAX_RUN_NAME_LENGTH = 250
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
MAX_DATASET_NAME = 500
MAX_DATASET_DIGEST = 36
MAX_DATASET_SOURCE = 65535
MAX_DATASET_SCHEMA = 1048575
MAX_DATASET_PROFILE = 16777215
MAX_INPUT_TAG_KEY = 255
MAX_INPUT_TAG_VALUE = 500

_KEY_CHARS = re.compile(r"^[/\w.\- :]*$")


def validate_key(key: Any, kind: str) -> str:
    """Metric, param and tag keys: MLflow's character set, no path tricks."""
    if type(key) is str:
        return _checked_key(key, kind)
    return _check_key(key, kind)


@functools.lru_cache(maxsize=4096)
def _checked_key(key: str, kind: str) -> str:
    # A batch names few keys many times (1,000 points of 10 metrics): each is checked once.
    # Only keys that pass are kept (a refusal raises, which the cache does not store).
    return _check_key(key, kind)


def _check_key(key: Any, kind: str) -> str:
    if key is None or key == "":
        raise InvalidParameterValue(f"Missing value for required parameter 'key' of {kind}.")
    key = check_text(key, f"{kind} key")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidParameterValue(
            f"{kind.capitalize()} name '{key[:40]}...' exceeds the maximum length of "
            f"{MAX_KEY_LENGTH} characters."
        )
    if not _KEY_CHARS.match(key):
        raise InvalidParameterValue(
            f"Invalid {kind} name: '{key}'. Names may only contain alphanumerics, underscores "
            "(_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    normalized = posixpath.normpath(key)
    if normalized != key or normalized in (".", "..") or normalized.startswith(("../", "/")):
        raise InvalidParameterValue(
            f"Invalid {kind} name: '{key}'. Names may be treated as files in certain cases, "
            "and must not resolve to other names when treated as such."
        )
    return key


def value_as_text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return check_text(value, field)


def truncate(value: str, limit: int) -> str:
    # MLflow's client and server truncate long param and tag values instead of refusing them.
    return value if len(value) <= limit else value[:limit]


def parse_metric(raw: dict[str, Any]) -> dict[str, Any]:
    key = validate_key(raw.get("key"), "metric")
    if "value" not in raw or raw["value"] is None:
        raise InvalidParameterValue(
            f"Missing value for required parameter 'value' of metric '{key}'."
        )
    value = to_double(raw["value"], "value")
    if raw.get("timestamp") in (None, ""):
        raise InvalidParameterValue(
            f"Missing value for required parameter 'timestamp' of metric '{key}'."
        )
    timestamp = to_int64(raw["timestamp"], "timestamp")
    step = to_int64(raw.get("step") or 0, "step")
    return {
        "key": key,
        "value": value,
        "timestamp": timestamp,
        "step": step,
        "model_id": _optional_text(raw, "model_id", 64),
        "dataset_name": _optional_text(raw, "dataset_name", MAX_DATASET_NAME),
        "dataset_digest": _optional_text(raw, "dataset_digest", 64),
    }


def _optional_text(raw: dict[str, Any], field: str, max_length: int) -> str:
    value = raw.get(field)
    return check_text(value, field, max_length=max_length) if value else ""


def parse_key_values(
    items: list[dict[str, Any]], kind: str, *, value_limit: int | None, truncate_values: bool
) -> list[tuple[str, str]]:
    result = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidParameterValue(f"Each {kind} must be an object with 'key' and 'value'.")
        key = validate_key(item.get("key"), kind)
        value = value_as_text(item.get("value"), f"{kind} value")
        if value_limit is not None and len(value) > value_limit:
            if not truncate_values:
                raise InvalidParameterValue(
                    f"{kind.capitalize()} '{key}' value exceeds the maximum length of "
                    f"{value_limit} characters (got {len(value)})."
                )
            value = truncate(value, value_limit)
        result.append((key, value))
    return result


def check_batch_limits(n_metrics: int, n_params: int, n_tags: int) -> None:
    if n_metrics > MAX_BATCH_METRICS:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {MAX_BATCH_METRICS} metrics. "
            f"Got {n_metrics} metrics. Please split up metrics across multiple requests and try "
            "again."
        )
    if n_params > MAX_BATCH_PARAMS:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {MAX_BATCH_PARAMS} params. "
            f"Got {n_params} params. Please split up params across multiple requests and try "
            "again."
        )
    if n_tags > MAX_BATCH_TAGS:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {MAX_BATCH_TAGS} tags. "
            f"Got {n_tags} tags. Please split up tags across multiple requests and try again."
        )
    total = n_metrics + n_params + n_tags
    if total > MAX_BATCH_ENTITIES:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {MAX_BATCH_ENTITIES} total "
            f"metrics, params and tags. Got {total}. Please split up the request and try again."
        )

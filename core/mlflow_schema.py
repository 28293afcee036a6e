"""One schema of the MLflow protocol, checked before any MLflow handler runs.

The facts (fields, protobuf types, repeated, defaults, MLflow's `validate_required` flag) come
from MLflow's own .proto descriptors, written once into `core.mlflow_schema_data` by
scripts/generate_mlflow_schema.py. What MLflow's server enforces beyond the protos (which
fields its handlers require, the `max_results` limits) is written here, next to the data.

A request message is checked field by field against its protobuf type, and refused the way
MLflow's server refuses it: 400 INVALID_PARAMETER_VALUE with MLflow's wording
("Invalid value 31 for parameter 'run_id' supplied: ...", "Missing value for required
parameter 'name'. ..."); Custody may add a sentence after MLflow's. Unknown fields are ignored,
as protobuf's JSON parser does for MLflow. Each message is compiled once per process into a
dict of checkers, so a request costs one dict lookup and one type test per field it sends."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from core import mlflow_schema_data as facts
from core.errors import InvalidParameterValue

SEE_DOCS = " See the API docs for more information about request parameters."

INT_RANGES = {
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
}
_INTEGER_TEXT = re.compile(r"-?\d{1,20}")
_DOUBLE_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
_SHOWN_VALUE_CHARS = 200


def _formatted(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > _SHOWN_VALUE_CHARS:
        text = text[: _SHOWN_VALUE_CHARS - 3] + "..."
    return text


def invalid_value(path: str, value: Any, addition: str = "") -> InvalidParameterValue:
    """MLflow's refusal of a value of the wrong type (its `invalid_value` wording, with the
    type hint its server adds); `addition` is Custody's sentence after it."""
    return InvalidParameterValue(
        f"Invalid value {_formatted(value)} for parameter '{path}' supplied:  Hint: Value was "
        f"of type '{type(value).__name__}'.{SEE_DOCS}{addition}"
    )


def out_of_range(path: str, value: Any, limit: str) -> InvalidParameterValue:
    """MLflow's refusal of a `max_results` outside its limits (experiments, metric history)."""
    return InvalidParameterValue(
        f"Invalid value {_formatted(value)} for parameter '{path}' supplied. {limit}"
    )


def missing_value(path: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Missing value for required parameter '{path}'.{SEE_DOCS}")


# ---------------------------------------------------------------------------------------------
# What MLflow's server enforces beyond the protos (mlflow/server/handlers.py request schemas).

# Fields the handlers require that the protos leave optional. `run_id` is satisfied by the
# legacy `run_uuid` too, as MLflow does.
EXTRA_REQUIRED: dict[str, tuple[str, ...]] = {
    "mlflow/runs/get": ("run_id",),
    "mlflow/runs/update": ("run_id",),
    "mlflow/runs/log-metric": ("run_id",),
    "mlflow/runs/log-parameter": ("run_id",),
    "mlflow/runs/set-tag": ("run_id",),
    "mlflow/runs/log-batch": ("run_id",),
    "mlflow/runs/log-model": ("run_id",),
    "mlflow/artifacts/list": ("run_id",),
    "mlflow/metrics/get-history": ("run_id",),
    "mlflow/metrics/get-history-bulk-interval": ("run_ids",),
    "mlflow-artifacts/mpu/create/<path:artifact_path>": ("path",),
    "mlflow-artifacts/mpu/complete/<path:artifact_path>": ("path",),
    "mlflow-artifacts/mpu/abort/<path:artifact_path>": ("path",),
}

# Fields the protos mark required that MLflow's server accepts empty or absent: an empty tag
# or param value is a value, and clients omit `archive_existing_versions=false`.
NOT_REQUIRED: dict[str, tuple[str, ...]] = {
    "mlflow/runs/log-parameter": ("value",),
    "mlflow/runs/set-tag": ("value",),
    "mlflow/experiments/set-experiment-tag": ("value",),
    "mlflow/registered-models/set-tag": ("value",),
    "mlflow/model-versions/set-tag": ("value",),
    "mlflow/model-versions/transition-stage": ("archive_existing_versions",),
}

# Required fields of the messages inside a repeated field (log-batch's entities).
NESTED_REQUIRED: dict[str, dict[str, tuple[str, ...]]] = {
    "mlflow/runs/log-batch": {
        "metrics": ("key", "value", "timestamp"),
        "params": ("key",),
        "tags": ("key",),
    },
}


def _at_most(maximum: int) -> Callable[[str, Any, int], None]:
    # MLflow's handlers refuse these with the type-hint wording (their assertion carries no
    # message of its own).
    def check(path: str, raw: Any, value: int) -> None:
        if value > maximum:
            raise invalid_value(path, raw, f" At most {maximum} results may be requested.")

    return check


def _positive(maximum: int | None, *, period: str) -> Callable[[str, Any, int], None]:
    def check(path: str, raw: Any, value: int) -> None:
        if value <= 0:
            raise out_of_range(path, value, f"It must be a positive integer{period}")
        if maximum is not None and value > maximum:
            raise out_of_range(path, value, f"It must be at most {maximum}{period}")

    return check


def _between(low: int, high: int) -> Callable[[str, Any, int], None]:
    def check(path: str, raw: Any, value: int) -> None:
        if not low <= value <= high:
            raise InvalidParameterValue(f"max_results must be between {low} and {high}.")

    return check


# endpoint path -> field -> check(path, raw value, parsed int).
LIMITS: dict[str, dict[str, Callable[[str, Any, int], None]]] = {
    "mlflow/runs/search": {"max_results": _at_most(50000)},
    "mlflow/registered-models/search": {"max_results": _at_most(1000)},
    "mlflow/model-versions/search": {"max_results": _at_most(200000)},
    "mlflow/experiments/search": {"max_results": _positive(50000, period="")},
    "mlflow/metrics/get-history": {"max_results": _positive(None, period=".")},
    "mlflow/metrics/get-history-bulk-interval": {"max_results": _between(1, 2500)},
    "mlflow/metrics/get-history-bulk": {"max_results": _positive(None, period=".")},
}

# MLflow UI routes that are not protobuf RPCs (served by MLflow's Flask app directly).
UI_MESSAGES: dict[str, str] = {
    "GET mlflow/metrics/get-history-bulk": "custody.GetMetricHistoryBulk"
}
UI_MESSAGE_FIELDS: dict[str, list[tuple]] = {
    "custody.GetMetricHistoryBulk": [
        ("run_id", "runId", "string", True, True, None, None),
        ("metric_key", "metricKey", "string", False, True, None, None),
        ("max_results", "maxResults", "int32", False, False, None, None),
    ],
}


# ---------------------------------------------------------------------------------------------
# Compilation


Checker = Callable[[Any, str, bool], Any]


@dataclass
class MessageSchema:
    """A compiled request message: name -> checker (snake and lowerCamel spellings)."""

    name: str
    fields: dict[str, Checker] = field(default_factory=dict)
    kinds: dict[str, tuple[str, bool, Any, Any]] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    nested_required: dict[str, tuple[str, ...]] = field(default_factory=dict)
    limits: dict[str, Callable[[str, Any, int], None]] = field(default_factory=dict)

    def check(self, data: dict[str, Any], kwargs: dict[str, Any], from_query: bool) -> None:
        fields = self.fields
        for name, value in data.items():
            checker = fields.get(name)
            if checker is None or value is None:
                continue  # unknown fields are ignored; null reads as unset
            if from_query:
                value = _query_value(value, self.kinds[name][1])
            parsed = checker(value, name, from_query)
            limit = self.limits.get(name)
            if limit is not None:
                limit(name, value, parsed)
        for name in self.required:
            if name in kwargs:
                continue
            value = data.get(name)
            if name == "run_id" and _is_missing(value):
                value = data.get("run_uuid")
            if _is_missing(value):
                raise missing_value(name)
        for name, required in self.nested_required.items():
            items = data.get(name)
            if isinstance(items, list):
                for index, item in enumerate(items):
                    for key in required:
                        if _is_missing(item.get(key)):
                            raise missing_value(f"{name}[{index}].{key}")


def _query_value(value: Any, repeated: bool) -> Any:
    """A query string gives every parameter as a list; a singular field reads its first value,
    as MLflow's server does."""
    if isinstance(value, list) and not repeated:
        return value[0] if value else None
    return value


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == [""]


def _string(value: Any, path: str, from_query: bool) -> Any:
    if not isinstance(value, str):
        raise invalid_value(path, value)
    return value


def _integer(kind: str) -> Checker:
    low, high = INT_RANGES[kind]

    def check(value: Any, path: str, from_query: bool) -> int:
        if isinstance(value, bool):
            raise invalid_value(path, value)
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
            number = int(value)
        else:
            raise invalid_value(path, value)
        if not low <= number <= high:
            raise invalid_value(path, value, f" It is outside the {kind} range.")
        return number

    return check


def _double(value: Any, path: str, from_query: bool) -> Any:
    if isinstance(value, bool):
        raise invalid_value(path, value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        if value in _DOUBLE_WORDS:
            return value
        try:
            float(value)
        except ValueError:
            pass
        else:
            if value.strip().lower() not in ("nan", "inf", "+inf", "-inf", "infinity"):
                return value
    raise invalid_value(
        path, value, ' NaN and infinities are sent as "NaN", "Infinity" and "-Infinity".'
    )


def _bool(value: Any, path: str, from_query: bool) -> Any:
    if from_query and isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise InvalidParameterValue(
                f"Invalid boolean value: {value}, must be 'true' or 'false'."
            )
        return value
    if not isinstance(value, bool):
        raise invalid_value(path, value)
    return value


def _enum(enum_name: str) -> Checker:
    values = facts.ENUMS[enum_name]
    numbers = frozenset(values.values())
    allowed = f" Allowed: {', '.join(sorted(values, key=values.__getitem__))}."

    def check(value: Any, path: str, from_query: bool) -> Any:
        if isinstance(value, str):
            if value in values:
                return value
            if from_query and _INTEGER_TEXT.fullmatch(value) and int(value) in numbers:
                return value
        elif isinstance(value, int) and not isinstance(value, bool) and value in numbers:
            return value
        raise invalid_value(path, value, allowed)

    return check


def _any(value: Any, path: str, from_query: bool) -> Any:
    return value


def _map(value: Any, path: str, from_query: bool) -> Any:
    if not isinstance(value, dict):
        raise invalid_value(path, value)
    return value


_SCALARS: dict[str, Checker] = {
    "string": _string,
    "bytes": _string,
    "double": _double,
    "float": _double,
    "bool": _bool,
    "json": _any,
    "map": _map,
}


# The JSON types a field of each kind takes without further checks (exact types: a bool is no
# number); anything else goes through the field's full checker. Keeps log-batch's thousands of
# nested fields cheap.
_PLAIN_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "double": frozenset({float, int}),
    "float": frozenset({float, int}),
    "bool": frozenset({bool}),
}
_INT64_LOW, _INT64_HIGH = INT_RANGES["int64"]


def _plain_types(message_name: str) -> dict[str, frozenset[type]]:
    plain = {}
    for name, json_name, kind, repeated, *_ in _message_fields(message_name):
        if not repeated and kind in _PLAIN_TYPES:
            plain[name] = plain[json_name] = _PLAIN_TYPES[kind]
    return plain


def _plain_int64s(message_name: str) -> frozenset[str]:
    return frozenset(
        spelling
        for name, json_name, kind, repeated, *_ in _message_fields(message_name)
        if kind == "int64" and not repeated
        for spelling in (name, json_name)
    )


def _nested(message_name: str, compiled: dict[str, MessageSchema]) -> Checker:
    plain = _plain_types(message_name)
    int64s = _plain_int64s(message_name)

    def check(value: Any, path: str, from_query: bool) -> Any:
        if not isinstance(value, dict):
            raise invalid_value(path, value)
        fields = compiled[message_name].fields
        for name, item in value.items():
            kind = type(item)
            if kind in plain.get(name, ()) or (
                kind is int and name in int64s and _INT64_LOW <= item <= _INT64_HIGH
            ):
                continue
            checker = fields.get(name)
            if checker is not None and item is not None:
                try:
                    checker(item, name, from_query)
                except InvalidParameterValue:
                    # Name the field by its full path; built only for the refusal (a log-batch
                    # carries thousands of fields).
                    checker(item, f"{path}.{name}", from_query)
                    raise
        return value

    return check


def _repeated(item: Checker, message: bool) -> Checker:
    def check(value: Any, path: str, from_query: bool) -> Any:
        if not isinstance(value, list):
            raise invalid_value(path, value)
        if message:
            for element in value:
                try:
                    item(element, path, from_query)
                except InvalidParameterValue:
                    index = next(i for i, e in enumerate(value) if e is element)
                    item(element, f"{path}[{index}]", from_query)
                    raise
        else:
            # MLflow names the whole list when one of its items has the wrong type.
            for element in value:
                try:
                    item(element, path, from_query)
                except InvalidParameterValue:
                    raise invalid_value(path, value) from None
        return value

    return check


def _field_checker(kind: str, repeated: bool, ref: Any, compiled: dict) -> Checker:
    if kind == "message":
        checker = _nested(ref, compiled)
    elif kind == "enum":
        checker = _enum(ref)
    elif kind in INT_RANGES:
        checker = _integer(kind)
    else:
        checker = _SCALARS[kind]
    return _repeated(checker, kind == "message") if repeated else checker


def _message_fields(name: str) -> list[tuple]:
    fields = facts.MESSAGES[name] if name in facts.MESSAGES else UI_MESSAGE_FIELDS[name]
    return cast(list[tuple], fields)


def _compile_all() -> dict[str, MessageSchema]:
    compiled: dict[str, MessageSchema] = {}
    for name in [*facts.MESSAGES, *UI_MESSAGE_FIELDS]:
        schema = MessageSchema(name=name)
        for fname, json_name, kind, repeated, _required, default, ref in _message_fields(name):
            checker = _field_checker(kind, repeated, ref, compiled)
            for spelling in {fname, json_name}:
                schema.fields[spelling] = checker
                schema.kinds[spelling] = (kind, repeated, default, ref)
        compiled[name] = schema
    return compiled


_COMPILED: dict[str, MessageSchema] | None = None
_ENDPOINTS: dict[tuple[str, str], MessageSchema] = {}


def mlflow_path(prefix: str, route_path: str) -> str:
    """The MLflow spelling of a Custody route: `mlflow/logged-models/{model_id}` for
    prefix `api/2.0/mlflow/` and path `logged-models/<str:model_id>`."""
    base = "mlflow-artifacts/" if prefix.rstrip("/").endswith("mlflow-artifacts") else "mlflow/"
    return base + re.sub(r"<str:(\w+)>", r"{\1}", route_path)


def endpoint_messages() -> dict[str, str]:
    """`"METHOD path"` -> request message, for every endpoint the schema knows."""
    return {**facts.ENDPOINTS, **UI_MESSAGES}


def schema_for(method: str, path: str) -> MessageSchema | None:
    """The compiled schema of one endpoint (`path` in MLflow's spelling), or None for routes
    MLflow does not define. A method MLflow does not list on a path it defines (Custody also
    answers GET on some POST searches) uses that path's message. Compiled once per process."""
    global _COMPILED
    key = (method, path)
    if key in _ENDPOINTS:
        return _ENDPOINTS[key]
    if _COMPILED is None:
        _COMPILED = _compile_all()
    endpoints = endpoint_messages()
    message = endpoints.get(f"{method} {path}")
    if message is None:
        message = next((m for k, m in endpoints.items() if k.split(" ", 1)[1] == path), None)
    if message is None:
        return None
    base = _COMPILED[message]
    required = {f[0] for f in _message_fields(message) if f[4]}
    required |= set(EXTRA_REQUIRED.get(path, ()))
    required -= set(NOT_REQUIRED.get(path, ()))
    schema = MessageSchema(
        name=message,
        fields=base.fields,
        kinds=base.kinds,
        required=tuple(sorted(required)),
        nested_required=NESTED_REQUIRED.get(path, {}),
        limits=LIMITS.get(path, {}),
    )
    _ENDPOINTS[key] = schema
    return schema

"""The MLflow wire layer: request parsing, response encoding and the route table.

Handlers are plain functions `handler(req: MlflowRequest) -> dict` registered with
`@mlflow_route(...)`. Each route declares its access rule; `core.access.authorize` is the one
place that decides. Errors raised as `core.errors.ApplicationError` become MLflow's
`{"error_code", "message"}` body with MLflow's status code."""

from __future__ import annotations

import builtins
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import ResolverMatch, URLPattern, URLResolver
from django.urls import path as url_path
from django.urls.resolvers import RoutePattern
from django.views.decorators.csrf import csrf_exempt

from core import errors
from core.errors import InvalidParameterValue

logger = logging.getLogger(__name__)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


# ---------------------------------------------------------------------------------------------
# Text validation shared by every string that reaches the database.


def check_text(value: Any, field_name: str, *, max_length: int | None = None) -> str:
    """Refuse what PostgreSQL cannot store or what would make two spellings of one name:
    NUL bytes and lone surrogates are 400s here rather than 500s in the driver."""
    if not isinstance(value, str):
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{field_name}': expected a string."
        )
    if "\x00" in value:
        raise InvalidParameterValue(f"Parameter '{field_name}' must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterValue(
            f"Parameter '{field_name}' is not valid Unicode (lone surrogate)."
        ) from None
    if max_length is not None and len(value) > max_length:
        raise InvalidParameterValue(
            f"Parameter '{field_name}' exceeds the maximum length of {max_length} characters "
            f"(got {len(value)})."
        )
    return value


def normalize_name(value: str) -> str:
    """One canonical spelling for user-given names (NFC)."""
    return unicodedata.normalize("NFC", value)


_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def clean_name(value: Any, field_name: str, *, max_length: int) -> str:
    """A user-given name (experiment, registered model): NFC, visible characters only, no
    surrounding whitespace, so that what people see is what identifies the object."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        raise InvalidParameterValue(f"Invalid {field_name}: a non-empty name is required.")
    value = normalize_name(check_text(value, field_name))
    if value != value.strip():
        raise InvalidParameterValue(
            f"Invalid {field_name} {value!r}: leading or trailing whitespace is not allowed."
        )
    bad = [c for c in value if unicodedata.category(c) in _INVISIBLE_CATEGORIES]
    if bad:
        raise InvalidParameterValue(
            f"Invalid {field_name}: it contains invisible or control characters "
            f"({', '.join(f'U+{ord(c):04X}' for c in bad[:3])})."
        )
    if len(value) > max_length:
        raise InvalidParameterValue(
            f"Invalid {field_name}: it exceeds the maximum length of {max_length} characters "
            f"(got {len(value)})."
        )
    return value


def name_identity(value: str) -> str:
    """The key two names must not share: NFKC folds look-alike compatibility forms
    (fullwidth letters, ligatures) and casefold folds case."""
    return unicodedata.normalize("NFKC", value).casefold()


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Parsing


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidParameterValue(f"Duplicate key '{key}' in the JSON body.")
        result[key] = value
    return result


def _reject_constant(name: str) -> float:
    raise InvalidParameterValue(
        f'Bare {name} is not valid JSON; send doubles such as NaN as the string "{name}".'
    )


def parse_json_bytes(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameterValue("The request body is not valid UTF-8.") from None
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except RecursionError:
        raise InvalidParameterValue("The JSON body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise InvalidParameterValue(f"The request body is not valid JSON: {exc.msg}.") from None
    except ValueError:  # int() refuses a number of more than 4,300 digits (CVE-2020-10735)
        raise InvalidParameterValue(
            "The JSON body has a number of more than 4,300 digits; numbers that long are refused."
        ) from None


def _snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower()


def _normalize_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Accept protobuf's lowerCamel JSON names beside snake_case, but not both for one field."""
    if not any(any(c.isupper() for c in k) for k in data):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        snake = _snake(key)
        if snake in out:
            raise InvalidParameterValue(f"Field '{snake}' was given twice ('{key}').")
        out[snake] = value
    return out


def parse_request_data(request: HttpRequest) -> dict[str, Any]:
    if request.method == "GET":
        return {key: values for key, values in request.GET.lists()}
    raw = request.body  # bounded by DATA_UPLOAD_MAX_MEMORY_SIZE: RequestDataTooBig -> 413
    if not raw.strip():
        if request.GET:
            return {key: values for key, values in request.GET.lists()}
        return {}
    content_type = (request.content_type or "").lower()
    if content_type != "application/json":
        raise InvalidParameterValue(
            "Bad Request. Content-Type must be 'application/json' for a JSON request body."
        )
    data = parse_json_bytes(raw)
    if not isinstance(data, dict):
        raise InvalidParameterValue("The request body must be a JSON object.")
    return _normalize_keys(data)


class MlflowRequest:
    """Typed access to one MLflow request message, from a JSON body or a query string."""

    def __init__(self, request: HttpRequest, data: dict[str, Any], kwargs: dict[str, Any]):
        self.http = request
        self.data = data
        self.kwargs = kwargs
        self._from_query = request.method == "GET"
        # The object the access decision was taken on (`authorize` returns it): handlers use
        # it instead of looking the same object up again.
        self.resolved: Any = None
        # The handler checks, in its own write, that the run named is where the decision
        # took it to be (`run_decided_from_cache`).
        self.run_decided_from_cache = False

    # -- raw access -----------------------------------------------------------------------
    def _raw(self, name: str) -> Any:
        value = self.data.get(name)
        if self._from_query and isinstance(value, list):
            return value[0] if value else None
        return value

    def has(self, name: str) -> bool:
        return self.data.get(name) not in (None, [], "")

    @property
    def username(self) -> str:
        user = getattr(self.http, "user", None)
        if user is not None and user.is_authenticated:
            return user.get_username()
        return ""

    # -- typed getters --------------------------------------------------------------------
    def str(
        self,
        name: builtins.str,
        *,
        required: bool = False,
        default: builtins.str | None = None,
        max_length: int | None = None,
    ) -> str | None:
        value = self._raw(name)
        if value is None or (value == "" and required):
            if required:
                raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
            return default
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float)):
            value = str(value)
        return check_text(value, name, max_length=max_length)

    def int64(
        self, name: builtins.str, *, required: bool = False, default: int | None = None
    ) -> int | None:
        value = self._raw(name)
        if value is None or value == "":
            if required:
                raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
            return default
        return to_int64(value, name)

    def double(self, name: builtins.str, *, required: bool = False) -> float | None:
        value = self._raw(name)
        if value is None:
            if required:
                raise InvalidParameterValue(f"Missing value for required parameter '{name}'.")
            return None
        return to_double(value, name)

    def bool(self, name: builtins.str, *, default: bool = False) -> bool:
        value = self._raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{name}': expected true or false."
        )

    def str_list(self, name: builtins.str, *, max_length: int | None = None) -> list[builtins.str]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            value = [value]
        return [check_text(item, name, max_length=max_length) for item in value]

    def messages(self, name: builtins.str) -> list[dict[builtins.str, Any]]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise InvalidParameterValue(
                f"Invalid value for parameter '{name}': expected a list of objects."
            )
        return value

    def enum(self, name: builtins.str, allowed: dict[builtins.str, Any], *, default: Any) -> Any:
        """Protobuf enums arrive as names ("ACTIVE_ONLY") or numbers; `allowed` maps both."""
        value = self._raw(name)
        if value is None or value == "":
            return default
        key = value if isinstance(value, str) else str(value)
        if isinstance(value, bool) or key not in allowed:
            names = ", ".join(k for k in allowed if not k.isdigit())
            raise InvalidParameterValue(
                f"Invalid value {_short(value)} for parameter '{name}'. Allowed: {names}."
            )
        return allowed[key]

    def run_id(self) -> builtins.str:
        """Run endpoints send both `run_id` and the legacy `run_uuid`; prefer `run_id`."""
        value = self.str("run_id") or self.str("run_uuid")
        if not value:
            raise InvalidParameterValue("Missing value for required parameter 'run_id'.")
        return value


def to_int64(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameterValue(
            f"Invalid value {value!r} for parameter '{name}': expected an integer."
        )
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,20}", value.strip()):
        result = int(value.strip())
    else:
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{name}': expected an integer."
        )
    if not INT64_MIN <= result <= INT64_MAX:
        raise InvalidParameterValue(
            f"Invalid value {_short(value)} for parameter '{name}': out of the int64 range."
        )
    return result


_DOUBLE_STRINGS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_double(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise InvalidParameterValue(
            f"Invalid value {value!r} for parameter '{name}': expected a number."
        )
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value in _DOUBLE_STRINGS:
            return _DOUBLE_STRINGS[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidParameterValue(
        f"Invalid value {_short(value)} for parameter '{name}': expected a number "
        f'(NaN and infinities as the strings "NaN", "Infinity", "-Infinity").'
    )


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_double(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def json_response(payload: dict[str, Any], status: int = 200) -> HttpResponse:
    # orjson: a search page of 270 runs (240 KB) took the json module 3.6 ms to encode.
    # Doubles are already NaN-free here (encode_double), keys are strings.
    body = orjson.dumps(payload)
    return HttpResponse(body, status=status, content_type="application/json")


def error_response(exc: errors.ApplicationError) -> HttpResponse:
    return JsonResponse(errors.mlflow_error_body(exc.error_code, exc.message), status=exc.status)


# ---------------------------------------------------------------------------------------------
# Routing


Handler = Callable[[MlflowRequest], "dict[str, Any] | HttpResponse"]

# MLflow serves every RPC under /api/ for clients and under /ajax-api/ for its web UI.
MLFLOW_PREFIXES = ("api/2.0/mlflow/", "ajax-api/2.0/mlflow/")


@dataclass
class Route:
    path: str
    methods: dict[str, tuple[Handler, str]] = field(default_factory=dict)
    prefixes: tuple[str, ...] = MLFLOW_PREFIXES
    # method -> the compiled request schema (core.mlflow_schema), None for Custody's own
    # routes that MLflow does not define. Filled once when the URLs are built.
    schemas: dict[str, Any] = field(default_factory=dict)


ROUTES: dict[tuple[tuple[str, ...], str], Route] = {}


def mlflow_route(
    path: str,
    methods: str | list[str],
    *,
    access: str,
    prefixes: tuple[str, ...] = MLFLOW_PREFIXES,
):
    """Register `handler` for `methods` on `path` (a Django path pattern) under each prefix
    (by default both MLflow's client prefix and its UI's `ajax-api` one).

    `access` names the rule `core.access.authorize` applies before the handler runs; the
    request message is checked against MLflow's schema of the endpoint before that."""
    if isinstance(methods, str):
        methods = [methods]

    def decorator(handler: Handler) -> Handler:
        route = ROUTES.setdefault((prefixes, path), Route(path=path, prefixes=prefixes))
        for method in methods:
            if method in route.methods:
                raise RuntimeError(f"Duplicate MLflow route {method} {path}")
            route.methods[method] = (handler, access)
        return handler

    return decorator


def _dispatch(route: Route):
    @csrf_exempt
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        from core.access import authorize, require_authenticated

        entry = route.methods.get(request.method or "")
        if entry is None:
            allowed = ", ".join(sorted(route.methods))
            response = error_response(
                errors.ApplicationError(
                    f"Method {request.method} is not allowed on this endpoint; use {allowed}.",
                    error_code="ENDPOINT_NOT_FOUND",
                    http_status=405,
                )
            )
            response["Allow"] = allowed
            return response
        handler, access = entry
        try:
            if access != "public":
                # Authenticate before reading a body; authorize once the message is parsed,
                # since the object a request touches is named inside it.
                require_authenticated(request)
            if getattr(handler, "raw_body", False):
                data = request.GET.dict()  # the body is the handler's; identifiers are here
            else:
                data = parse_request_data(request)
                schema = route.schemas.get(request.method or "")
                if schema is not None:
                    # A query string carries the message on GET, and on other verbs sent
                    # without a body (parse_request_data then reads the query).
                    from_query = request.method == "GET" or not request.body.strip()
                    schema.check(data, kwargs, from_query)
            if getattr(handler, "fresh_caches", False):
                from core import process_cache

                process_cache.refresh_for_serving(request.META.get("HTTP_CACHE_CONTROL"))
            message = MlflowRequest(request, data, kwargs)
            message.run_decided_from_cache = getattr(handler, "run_decided_from_cache", False)
            if (validate := getattr(handler, "validate_first", None)) is not None:
                validate(message)
            message.resolved = authorize(request, access, message)
            result = handler(message)
        except Exception as exc:  # noqa: BLE001 - the single mapping point for the MLflow API
            app_error = errors.translate(exc)
            if app_error is None:
                logger.exception("Unhandled error in %s %s", request.method, request.path)
                app_error = errors.ApplicationError(
                    "Internal error; the request id in X-Request-ID identifies it in the logs.",
                    error_code="INTERNAL_ERROR",
                )
            return error_response(app_error)
        if isinstance(result, HttpResponseBase):
            return result
        return json_response(result)

    view.mlflow_route = route  # type: ignore[attr-defined]
    return view


def fresh_caches(handler: Handler) -> Handler:
    """Mark a read served from the per-process caches with no staleness at all: the request
    reads the cache versions first (one small query), so it answers as of its own start,
    never from before a change that had committed (core.process_cache). A client that sends
    `Cache-Control: max-stale` accepts an answer up to the poll interval old instead."""
    handler.fresh_caches = True  # type: ignore[attr-defined]
    return handler


def run_decided_from_cache(handler: Handler) -> Handler:
    """Mark a handler of one run whose access decision may take the run's experiment from the
    process's cache instead of reading the run (a run never changes experiment): the access
    layer then resolves a `tracking.permissions.DecidedRun`, and the handler's statement must
    itself check that the run is still in that experiment (and, for a write, active), and
    decide again from the stored run when it is not."""
    handler.run_decided_from_cache = True  # type: ignore[attr-defined]
    return handler


def raw_body(handler: Handler) -> Handler:
    """Mark a handler that reads the request stream itself (artifact uploads)."""
    handler.raw_body = True  # type: ignore[attr-defined]
    return handler


def validate_first(check: Callable[[MlflowRequest], Any]) -> Callable[[Handler], Handler]:
    """Run `check` on the message before the access decision, where MLflow validates the
    request's shape before looking up what it names (a missing required field is a 400
    even when a named run does not exist). `check` sees only the request, never the store.
    It also answers for URLs over the length limit (core.middleware), so that an overlong
    list is refused with the route's own limit rather than a 414."""

    def decorator(handler: Handler) -> Handler:
        handler.validate_first = check  # type: ignore[attr-defined]
        return handler

    return decorator


MAX_CHECKED_QUERY_BYTES = 1_000_000


def check_overlong_query(request: HttpRequest) -> errors.ApplicationError | None:
    """The route's own refusal of a request whose URL is over the length limit, if its
    `validate_first` check refuses the query; None when the route has no such check or the
    check passes (the caller then answers 414)."""
    from urllib.parse import parse_qsl

    from django.urls import Resolver404, resolve

    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    route = getattr(match.func, "mlflow_route", None)
    entry = route.methods.get(request.method or "") if route is not None else None
    check = getattr(entry[0], "validate_first", None) if entry is not None else None
    if check is None:
        return None
    data: dict[str, list[str]] = {}
    query = request.META.get("QUERY_STRING", "")
    if len(query) > MAX_CHECKED_QUERY_BYTES:
        return None  # too long to be worth parsing: the plain 414
    for key, value in parse_qsl(query, keep_blank_values=True, max_num_fields=None):
        data.setdefault(key, []).append(value)
    try:
        check(MlflowRequest(request, data, match.kwargs))
    except errors.ApplicationError as exc:
        return exc
    return None


def urlpatterns() -> list:
    from core.mlflow_schema import mlflow_path, schema_for

    # One include per prefix: the resolver matches the prefix once, then tries only that
    # prefix's routes (a flat list made a late route try some 70 patterns per request).
    by_prefix: dict[str, list] = {}
    for (prefixes, route_path), route in ROUTES.items():
        mlflow_spelling = mlflow_path(prefixes[0], route_path)
        route.schemas = {method: schema_for(method, mlflow_spelling) for method in route.methods}
        view = _dispatch(route)
        for prefix in prefixes:
            by_prefix.setdefault(prefix, []).append(url_path(route_path, view))
    return [
        ExactRoutesFirst(RoutePattern(prefix), patterns) for prefix, patterns in by_prefix.items()
    ]


class ExactRoutesFirst(URLResolver):
    """An include of one prefix's routes that finds a route without converters by a dict
    look-up of the rest of the path, where Django would try the routes one by one (some
    70 regular expressions before a late one); routes with converters, and paths that match
    nothing (404 with what was tried), go Django's way. A route is looked up directly only
    if no route before it matches its path, so the answer is always the one Django's walk
    gives (tests/core/test_route_inventory.py compares them)."""

    def __init__(self, pattern: RoutePattern, patterns: list[URLPattern]):
        super().__init__(pattern, patterns)
        self._exact: dict[str, URLPattern] = {}
        for index, candidate in enumerate(patterns):
            route = candidate.pattern
            if not isinstance(route, RoutePattern) or route.converters:
                continue
            text = str(route)
            if text not in self._exact and not any(
                earlier.resolve(text) for earlier in patterns[:index]
            ):
                self._exact[text] = candidate

    def resolve(self, path: Any) -> ResolverMatch:
        match = self.pattern.match(str(path))
        route = self._exact.get(match[0]) if match is not None and not any(match[1:]) else None
        found = route.resolve(match[0]) if route is not None and match is not None else None
        if found is not None:
            return ResolverMatch(
                found.func,
                found.args,
                {**self.default_kwargs, **found.kwargs},
                found.url_name,
                [self.app_name, *found.app_names],
                [self.namespace, *found.namespaces],
                found.route,
                [[route]],
                # Not in django-stubs yet (Django 5.1+).
                captured_kwargs=found.captured_kwargs,  # type: ignore[attr-defined]
                extra_kwargs={**self.default_kwargs, **found.extra_kwargs},  # type: ignore[attr-defined]
            )
        return super().resolve(path)


def max_json_bytes() -> int:
    return settings.CUSTODY_MAX_JSON_BYTES

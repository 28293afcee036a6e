"""MLflow protocol fidelity: every MLflow endpoint Custody serves is walked with wrong types,
missing required fields and boundary values generated from the one schema
(core.mlflow_schema), and the answers are compared with MLflow's.

The expectations are MLflow 3.17.2's behaviour as observed on a real `mlflow server`
(bench/servers.py's bench/.mlflow-venv, SQLite backend, `--serve-artifacts`): status,
error_code and message. Where Custody deliberately answers differently (it refuses what
MLflow silently accepts or turns into a 500), the case says so and docs/mlflow-compatibility.md
lists the difference with its reason."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import get_resolver

from core import mlflow_api
from core.mlflow_schema import INT_RANGES, SEE_DOCS, endpoint_messages, mlflow_path
from tests.core.test_route_inventory import walk

pytestmark = pytest.mark.django_db

HINT = "  Hint: Value was of type '{}'." + SEE_DOCS


def invalid(value, field: str, type_name: str) -> str:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"Invalid value {shown} for parameter '{field}' supplied:" + HINT.format(type_name)


NAN_NOTE = ' NaN and infinities are sent as "NaN", "Infinity" and "-Infinity".'


def missing(field: str) -> str:
    return f"Missing value for required parameter '{field}'.{SEE_DOCS}"


@pytest.fixture
def run_id(api) -> str:
    return api.run(api.experiment())["info"]["run_id"]


def _send(api, method: str, path: str, payload: dict | None, prefix: str = "/api/2.0/mlflow/"):
    client, url = api.client, prefix + path
    if method == "GET":
        return client.get(url, payload or {})
    return client.generic(method, url, json.dumps(payload or {}), content_type="application/json")


# ---------------------------------------------------------------------------------------------
# MLflow's observed answers, one request each. `{run}` is a run of the caller's.
# (method, path, body or query, status, error_code, message or None when 200)

OBSERVED = [
    ("POST", "experiments/create", {"name": 123}, 400, invalid(123, "name", "int")),
    ("POST", "experiments/create", {}, 400, missing("name")),
    ("POST", "experiments/create", {"name": None}, 400, missing("name")),
    ("POST", "experiments/create", {"name": ["a"]}, 400, invalid(["a"], "name", "list")),
    ("POST", "experiments/create", {"name": "x", "tags": "a"}, 400, invalid("a", "tags", "str")),
    (
        "POST",
        "runs/log-metric",
        {"run_id": 31, "key": "k", "value": 1, "timestamp": 1},
        400,
        invalid(31, "run_id", "int"),
    ),
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": "foo", "timestamp": 1},
        400,
        None,
    ),  # MLflow: invalid("foo", "value", "str"); Custody adds the NaN spelling
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1},
        400,
        missing("timestamp"),
    ),
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1, "timestamp": "x"},
        400,
        invalid("x", "timestamp", "str"),
    ),
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1, "timestamp": "12"},
        200,
        None,
    ),
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1, "timestamp": 1, "step": "a"},
        400,
        invalid("a", "step", "str"),
    ),
    ("POST", "runs/log-metric", {"key": "k", "value": 1, "timestamp": 1}, 400, missing("run_id")),
    (
        "POST",
        "runs/log-metric",
        {"run_uuid": "{run}", "key": "k", "value": 1, "timestamp": 1},
        200,
        None,
    ),
    (
        "POST",
        "runs/log-parameter",
        {"run_id": 31, "key": "k", "value": "v"},
        400,
        invalid(31, "run_id", "int"),
    ),
    (
        "POST",
        "runs/log-parameter",
        {"run_id": "{run}", "key": "k", "value": 5},
        400,
        invalid(5, "value", "int"),
    ),
    (
        "POST",
        "runs/set-tag",
        {"run_id": 31, "key": "k", "value": "v"},
        400,
        invalid(31, "run_id", "int"),
    ),
    (
        "POST",
        "runs/set-tag",
        {"run_id": "{run}", "key": 1, "value": "v"},
        400,
        invalid(1, "key", "int"),
    ),
    ("POST", "runs/set-tag", {"run_id": "{run}", "key": "k", "value": ""}, 200, None),
    (
        "POST",
        "runs/log-batch",
        {"run_id": "{run}", "metrics": "foo"},
        400,
        invalid("foo", "metrics", "str"),
    ),
    (
        "POST",
        "runs/log-batch",
        {"run_id": "{run}", "metrics": [{"key": "k", "value": 1}]},
        400,
        missing("metrics[0].timestamp"),
    ),
    (
        "POST",
        "runs/log-batch",
        {"run_id": "{run}", "params": [{"value": "3"}]},
        400,
        missing("params[0].key"),
    ),
    ("POST", "runs/search", {"experiment_ids": "1"}, 400, invalid("1", "experiment_ids", "str")),
    (
        "POST",
        "runs/search",
        {"experiment_ids": ["1"], "max_results": "a"},
        400,
        invalid("a", "max_results", "str"),
    ),
    (
        "POST",
        "runs/search",
        {"experiment_ids": ["1"], "order_by": "x"},
        400,
        invalid("x", "order_by", "str"),
    ),
    ("POST", "runs/search", {"experiment_ids": [], "unknown_field": 1}, 200, None),
    (
        "POST",
        "experiments/search",
        {"max_results": 0},
        400,
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
    ),
    ("POST", "experiments/search", {"max_results": "x"}, 400, invalid("x", "max_results", "str")),
    (
        "POST",
        "experiments/search",
        {"max_results": 50001},
        400,
        "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000",
    ),
    (
        "POST",
        "runs/update",
        {"run_id": "{run}", "end_time": "x"},
        400,
        invalid("x", "end_time", "str"),
    ),
    ("GET", "runs/get", {}, 400, missing("run_id")),
    ("GET", "experiments/get", {}, 400, missing("experiment_id")),
    (
        "GET",
        "metrics/get-history",
        {"run_id": "{run}", "metric_key": "k", "max_results": "0"},
        400,
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer.",
    ),
    ("GET", "metrics/get-history", {"run_id": "{run}"}, 400, missing("metric_key")),
    (
        "GET",
        "metrics/get-history-bulk-interval",
        {"run_ids": "{run}", "metric_key": "k", "max_results": "x"},
        400,
        invalid("x", "max_results", "str"),
    ),
    (
        "GET",
        "registered-models/search",
        {"max_results": "x"},
        400,
        invalid("x", "max_results", "str"),
    ),
    ("POST", "registered-models/create", {"name": 5}, 400, invalid(5, "name", "int")),
    ("POST", "registered-models/create", {}, 400, missing("name")),
    ("POST", "model-versions/create", {"name": "m", "source": 5}, 400, invalid(5, "source", "int")),
    (
        "POST",
        "model-versions/transition-stage",
        {"name": "m", "version": "1", "stage": "Staging", "archive_existing_versions": "yes"},
        400,
        invalid("yes", "archive_existing_versions", "str"),
    ),
    (
        "POST",
        "model-versions/transition-stage",
        {"name": "m", "version": 1, "stage": "Staging", "archive_existing_versions": False},
        400,
        invalid(1, "version", "int"),
    ),
    ("GET", "registered-models/alias", {"name": "m"}, 400, missing("alias")),
    (
        "POST",
        "logged-models/search",
        {"experiment_ids": ["1"], "max_results": "x"},
        400,
        invalid("x", "max_results", "str"),
    ),
    ("POST", "logged-models", {"experiment_id": 5}, 400, invalid(5, "experiment_id", "int")),
]


@pytest.mark.parametrize(
    "method,path,payload,status,message",
    OBSERVED,
    ids=[f"{c[0]} {c[1]} {json.dumps(c[2])[:60]}" for c in OBSERVED],
)
def test_answers_as_mlflow_does(api, run_id, method, path, payload, status, message):
    payload = json.loads(json.dumps(payload).replace("{run}", run_id))
    response = _send(api, method, path, payload)
    assert response.status_code == status, response.content
    if status == 200:
        return
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    if message is not None:
        assert body["message"] == message


def test_a_non_numeric_metric_value_keeps_mlflow_wording_and_adds_the_nan_spelling(api, run_id):
    body = {"run_id": run_id, "key": "k", "value": "foo", "timestamp": 1}
    message = api.post("runs/log-metric", body).json()["message"]
    assert message.startswith(invalid("foo", "value", "str"))
    assert message == invalid("foo", "value", "str") + NAN_NOTE


# ---------------------------------------------------------------------------------------------
# Stricter than MLflow on purpose (docs/mlflow-compatibility.md, "Request validation").

STRICTER = [
    # MLflow answers 200 and logs value 0 / drops the field; Custody refuses the wrong type.
    (
        "POST",
        "runs/log-batch",
        {"run_id": "{run}", "metrics": [{"key": "k", "value": "foo", "timestamp": 1}]},
        invalid("foo", "metrics[0].value", "str") + NAN_NOTE,
    ),
    # MLflow answers 500 (an HTML page).
    (
        "POST",
        "runs/log-batch",
        {"run_id": "{run}", "metrics": ["foo"]},
        invalid("foo", "metrics[0]", "str"),
    ),
    # MLflow silently uses ACTIVE_ONLY / keeps the status.
    (
        "POST",
        "runs/search",
        {"experiment_ids": [], "run_view_type": "NOPE"},
        invalid("NOPE", "run_view_type", "str") + " Allowed: ACTIVE_ONLY, DELETED_ONLY, ALL.",
    ),
    ("POST", "runs/update", {"run_id": "{run}", "status": "NOPE"}, None),
    # MLflow accepts a non-integral timestamp and an int64 overflow.
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1, "timestamp": 1.5},
        invalid(1.5, "timestamp", "float"),
    ),
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": 1, "timestamp": 2**63},
        invalid(2**63, "timestamp", "int") + " It is outside the int64 range.",
    ),
    # MLflow reads `true` as 1.0.
    (
        "POST",
        "runs/log-metric",
        {"run_id": "{run}", "key": "k", "value": True, "timestamp": 1},
        invalid(True, "value", "bool"),
    ),
    # MLflow ignores a non-numeric max_results on get-history.
    (
        "GET",
        "metrics/get-history",
        {"run_id": "{run}", "metric_key": "k", "max_results": "x"},
        invalid("x", "max_results", "str"),
    ),
    # MLflow: 500 (int("x") in its handler).
    (
        "GET",
        "metrics/get-history-bulk",
        {"run_id": "{run}", "metric_key": "k", "max_results": "x"},
        invalid("x", "max_results", "str"),
    ),
]


@pytest.mark.parametrize(
    "method,path,payload,message",
    STRICTER,
    ids=[f"{c[0]} {c[1]} {json.dumps(c[2])[:60]}" for c in STRICTER],
)
def test_refuses_what_mlflow_lets_through(api, run_id, method, path, payload, message):
    payload = json.loads(json.dumps(payload).replace("{run}", run_id))
    response = _send(api, method, path, payload)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    if message is not None:
        assert body["message"] == message


# ---------------------------------------------------------------------------------------------
# The walk: every endpoint, generated from the schema.


def _valid(kind: str, repeated: bool, ref, from_query: bool):
    from core import mlflow_schema_data

    if repeated:
        return [{}] if kind == "message" else ["x"]
    if kind == "enum":
        return next(iter(mlflow_schema_data.ENUMS[ref]))
    if kind == "bool":
        return "true" if from_query else True
    if kind in INT_RANGES or kind in ("double", "float"):
        return "1" if from_query else 1
    if kind == "message":
        return {}
    return "x"


def _wrong(kind: str, repeated: bool, from_query: bool):
    """A value of the wrong type and MLflow's message for it, or None when the transport
    cannot carry a wrong type (every query value is a string)."""
    if from_query:
        if repeated or kind in ("string", "bytes"):
            return None
        if kind == "bool":
            return "maybe", "Invalid boolean value: maybe, must be 'true' or 'false'."
        return "not-a-number", "str"
    if repeated:
        return "a", "str"
    if kind in ("string", "bytes"):
        return 123, "int"
    if kind == "bool":
        return "yes", "str"
    if kind == "message":
        return "a", "str"
    return "not-a-number", "str"


def _cases():
    get_resolver().url_patterns  # noqa: B018
    cases = []
    for (prefixes, route_path), route in mlflow_api.ROUTES.items():
        for method, schema in route.schemas.items():
            if schema is None or getattr(route.methods[method][0], "raw_body", False):
                continue
            url = re.sub(
                r"<path:\w+>", "1/0123456789abcdef0123456789abcdef/artifacts/f", route_path
            )
            url = "/" + prefixes[0] + re.sub(r"<str:\w+>", "m-x", url)
            from_query = method == "GET"
            names = {n: k for n, k in schema.kinds.items() if n.islower() or "_" in n}
            base = {
                name: _valid(kind, repeated, ref, from_query)
                for name, (kind, repeated, _, ref) in names.items()
                if name in schema.required and name not in re.findall(r"<str:(\w+)>", route_path)
            }
            label = f"{method} {route_path}"
            for name, (kind, repeated, _, _ref) in names.items():
                wrong = _wrong(kind, repeated, from_query)
                if wrong is not None and kind not in ("json", "map"):
                    value, hint = wrong
                    expected = hint if " " in hint else invalid(value, name, hint)
                    cases.append(
                        (f"{label} wrong {name}", method, url, {**base, name: value}, expected)
                    )
            for name in schema.required:
                if name in base:
                    body = {k: v for k, v in base.items() if k != name}
                    cases.append((f"{label} missing {name}", method, url, body, missing(name)))
            for name, (kind, repeated, _, _ref) in names.items():
                if kind == "int64" and not repeated and not from_query:
                    body = {**base, name: 2**63}
                    cases.append(
                        (
                            f"{label} int64 overflow {name}",
                            method,
                            url,
                            body,
                            invalid(2**63, name, "int") + " It is outside the int64 range.",
                        )
                    )
    return cases


@pytest.fixture(scope="module")
def cases():
    return _cases()


def _generator():
    """scripts/generate_mlflow_schema.py, loaded as a module."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "generate_mlflow_schema.py"
    spec = importlib.util.spec_from_file_location("generate_mlflow_schema", script)
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    return generator


def test_the_walk_covers_every_endpoint_mlflow_defines(cases):
    """Every Custody route MLflow defines has a schema and generated cases; the rest are
    Custody's own (no MLflow message to check against) and named here."""
    get_resolver().url_patterns  # noqa: B018
    custody_only = {
        "server-info",  # /api/3.0, a plain JSON route in MLflow too
        "transition-requests/create",
        "transition-requests/list",
        "transition-requests/approve",
        "transition-requests/reject",
        "transition-requests/delete",
        "comments/create",
        "comments/update",
        "comments/delete",
        # MLflow's UI routes outside its protos (raw bodies and query strings), tested in
        # tests/tracking/test_mlflow_client_logged_models.py.
        "upload-artifact",
        "logged-models/<str:model_id>/artifacts/files",
    }
    known_paths = {key.split(" ", 1)[1] for key in endpoint_messages()}
    without = set()
    for (prefixes, path), route in mlflow_api.ROUTES.items():
        spelled = mlflow_path(prefixes[0], path)
        for method, schema in route.schemas.items():
            if spelled in known_paths:
                assert schema is not None, (method, path)
            elif schema is None and prefixes[0].startswith("api/2.0/"):
                without.add(path)
    # The GenAI families (traces, ...) are outside the schema on purpose (the generator's
    # _SKIPPED_PATH_PARTS): Custody answers them NOT_IMPLEMENTED without reading the message.
    skipped = _generator()._SKIPPED_PATH_PARTS
    genai = {p for p in without if any(part in "/" + p for part in skipped)}
    # Every route of a family Custody does not serve answers NOT_IMPLEMENTED unread
    # (core/mlflow_unsupported.py).
    genai |= {
        path
        for (_, path), route in mlflow_api.ROUTES.items()
        if any(
            getattr(handler, "unsupported_family", None) for handler, _ in route.methods.values()
        )
    }
    assert without - genai <= custody_only, without - genai - custody_only
    covered = {label.rsplit(" ", 2)[0] for label, *_ in cases}
    for (_, path), route in mlflow_api.ROUTES.items():
        for method, schema in route.schemas.items():
            if schema is None:
                continue
            path_fields = set(re.findall(r"<str:(\w+)>", path))
            checkable = (
                any(
                    _wrong(kind, repeated, method == "GET") is not None
                    for name, (kind, repeated, _, _ref) in schema.kinds.items()
                    if name not in path_fields and kind not in ("json", "map")
                )
                or set(schema.required) - path_fields
            )
            if checkable:
                assert f"{method} {path}" in covered, (method, path)
    assert len(cases) > 150


def test_every_endpoint_refuses_wrong_types_missing_fields_and_out_of_range_values(api, cases):
    failures = []
    for label, method, url, payload, expected in cases:
        if method == "GET":
            response = api.client.get(url, payload)
        else:
            response = api.client.generic(
                method, url, json.dumps(payload), content_type="application/json"
            )
        body = response.json() if response["Content-Type"] == "application/json" else {}
        if response.status_code != 400 or body.get("error_code") != "INVALID_PARAMETER_VALUE":
            failures.append((label, response.status_code, response.content[:200]))
        elif body["message"] != expected and not body["message"].startswith(expected):
            failures.append((label, body["message"], expected))
    assert not failures, f"{len(failures)} cases differ, e.g. {failures[:10]}"


# (method, path, field, value, expected message or None for 200); `{run}` is a real run.
BOUNDARIES = [
    ("POST", "runs/search", 50000, None),
    (
        "POST",
        "runs/search",
        50001,
        invalid(50001, "max_results", "int") + " At most 50000 results may be requested.",
    ),
    ("GET", "registered-models/search", 1000, None),
    (
        "GET",
        "registered-models/search",
        1001,
        invalid("1001", "max_results", "str") + " At most 1000 results may be requested.",
    ),
    ("GET", "model-versions/search", 200000, None),
    (
        "GET",
        "model-versions/search",
        200001,
        invalid("200001", "max_results", "str") + " At most 200000 results may be requested.",
    ),
    ("POST", "experiments/search", 50000, None),
    (
        "POST",
        "experiments/search",
        0,
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
    ),
    (
        "POST",
        "experiments/search",
        50001,
        "Invalid value 50001 for parameter 'max_results' supplied. It must be at most 50000",
    ),
    ("GET", "metrics/get-history", 1, None),
    (
        "GET",
        "metrics/get-history",
        0,
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer.",
    ),
    ("GET", "metrics/get-history-bulk-interval", 2500, None),
    ("GET", "metrics/get-history-bulk-interval", 2501, "max_results must be between 1 and 2500."),
    ("GET", "metrics/get-history-bulk-interval", 0, "max_results must be between 1 and 2500."),
    ("GET", "metrics/get-history-bulk", 25001, None),  # MLflow caps at 25000
    (
        "GET",
        "metrics/get-history-bulk",
        0,
        "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer.",
    ),
]
_BASES = {
    "runs/search": {"experiment_ids": []},
    "metrics/get-history": {"run_id": "{run}", "metric_key": "k"},
    "metrics/get-history-bulk-interval": {"run_ids": "{run}", "metric_key": "k"},
    "metrics/get-history-bulk": {"run_id": "{run}", "metric_key": "k"},
}


@pytest.mark.parametrize(
    "method,path,value,message", BOUNDARIES, ids=[f"{c[1]}={c[2]}" for c in BOUNDARIES]
)
def test_max_results_boundaries(api, run_id, method, path, value, message):
    payload = {**_BASES.get(path, {}), "max_results": str(value) if method == "GET" else value}
    payload = json.loads(json.dumps(payload).replace("{run}", run_id))
    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"):
        response = _send(api, method, path, payload, prefix=prefix)
        if message is None:
            assert response.status_code == 200, response.content
        else:
            assert response.status_code == 400, response.content
            body = response.json()
            assert body.pop("request_id") == response["X-Request-ID"]
            assert body == {"error_code": "INVALID_PARAMETER_VALUE", "message": message}


def test_every_mlflow_route_is_served_under_api_and_ajax_api():
    """MLflow serves each RPC under /api/ (clients) and /ajax-api/ (its UI), same view."""
    views = {route: callback for route, callback in walk(get_resolver().url_patterns)}
    mlflow_routes = [r for r in views if re.match(r"api/\d\.0/mlflow", r)]
    assert len(mlflow_routes) > 60
    for route in mlflow_routes:
        twin = "ajax-" + route
        assert twin in views, route
        assert views[twin] is views[route], route


def test_the_schema_data_is_what_the_pinned_mlflow_describes():
    """core/mlflow_schema_data.py is generated from the installed mlflow's descriptors; after
    an upgrade of the pin, scripts/generate_mlflow_schema.py must be run again."""
    import mlflow

    from core import mlflow_schema_data

    generator = _generator()
    endpoints, messages, enums = generator.build()
    assert mlflow_schema_data.MLFLOW_VERSION == mlflow.__version__
    assert mlflow_schema_data.ENDPOINTS == endpoints
    assert mlflow_schema_data.MESSAGES == messages
    assert mlflow_schema_data.ENUMS == enums

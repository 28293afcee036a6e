"""MLflow feature families Custody does not serve, answered honestly.

MLflow 3 grew GenAI families (tracing, assessments, the AI gateway, evaluation datasets,
scorers, labeling, prompt optimization, ...) beside tracking and the registry. Custody serves
none of them, by decision (docs/mlflow-compatibility.md). Without routes, their calls would
get a bare `ENDPOINT_NOT_FOUND`, which the client reads as "older server" (its tracing then
retries the v2 API and drops the trace with a vague warning). Every route of every family
answers instead, under every prefix MLflow serves it on, with 501 `NOT_IMPLEMENTED` and a
message naming the family.

The routes still require authentication (401 like every other protected route): the answer
carries nothing sensitive, but an anonymous caller learns nothing about the server either,
and the route inventory stays uniform. The paths were taken from the routes MLflow 3.17.2's
server registers (`mlflow.server.handlers.get_endpoints`, the Flask app and the FastAPI
routers); a `<path:rest>` tail covers each family's sub-routes."""

from __future__ import annotations

from dataclasses import dataclass

from core import access
from core.errors import NotImplementedOnServer
from core.mlflow_api import MlflowRequest, mlflow_route, raw_body

V2 = ("api/2.0/mlflow/", "ajax-api/2.0/mlflow/")
V3 = ("api/3.0/mlflow/", "ajax-api/3.0/mlflow/")
ALL_VERSIONS = V2 + V3
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Family:
    name: str
    what: str
    # (Django path pattern, prefixes) pairs; a pattern may end in <path:rest>.
    routes: tuple[tuple[str, tuple[str, ...]], ...]
    hint: str = ""

    def message(self) -> str:
        text = (
            f"Custody does not serve MLflow {self.what} (feature family '{self.name}'); "
            "see docs/mlflow-compatibility.md, 'Feature families Custody does not serve'."
        )
        return f"{text} {self.hint}" if self.hint else text


def _family_routes(*paths: str, prefixes: tuple[str, ...] = ALL_VERSIONS):
    return tuple((path, prefixes) for path in paths)


_NO_TRACING = "Turn trace export off in the client with mlflow.tracing.disable()."

# Order matters where patterns overlap: assessments live under traces/<id>/.
FAMILIES: tuple[Family, ...] = (
    Family(
        "assessments",
        "trace assessments (feedback and expectations)",
        _family_routes(
            "traces/<str:trace_id>/assessments",
            "traces/<str:trace_id>/assessments/<path:rest>",
        ),
    ),
    Family(
        "tracing",
        "tracing (traces and spans, the v2 and v3 trace APIs and OTLP span export; "
        "REST OTLP span logging is not supported)",
        _family_routes(
            "traces",
            "traces/<path:rest>",
            "unified-traces",
            "get-online-trace-details",
            "get-trace-artifact",
        )
        + _family_routes("v1/traces", prefixes=("",)),
        hint=_NO_TRACING,
    ),
    Family(
        "gateway",
        "AI gateway (secrets, endpoints, model definitions, budgets, guardrails and the "
        "gateway proxy)",
        _family_routes("gateway/<path:rest>", "gateway-proxy")
        + _family_routes("gateway/<path:rest>", prefixes=("",)),
    ),
    Family(
        "genai-datasets",
        "GenAI evaluation datasets",
        _family_routes("datasets", "datasets/<path:rest>"),
    ),
    Family(
        "genai-evaluation",
        "GenAI evaluation jobs and scorers",
        _family_routes("scorers", "scorers/<path:rest>", "scorer/<path:rest>", "genai/<path:rest>"),
    ),
    Family(
        "labeling",
        "labeling and issue detection (label schemas, review queues, issues)",
        _family_routes(
            "label-schemas/<path:rest>", "review-queues/<path:rest>", "issues", "issues/<path:rest>"
        ),
    ),
    Family(
        "prompt-lab",
        "prompt lab and prompt optimization",
        _family_routes("prompt-optimization/<path:rest>")
        + _family_routes("runs/create-promptlab-run", prefixes=V2),
    ),
    Family("graphql", "GraphQL", _family_routes("graphql", prefixes=("",))),
    Family(
        "workspaces",
        "workspaces (server-info reports workspaces_enabled=false)",
        _family_routes("workspaces", "workspaces/<path:rest>"),
    ),
    Family(
        "server-jobs",
        "server-side jobs, demos, the assistant, MCP servers and UI telemetry",
        _family_routes(
            "jobs/<path:rest>",
            "demo/<path:rest>",
            "assistant/<path:rest>",
            "mcp-servers",
            "mcp-servers/<path:rest>",
            "ui-telemetry",
        )
        + _family_routes("jobs/<path:rest>", prefixes=("ajax-api/3.0/",)),
    ),
)


def _refuse(family: Family):
    @raw_body  # the body is never read: OTLP sends protobuf, others whatever they like
    def handler(req: MlflowRequest) -> dict:
        raise NotImplementedOnServer(family.message())

    handler.__name__ = f"unsupported_{family.name.replace('-', '_')}"
    handler.unsupported_family = family.name  # type: ignore[attr-defined]
    return handler


def route_paths() -> list[tuple[str, str]]:
    """(URL pattern with prefix, family name) for every route registered here."""
    return [
        (prefix + path, family.name)
        for family in FAMILIES
        for path, prefixes in family.routes
        for prefix in prefixes
    ]


for _family in FAMILIES:
    _handler = _refuse(_family)
    for _path, _prefixes in _family.routes:
        mlflow_route(_path, METHODS, access=access.AUTHENTICATED, prefixes=_prefixes)(_handler)

"""Every spelling of a forbidden object's identifier is refused on every route, and every
spelling of a readable one gets the same answer as its canonical spelling (or a 400 where
the spelling is refused at input).

The routes come from the URL table: each route that can name a registered model, an
experiment, a run, a logged model or an artifact is attacked with every variant (Unicode
normalisation and compatibility forms, case, each kind of Unicode space around the name,
zero-width characters, percent- and double-encoding, `models:/` URIs with spaces around
each part, and the id equivalents: signs, padding, non-ASCII digits, newlines). A route the
test does not know how to call fails `test_every_route_is_covered`, so a new route cannot
escape it. After the attack, nothing about the forbidden objects has changed and the audit
trail holds no successful act by the attacker.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.urls import get_resolver

from accounts import services as accounts
from audit.models import AuditEvent
from core.mlflow_unsupported import route_paths
from governance.models import TransitionRequest
from registry import permissions as model_permissions
from registry import services as registry
from registry.models import RegisteredModel
from tests.conftest import set_open_policy
from tests.core.test_route_inventory import walk
from tracking import permissions as experiment_permissions
from tracking import services as tracking
from tracking.models import Experiment, Run

pytestmark = [pytest.mark.django_db, pytest.mark.access]

MODEL = "modèle"  # NFC
EXPERIMENT = "expérience"
SPACES = [" ", "\t", "\n", "\u00a0", "\u1680", "\u2003", "\u2009", "\u202f", "\u3000"]
INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u2060", "\u00ad"]


@dataclass(frozen=True)
class Variant:
    text: str
    kind: str  # "same": names the same object; "refused": invalid input; "other": another name


def name_variants(name: str) -> list[Variant]:
    import unicodedata

    nfd = unicodedata.normalize("NFD", name)
    variants = [
        Variant(nfd, "same"),
        Variant(name.upper(), "same"),
        Variant(name[0].upper() + name[1:], "same"),
        Variant("\uff4d" + name[1:] if name.startswith("m") else "\uff45" + name[1:], "same"),
        Variant(unicodedata.normalize("NFKD", name), "same"),
        Variant(quote(name), "other"),  # a literal "%C3%A8" in a body is another name
        Variant(quote(quote(name)), "other"),
    ]
    for space in SPACES:
        variants += [
            Variant(space + name, "refused"),
            Variant(name + space, "refused"),
            Variant(space + name + space, "refused"),
        ]
    for mark in INVISIBLE:
        variants += [
            Variant(name[:3] + mark + name[3:], "refused"),
            Variant(mark + name, "refused"),
            Variant(name + mark, "refused"),
        ]
    return variants


def id_variants(value: str) -> list[Variant]:
    digits = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    wide = str.maketrans("0123456789", "０１２３４５６７８９")
    variants = [
        Variant("+" + value, "refused"),
        Variant("0" + value, "refused"),
        Variant(value.translate(digits), "refused"),
        Variant(value.translate(wide), "refused"),
        Variant(value + "\n", "refused"),
        Variant(value + ".0", "refused"),
    ]
    for space in (" ", "\t", "\u00a0", "\u2003"):
        variants += [Variant(space + value, "refused"), Variant(value + space, "refused")]
    variants += [Variant(value[:1] + mark + value[1:], "refused") for mark in INVISIBLE[:3]]
    return variants


def run_id_variants(run_id: str) -> list[Variant]:
    variants = [Variant(run_id.upper(), "same"), Variant(run_id + "\n", "refused")]
    for space in (" ", "\t", "\u00a0", "\u2003"):
        variants += [Variant(space + run_id, "refused"), Variant(run_id + space, "refused")]
    variants += [Variant(run_id[:4] + mark + run_id[4:], "refused") for mark in INVISIBLE[:3]]
    return variants


def uri_variants(name: str, ref: str = "/1") -> list[Variant]:
    variants = [Variant(f"models:/{v.text}{ref}", v.kind) for v in name_variants(name)]
    for space in (" ", "\t", "\u00a0", "\u2003"):
        variants += [
            Variant(f"{space}models:/{name}{ref}", "refused"),
            Variant(f"models:/{name}{ref}{space}", "refused"),
            Variant(f"models:/{space}{name}{ref}", "refused"),
            Variant(f"models:/{name}{space}{ref}", "refused"),
            Variant(f"models:/{name}{ref[0]}{space}{ref[1:]}", "refused"),
            Variant(f"models:{space}/{name}{ref}", "refused"),
        ]
    return variants


# ---------------------------------------------------------------------------------------------
# The world: alice owns a model, an experiment with a run and a logged model; mallory holds an
# explicit NONE grant on both; reader holds READ on both.


@pytest.fixture
def world():
    users = {
        "alice": accounts.user_create(username="alice", role="data-scientist"),
        "mallory": accounts.user_create(username="mallory", role="data-scientist"),
        "reader": accounts.user_create(username="reader", role="data-scientist"),
    }
    # A 500 is one more failure to report, not the end of the walk.
    bearer = {
        name: Client(
            HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=u, name='t')[1]}",
            raise_request_exception=False,
        )
        for name, u in users.items()
    }
    sessions = {}
    for name, user in users.items():
        sessions[name] = Client(raise_request_exception=False)
        sessions[name].force_login(user)
    alice = users["alice"]
    experiment = tracking.experiment_create(name=EXPERIMENT, owner=alice)
    run = tracking.run_create(
        experiment_id=str(experiment.experiment_id),
        user_id="alice",
        run_name="r",
        start_time=1,
        tags=[],
    )
    logged = tracking.logged_model_create(
        experiment_id=str(experiment.experiment_id),
        name="lm",
        model_type=None,
        source_run_id=run.run_id,
        params=[],
        tags=[],
    )
    registry.registered_model_create(name=MODEL, user=alice)
    registry.model_version_create(name=MODEL, source=f"runs:/{run.run_id}/m", user=alice)
    registry.registered_model_set_alias(name=MODEL, alias="champion", version="1")
    set_open_policy(MODEL)  # so that nothing but access stands between a caller and a change
    grants = [
        {"user": "alice", "level": "MANAGE"},
        {"user": "mallory", "level": "NONE"},
        {"user": "reader", "level": "READ"},
    ]
    model_permissions.model_grants_replace(name=MODEL, grants=grants)
    experiment_permissions.experiment_grants_replace(
        experiment_id=experiment.experiment_id, grants=grants
    )
    own = tracking.experiment_create(name="mallory-own", owner=users["mallory"])
    own_run = tracking.run_create(
        experiment_id=str(own.experiment_id), user_id="mallory", run_name="m", start_time=1, tags=[]
    )
    return {
        "bearer": bearer,
        "sessions": sessions,
        "users": users,
        "exp": str(experiment.experiment_id),
        "run": run.run_id,
        "logged": logged.model_id,
        "prefix": run.artifact_uri.removeprefix("mlflow-artifacts:/"),
        "own_run": own_run.run_id,
    }


def snapshot(world) -> dict:
    model = RegisteredModel.objects.get(name=MODEL)
    experiment = Experiment.objects.get(pk=int(world["exp"]))
    run = Run.objects.get(pk=world["run"])
    versions = list(
        model.versions.order_by("version").values(
            "version", "current_stage", "description", "deleted", "source", "run_id"
        )
    )
    return {
        "model": (model.name, model.description),
        "model_tags": sorted(model.tags.values_list("key", "value")),
        "versions": versions,
        "version_tags": sorted(
            model.versions.values_list("version", "tags__key", "tags__value"), key=str
        ),
        "aliases": sorted(model.aliases.values_list("alias", "version__version")),
        "model_grants": model_permissions.grants_payload(model.pk),
        "experiment": (experiment.name, experiment.lifecycle_stage),
        "experiment_tags": sorted(experiment.tags.values_list("key", "value")),
        "experiment_grants": experiment_permissions.grants_payload(experiment.pk),
        "run": (run.status, run.lifecycle_stage, run.name, run.end_time),
        "run_data": (
            sorted(run.params.values_list("key", "value")),
            sorted(run.tags.values_list("key", "value")),
            run.metric_history.count(),
        ),
        "requests": sorted(
            TransitionRequest.objects.filter(version__registered_model=model).values_list(
                "id", "status"
            )
        ),
    }


# ---------------------------------------------------------------------------------------------
# How each route is called with one spelling.


@dataclass
class Attempt:
    route: str
    method: str
    variant: Variant
    send: Callable[[Client], object]
    canonical: Callable[[Client], object]
    session: bool = False


def _json_call(method: str, path: str, message: dict) -> Callable[[Client], object]:
    def send(client: Client):
        if method == "GET":
            return client.get(path, message)
        return client.generic(method, path, json.dumps(message), content_type="application/json")

    return send


def _fill(route: str, values: dict[str, str]) -> str:
    def one(match: re.Match) -> str:
        name = match.group(2)
        return quote(values[name], safe="/" if match.group(1) == "path:" else "")

    return "/" + re.sub(r"<(?:(str:|int:|path:))?([^>]+)>", one, route)


MODEL_MESSAGE = {
    "version": "1",
    "alias": "champion",
    "key": "k",
    "value": "v",
    "description": "changed by a spelling",
    "stage": "Staging",
    "new_name": "taken-over",
    "comment": "c",
    "archive_existing_versions": "false",
}


def mlflow_attempts(route: str, methods: dict, world, who: str) -> Iterator[Attempt]:
    path = "/" + route
    for method, (_handler, rule) in methods.items():
        resource = rule.split(".")[0]
        if resource == "model":
            base = {**MODEL_MESSAGE, "source": f"runs:/{world['own_run']}/m"}
            if who == "mallory":
                base["run_id"] = world["own_run"]
            for v in name_variants(MODEL):
                yield Attempt(
                    route,
                    method,
                    v,
                    _json_call(method, path, {**base, "name": v.text}),
                    _json_call(method, path, {**base, "name": MODEL}),
                )
        elif resource == "experiment" and "<str:model_id>" in route:
            values = {"model_id": world["logged"], "tag_key": "k"}
            body = {"tags": [{"key": "k", "value": "v"}], "params": [{"key": "k", "value": "v"}]}
            for v in run_id_variants(world["logged"].removeprefix("m-")):
                variant = Variant("m-" + v.text, v.kind)
                yield Attempt(
                    route,
                    method,
                    variant,
                    _json_call(method, _fill(route, {**values, "model_id": variant.text}), body),
                    _json_call(method, _fill(route, values), body),
                )
        elif resource == "experiment":
            base = {"new_name": "taken-over", "key": "k", "value": "v", "name": "lm2"}
            for v in id_variants(world["exp"]):
                yield Attempt(
                    route,
                    method,
                    v,
                    _json_call(method, path, {**base, "experiment_id": v.text}),
                    _json_call(method, path, {**base, "experiment_id": world["exp"]}),
                )
            for v in name_variants(EXPERIMENT):
                yield Attempt(
                    route,
                    method,
                    v,
                    _json_call(method, path, {**base, "experiment_name": v.text}),
                    _json_call(method, path, {**base, "experiment_name": EXPERIMENT}),
                )
        elif resource == "run":
            base = {
                "key": "k",
                "value": "1",
                "timestamp": 1,
                "metric_key": "k",
                "status": "KILLED",
                "metrics": [{"key": "k", "value": 1, "timestamp": 1, "step": 0}],
                "params": [{"key": "p", "value": "v"}],
                "tags": [{"key": "t", "value": "v"}],
            }
            for field in ("run_id", "run_uuid", "run_ids"):
                for v in run_id_variants(world["run"]):
                    wrap = (lambda x: [x]) if field == "run_ids" else (lambda x: x)
                    yield Attempt(
                        route,
                        method,
                        v,
                        _json_call(method, path, {**base, field: wrap(v.text)}),
                        _json_call(method, path, {**base, field: wrap(world["run"])}),
                    )
        elif resource == "artifact":
            exp, rest = world["prefix"].split("/", 1)
            for v in id_variants(exp):
                where = f"{v.text}/{rest}/f.txt"
                canonical = f"{world['prefix']}/f.txt"
                if "<path:artifact_path>" in route:
                    yield Attempt(
                        route,
                        method,
                        v,
                        _json_call(method, _fill(route, {"artifact_path": where}), {}),
                        _json_call(method, _fill(route, {"artifact_path": canonical}), {}),
                    )
                else:
                    yield Attempt(
                        route,
                        method,
                        v,
                        _json_call(method, path, {"path": where}),
                        _json_call(method, path, {"path": canonical}),
                    )


def path_attempts(route: str, methods: list[str], world) -> Iterator[Attempt]:
    """DRF and page routes that name objects in their path."""
    session = not route.startswith("api/")
    canonical = {
        "name": MODEL,
        "experiment_id": world["exp"],
        "run_id": world["run"],
        "version": "1",
        "a": "1",
        "b": "1",
        "model_id": world["logged"],
    }
    if "<str:name>" in route:
        # Paths are sent percent-encoded, as clients send them; a variant that is itself
        # percent-encoded arrives double-encoded and names another model.
        kinds = [("name", v) for v in name_variants(MODEL)]
    elif "<str:experiment_id>" in route:
        kinds = [("experiment_id", v) for v in id_variants(world["exp"])]
    elif "<str:run_id>" in route:
        kinds = [("run_id", v) for v in run_id_variants(world["run"])]
    elif "<str:model_id>" in route:  # a logged model's page
        kinds = [
            ("model_id", Variant("m-" + v.text, v.kind))
            for v in run_id_variants(world["logged"].removeprefix("m-"))
        ]
    else:
        return
    body = {"grants": [{"user": "mallory", "level": "MANAGE"}], "intended_use": "x"}
    for method in methods:
        for field, v in kinds:
            yield Attempt(
                route,
                method,
                v,
                _json_call(method, _fill(route, {**canonical, field: v.text}), body),
                _json_call(method, _fill(route, canonical), body),
                session=session,
            )


def named_elsewhere_attempts(world) -> dict[tuple[str, str], list[Attempt]]:
    """Routes whose rule is `authenticated` but which name a model, experiment or run in their
    query or body: each decides access inside (or filters what it lists)."""
    out: dict[tuple[str, str], list[Attempt]] = {}

    def add(route, method, variants, build, canonical_text, session=False):
        out[(route, method)] = [
            Attempt(route, method, v, build(v.text), build(canonical_text), session=session)
            for v in variants
        ]

    v1 = "/api/v1/"
    add(
        "api/v1/resolve",
        "GET",
        uri_variants(MODEL),
        lambda t: _json_call("GET", v1 + "resolve", {"uri": t}),
        f"models:/{MODEL}/1",
    )
    add(
        "api/v1/deployments",
        "POST",
        uri_variants(MODEL),
        lambda t: _json_call("POST", v1 + "deployments", {"endpoint": "/x", "model_uri": t}),
        f"models:/{MODEL}/1",
    )
    add(
        "api/v1/deployments",
        "GET",
        name_variants(MODEL),
        lambda t: _json_call("GET", v1 + "deployments", {"model": t}),
        MODEL,
    )
    add(
        "api/v1/transition-requests",
        "POST",
        name_variants(MODEL),
        lambda t: _json_call(
            "POST", v1 + "transition-requests", {"model": t, "version": "1", "stage": "Staging"}
        ),
        MODEL,
    )
    add(
        "api/v1/transition-requests",
        "GET",
        name_variants(MODEL),
        lambda t: _json_call("GET", v1 + "transition-requests", {"model": t}),
        MODEL,
    )
    add(
        "api/v1/lineage",
        "GET",
        name_variants(MODEL),
        lambda t: _json_call("GET", v1 + "lineage", {"node": f"version:{t}/1"}),
        MODEL,
    )
    add(
        "api/v1/lineage/links",
        "POST",
        name_variants(MODEL),
        lambda t: _json_call(
            "POST",
            v1 + "lineage/links",
            {"source": "dataset:orders@v1", "target": f"version:{t}/1", "kind": "derived_from"},
        ),
        MODEL,
    )
    add(
        "lineage/",
        "GET",
        name_variants(MODEL),
        lambda t: _json_call("GET", "/lineage/", {"node": f"version:{t}/1"}),
        MODEL,
        session=True,
    )
    add(
        "compare/",
        "GET",
        run_id_variants(world["run"]),
        lambda t: _json_call("GET", "/compare/", {"runs": [t, world["own_run"]]}),
        world["run"],
        session=True,
    )
    add(
        "api/v1/lineage/links",
        "GET",
        name_variants(MODEL),
        lambda t: _json_call("GET", v1 + "lineage/links", {"node": f"version:{t}/1"}),
        MODEL,
    )
    for prefix in ("api", "ajax-api"):
        route = f"{prefix}/2.0/mlflow/upload-artifact"

        def upload(t, route=route):
            query = urlencode({"run_uuid": t, "path": "spelled.txt"})
            return lambda client: client.post(
                f"/{route}?{query}", b"data", content_type="application/octet-stream"
            )

        add(route, "POST", run_id_variants(world["run"]), upload, world["run"])
    add(
        "api/v1/webhooks",
        "POST",
        name_variants(MODEL),
        lambda t: _json_call(
            "POST",
            v1 + "webhooks",
            {
                "name": "x",
                "url": "https://hooks.example.com/x",
                "events": ["model_version.created"],
                "model": t,
            },
        ),
        MODEL,
    )
    searches = (
        ("api/2.0/mlflow/runs/search", "experiment_ids"),
        ("api/2.0/mlflow/experiments/search", "filter"),
        ("api/2.0/mlflow/registered-models/search", "filter"),
        ("api/2.0/mlflow/model-versions/search", "filter"),
    )
    for (route, key), method in itertools.product(searches, ("GET", "POST")):
        if key == "experiment_ids":
            variants, canonical = id_variants(world["exp"]), world["exp"]
        else:
            canonical = EXPERIMENT if "experiments" in route else MODEL
            variants = name_variants(canonical)

        def build(t, route=route, key=key, method=method):
            value = [t] if key == "experiment_ids" else f"name = '{t}'"
            return _json_call(method, "/" + route, {key: value, "max_results": 10})

        add(route, method, variants, build, canonical)
    add(
        "api/2.0/mlflow/experiments/search-datasets",
        "POST",
        id_variants(world["exp"]),
        lambda t: _json_call(
            "POST", "/api/2.0/mlflow/experiments/search-datasets", {"experiment_ids": [t]}
        ),
        world["exp"],
    )
    return out


# Routes that name no model, experiment or run by a caller-given spelling, with the reason.
NAMES_NOTHING = {
    "health": "liveness probe",
    "ready": "readiness probe",
    "metrics": "Prometheus scrape (aggregates only)",
    "version": "server version",
    "api/v1/schema": "the OpenAPI schema",
    "api/v1/docs": "Swagger UI",
    "api/v1/me": "the caller",
    "api/v1/tokens": "the caller's own tokens",
    "api/v1/tokens/<int:token_id>": "the caller's own token, by integer id",
    "api/v1/audit/events": "audit.read: compliance and admins only (tests/audit)",
    "api/v1/audit/verify": "audit.read",
    "api/v1/audit/exports": "audit.read",
    "api/v1/audit/exports/<int:export_id>": "audit.read",
    "api/v1/audit/exports/<int:export_id>/download": "audit.read",
    "api/v1/transition-requests/<int:request_id>": "integer ids; unreadable models' requests "
    "look missing (tests/governance)",
    "api/v1/transition-requests/<int:request_id>/approve": "integer request id",
    "api/v1/transition-requests/<int:request_id>/reject": "integer request id",
    "api/v1/transition-requests/<int:request_id>/cancel": "integer request id",
    "api/v1/transition-requests/<int:request_id>/comments": "integer request id",
    "api/v1/transition-requests/<int:request_id>/review": "integer request id",
    "api/v1/lineage/impact": "datasets are not access-controlled; hidden nodes are redacted",
    "api/v1/lineage/links/<int:link_id>": "integer link id",
    "": "the home page redirects",
    "login/": "sign-in",
    **{
        route: f"MLflow family {family!r} Custody does not serve: 501 for every caller"
        for route, family in route_paths()
    },
    "logout/": "sign-out",
    "tokens/": "the caller's own tokens",
    "tokens/<int:token_id>/revoke": "integer token id",
    "experiments/": "lists readable experiments only",
    "models/": "lists readable models only",
    "audit/": "audit.read",
    "audit/events/<int:seq>/": "audit.read, by integer sequence number",
    "access/": "lists what the caller manages",
    "reviews/": "the caller's queue",
    "reviews/<int:request_id>/": "integer request id",
    "reviews/<int:request_id>/act": "integer request id",
    "api/3.0/mlflow/server-info": "server facts",
    "api/2.0/mlflow/experiments/create": "creates a new name",
    "api/2.0/mlflow/registered-models/create": "creates a new name",
    "api/2.0/mlflow/logged-models/search": "lists readable experiments' models only",
    "api/2.0/mlflow/experiments/search-datasets": "lists readable experiments' datasets only",
    "ajax-api/2.0/mlflow/experiments/search-datasets": "lists readable experiments' datasets only",
    "api/2.0/mlflow/comments/update": "integer comment id; the author's own comment",
    "api/2.0/mlflow/comments/delete": "integer comment id; the author's own comment",
    "api/v1/webhooks": "GET lists the webhooks the caller manages (POST is attacked above)",
    "api/v1/webhooks/<str:webhook_id>": "server-made hex ids (identifiers.webhook_id); "
    "webhooks of models the caller may not manage look missing (tests/webhooks)",
    "api/v1/webhooks/<str:webhook_id>/test": "webhook id, as above",
    "api/v1/webhooks/<str:webhook_id>/deliveries": "webhook id, as above",
    "api/v1/webhooks/<str:webhook_id>/deliveries/<str:delivery_id>/replay": "webhook id, as "
    "above; delivery ids are UUIDs (identifiers.delivery_id)",
    "api/v1/me/notifications": "the caller's own preferences",
    "api/2.0/mlflow/webhooks": "admin.manage: MLflow's registry-wide webhooks",
    "api/2.0/mlflow/webhooks/<str:webhook_id>": "admin.manage",
    "api/2.0/mlflow/webhooks/<str:webhook_id>/test": "admin.manage",
}


def all_attempts(world, who: str) -> tuple[list[Attempt], list[str]]:
    attempts: list[Attempt] = []
    uncovered: list[str] = []
    elsewhere = named_elsewhere_attempts(world)
    views = dict(walk(get_resolver().url_patterns))
    for route, callback in views.items():
        if route.startswith("admin/"):
            continue  # the admin names objects by integer primary key (Django's own parsing)
        if route.startswith("ajax-api/") and views.get(route.removeprefix("ajax-")) is callback:
            continue  # the UI's twin of an /api/ route: the same view, attacked there
        mlflow_route = getattr(callback, "mlflow_route", None)
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if mlflow_route is not None:
            methods = mlflow_route.methods
        elif view_class is not None:
            methods = {
                m.upper(): None
                for m in ("get", "post", "put", "patch", "delete")
                if hasattr(view_class, m)
            }
        else:
            methods = {"GET": None} | (
                {"POST": None}
                if route.endswith(
                    ("card/", "request", "aliases", "columns", "edit", "lifecycle", "access/")
                )
                else {}
            )
        for method in methods:
            key = (route, method)
            if key in elsewhere:
                attempts += elsewhere[key]
            elif route in NAMES_NOTHING:
                continue
            elif mlflow_route is not None and methods[method][1].split(".")[0] in (
                "model",
                "experiment",
                "run",
                "artifact",
            ):
                attempts += list(mlflow_attempts(route, {method: methods[method]}, world, who))
            elif re.search(r"<str:(name|experiment_id|run_id|model_id)>", route):
                attempts += list(path_attempts(route, [method], world))
            else:
                uncovered.append(f"{method} {route}")
    return attempts, uncovered


def _client(world, who: str, attempt: Attempt) -> Client:
    return world["sessions" if attempt.session else "bearer"][who]


def _leaks(response, world) -> list[str]:
    body = response.content.decode("utf-8", "replace")
    import unicodedata

    # The model's name may be echoed from the request itself (a page's search box); what the
    # forbidden objects hold must not show.
    secrets = (EXPERIMENT, unicodedata.normalize("NFD", EXPERIMENT), world["run"], world["logged"])
    return [s for s in secrets if s in body]


def _no_such_route(response) -> bool:
    return response.status_code == 404 and b"ENDPOINT_NOT_FOUND" in response.content


def test_every_route_is_covered(world):
    _, uncovered = all_attempts(world, "mallory")
    assert not uncovered, (
        "routes that may name an object but that this test does not call; add them to "
        f"named_elsewhere_attempts or NAMES_NOTHING with the reason: {uncovered}"
    )


def test_no_spelling_reaches_a_forbidden_object(world):
    before = snapshot(world)
    attempts, _ = all_attempts(world, "mallory")
    assert len(attempts) > 2000
    failures = []
    for attempt in attempts:
        client = _client(world, "mallory", attempt)
        response = attempt.send(client)
        status = response.status_code
        if status >= 500 or (200 <= status < 400 and _leaks(response, world)):
            failures.append((attempt.method, attempt.route, attempt.variant.text, status))
        elif 200 <= status < 400 and (attempt.route, attempt.method) not in LISTS:
            failures.append((attempt.method, attempt.route, attempt.variant.text, status))
        elif status == 403 and attempt.canonical(client).status_code != 403:
            # 403 would say the object exists; only rules that refuse mallory whatever the
            # object may answer it.
            failures.append((attempt.method, attempt.route, attempt.variant.text, status))
    assert not failures, f"{len(failures)} spellings got through, e.g. {failures[:15]}"
    assert snapshot(world) == before
    assert not AuditEvent.objects.filter(actor_username="mallory", outcome="success").exists()


# Routes that answer 200 with a (filtered) list: what they list is checked for leaks.
LISTS = {
    ("api/v1/deployments", "GET"),
    ("api/v1/transition-requests", "GET"),
    ("api/v1/lineage", "GET"),
    ("lineage/", "GET"),
    ("api/v1/lineage/links", "GET"),
    *(
        (f"api/2.0/mlflow/{what}/search", method)
        for what in ("runs", "experiments", "registered-models", "model-versions")
        for method in ("GET", "POST")
    ),
    ("api/2.0/mlflow-artifacts/artifacts", "GET"),
    ("ajax-api/2.0/mlflow-artifacts/artifacts", "GET"),
    ("api/2.0/mlflow/experiments/search-datasets", "POST"),
}


def test_every_spelling_of_a_readable_object_gets_the_canonical_answer(world):
    before = snapshot(world)
    attempts, _ = all_attempts(world, "reader")
    failures = []
    canonical_status: dict[tuple, int] = {}
    for attempt in attempts:
        client = _client(world, "reader", attempt)
        key = (attempt.route, attempt.method, id(attempt.canonical))
        if key not in canonical_status:
            canonical_status[key] = attempt.canonical(client).status_code
        expected = canonical_status[key]
        response = attempt.send(client)
        status = response.status_code
        allowed = {expected, 400}
        if attempt.variant.kind == "other":
            allowed.add(404)
        elif attempt.variant.kind == "refused" and _no_such_route(response):
            allowed.add(404)  # the URL table refused it (a newline never matches a route)
        if status not in allowed or status >= 500:
            failures.append(
                (attempt.method, attempt.route, repr(attempt.variant.text), status, expected)
            )
    assert not failures, f"{len(failures)} spellings answered differently, e.g. {failures[:15]}"
    assert snapshot(world) == before

"""The registry over HTTP: protocol, the stage table, the single-Production invariant,
aliases, source validation, resolution, deployments and the archiving task."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from accounts import services as accounts
from audit.models import AuditEvent
from registry.models import ModelVersion
from registry.transitions import ALLOWED, Stage
from tests.conftest import set_open_policy
from tracking import services as tracking

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_id(api):
    exp_id = api.experiment()
    return api.run(exp_id)["info"]["run_id"]


@pytest.fixture
def model(api, run_id):
    """A registered model 'fraud' with versions 1..3 from one run."""
    assert api.post("registered-models/create", {"name": "fraud"}).status_code == 200
    for _ in range(3):
        response = api.post(
            "model-versions/create",
            {"name": "fraud", "source": f"runs:/{run_id}/model", "run_id": run_id},
        )
        assert response.status_code == 200, response.content
    set_open_policy("fraud")
    return "fraud"


def move(api, version, stage, archive=False):
    return api.post(
        "model-versions/transition-stage",
        {
            "name": "fraud",
            "version": str(version),
            "stage": stage,
            "archive_existing_versions": archive,
        },
    )


def stage_of(version: int) -> str:
    return ModelVersion.objects.get(registered_model__name="fraud", version=version).current_stage


def test_create_and_get(api, model):
    got = api.get("registered-models/get", {"name": "fraud"}).json()["registered_model"]
    assert got["name"] == "fraud"
    assert [v["version"] for v in got["latest_versions"]] == ["3"]
    version = api.get("model-versions/get", {"name": "fraud", "version": "2"}).json()
    assert version["model_version"]["status"] == "READY"
    assert version["model_version"]["current_stage"] == "None"
    assert api.get("model-versions/get", {"name": "fraud", "version": "x"}).status_code == 400
    missing = api.get("registered-models/get", {"name": "nope"})
    assert missing.status_code == 404
    assert missing.json()["message"] == "Registered Model with name=nope not found"


@pytest.mark.parametrize("name", ["FRAUD", "ｆｒａｕｄ", "fraud"])
def test_confusable_names_are_one_identity(api, model, name):
    response = api.post("registered-models/create", {"name": name})
    assert response.status_code == 400
    assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"


@pytest.mark.parametrize("name", ["a/b", "a:b", " padded", "zero\u200bwidth", ""])
def test_bad_model_names(api, name):
    response = api.post("registered-models/create", {"name": name})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


BAD_SOURCES = [
    "file:///etc/",
    "file://./etc",
    "file://localhost/../../../../",
    "file:/etc",
    "/etc",
    "//proc/self/root",
    "\\\\?\\C:\\",
    "http:///?/../../../../etc/",
    "http:///#/../../../../etc/",
    "http://host#/../../etc/",
    "dbfs:/",
    "mlflow-artifacts://h/..%2f..%2f..%2f",
    "mlflow-artifacts:/../../",
    "http://h/api/2.0/mlflow-artifacts/artifacts%00",
    "s3://bucket/prefix/../../other",
    "runs:/abc/../../",
    "models:/fraud/1",
    "models:/fraud@champion",
    "http://169.254.169.254/latest/meta-data/",
    "gopher://x",
    "mlflow-artifacts:/1/loose.txt",
]


@pytest.mark.parametrize("source", BAD_SOURCES)
def test_sources_custody_did_not_assign_are_refused(api, model, source):
    count = ModelVersion.objects.count()
    response = api.post("model-versions/create", {"name": "fraud", "source": source})
    assert 400 <= response.status_code < 500, source
    assert ModelVersion.objects.count() == count


def test_source_with_prompt_tag_gets_the_same_validation(api, model):
    response = api.post(
        "model-versions/create",
        {
            "name": "fraud",
            "source": "file:///etc/",
            "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}],
        },
    )
    assert response.status_code == 400


STAGES = [s.value for s in Stage]


@pytest.mark.parametrize("source", STAGES)
@pytest.mark.parametrize("target", STAGES)
def test_the_transition_table(api, model, source, target):
    # Walk version 1 to `source` along allowed moves, then try `target`.
    path = {
        "None": [],
        "Staging": ["Staging"],
        "Production": ["Staging", "Production"],
        "Archived": ["Archived"],
    }[source]
    for step in path:
        assert move(api, 1, step).status_code == 200
    response = move(api, 1, target)
    if (source, target) == ("Archived", "Production"):
        # A rollback, allowed only to a version that was in Production before: this one never
        # was (see test_rollback_to_a_version_that_was_in_production).
        assert response.status_code == 400
        message = response.json()["message"]
        assert f"from {source} to {target}" in message
        assert "only a version that has been in Production before" in message
        assert stage_of(1) == source
    elif target == source or source in ALLOWED[target]:
        assert response.status_code == 200, response.content
        assert stage_of(1) == target
    else:
        assert response.status_code == 400
        message = response.json()["message"]
        assert f"from {source} to {target}" in message and "may move to" in message
        assert stage_of(1) == source


def test_rollback_to_a_version_that_was_in_production(api, model):
    for step in ("Staging", "Production"):
        assert move(api, 1, step).status_code == 200
    move(api, 2, "Staging")
    assert move(api, 2, "Production").status_code == 200
    assert (stage_of(1), stage_of(2)) == ("Archived", "Production")
    assert ModelVersion.objects.get(version=1).was_in_production
    assert not ModelVersion.objects.get(version=3).was_in_production
    back = move(api, 1, "Production")  # the open policy asks no approvals for it either
    assert back.status_code == 200, back.content
    assert (stage_of(1), stage_of(2)) == ("Production", "Archived")


def test_stage_names_are_case_insensitive_and_checked(api, model):
    assert move(api, 1, "staging").json()["model_version"]["current_stage"] == "Staging"
    for bad in ["Prod", "Deleted", "Staging\u200b", " Production "]:
        response = move(api, 1, bad)
        assert response.status_code == 400 and "must be one of" in response.json()["message"]
    response = move(api, 1, "Archived", archive=True)
    assert response.status_code == 400  # MLflow answers 500 here; Custody a clear 400


def test_one_production_version_at_a_time(api, model):
    for version in (1, 2):
        move(api, version, "Staging")
    move(api, 1, "Production")
    move(api, 2, "Production")
    assert (stage_of(1), stage_of(2)) == ("Archived", "Production")
    event = AuditEvent.objects.filter(action="model_version.transition", model_version=1).latest(
        "seq"
    )
    assert "superseded in Production by version 2" in event.reason
    # The database itself refuses a second Production row, whatever code tries.
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(registered_model__name="fraud", version=3).update(
            current_stage="Production"
        )


def test_stage_field_is_protected():
    mv = ModelVersion(version=1)
    with pytest.raises(AttributeError):
        mv.current_stage = "Production"


def test_archive_existing_versions_in_staging(api, model):
    move(api, 1, "Staging")
    move(api, 2, "Staging", archive=True)
    assert (stage_of(1), stage_of(2)) == ("Archived", "Staging")


def test_aliases(api, model):
    def alias(name, version):
        return api.post(
            "registered-models/alias", {"name": "fraud", "alias": name, "version": str(version)}
        )

    assert alias("champion", 1).status_code == 200
    assert alias("champion", 2).status_code == 200  # moves it
    got = api.get("registered-models/alias", {"name": "fraud", "alias": "champion"}).json()
    assert got["model_version"]["version"] == "2"
    assert got["model_version"]["aliases"] == ["champion"]
    for bad in ["latest", "LATEST", "v1", "V12", "has space", "a" * 256, ""]:
        assert alias(bad, 1).status_code == 400, bad
    assert alias("x", 99).status_code == 404
    missing = api.get("registered-models/alias", {"name": "fraud", "alias": "nope"})
    assert (missing.status_code, missing.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    # MLflow semantics: archiving keeps the version's aliases, and an alias may be pointed at
    # an archived version (the aliases a policy protects are governance's; see
    # tests/governance/test_workflow.py).
    move(api, 2, "Archived")
    kept = api.get("registered-models/alias", {"name": "fraud", "alias": "champion"})
    assert kept.status_code == 200 and kept.json()["model_version"]["version"] == "2"
    assert kept.json()["model_version"]["current_stage"] == "Archived"
    assert alias("canary", 2).status_code == 200
    assert not AuditEvent.objects.filter(action="model_version.alias.delete").exists()
    assert (
        api.delete("registered-models/alias", {"name": "fraud", "alias": "gone"}).status_code == 400
    )


def test_get_latest_versions(api, model):
    move(api, 1, "Staging")
    move(api, 2, "Staging")
    move(api, 2, "Production")
    body = api.post(
        "registered-models/get-latest-versions",
        {"name": "fraud", "stages": ["production", "STAGING"]},
    ).json()
    assert {(v["current_stage"], v["version"]) for v in body["model_versions"]} == {
        ("Production", "2"),
        ("Staging", "1"),
    }
    every = api.get("registered-models/get-latest-versions", {"name": "fraud"}).json()
    assert {v["current_stage"] for v in every["model_versions"]} == {
        "Production",
        "Staging",
        "None",
    }


def test_delete_rules(api, model):
    move(api, 1, "Staging")
    move(api, 1, "Production")
    refused = api.delete("model-versions/delete", {"name": "fraud", "version": "1"})
    assert refused.status_code == 400 and "Production" in refused.json()["message"]
    assert api.delete("registered-models/delete", {"name": "fraud"}).status_code == 400
    rename = api.post("registered-models/rename", {"name": "fraud", "new_name": "other"})
    assert rename.status_code == 400
    assert api.delete("model-versions/delete", {"name": "fraud", "version": "3"}).status_code == 200
    created = api.post(
        "model-versions/create", {"name": "fraud", "source": ModelVersion.objects.first().source}
    )
    assert created.json()["model_version"]["version"] == "4"  # numbers are never reused


def test_search(api, model, run_id):
    api.post(
        "registered-models/create",
        {"name": "prompt-x", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
    )
    found = api.get(
        "registered-models/search",
        {"filter": "tags.`mlflow.prompt.is_prompt` != 'true'", "max_results": 100},
    )
    assert [m["name"] for m in found.json()["registered_models"]] == ["fraud"]
    by_run = api.get("model-versions/search", {"filter": f"run_id = '{run_id}'"}).json()
    assert sorted(v["version"] for v in by_run["model_versions"]) == ["1", "2", "3"]
    newer = api.get(
        "model-versions/search", {"filter": "name = 'fraud' AND version_number >= 2"}
    ).json()
    assert sorted(v["version"] for v in newer["model_versions"]) == ["2", "3"]
    for bad in ["version = 1", "tags.k IS NULL", "current_stage = 'Production'"]:
        assert api.get("model-versions/search", {"filter": bad}).status_code == 400
    assert api.get("registered-models/search", {"max_results": 1001}).status_code == 400


def test_resolve_api_with_etags(api, model, auth_client, django_assert_max_num_queries):
    move(api, 1, "Staging")
    move(api, 1, "Production")
    url = "/api/v1/resolve"
    with django_assert_max_num_queries(8):
        first = auth_client.get(url, {"uri": "models:/fraud/Production"})
    assert first.status_code == 200
    assert first.json()["version"] == 1 and first.json()["stage"] == "Production"
    etag = first["ETag"]
    again = auth_client.get(url, {"uri": "models:/fraud/Production"}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    move(api, 2, "Staging")
    move(api, 2, "Production")
    after = auth_client.get(url, {"uri": "models:/fraud/Production"}, HTTP_IF_NONE_MATCH=etag)
    assert after.status_code == 200 and after.json()["version"] == 2
    assert auth_client.get(url, {"uri": "models:/fraud/1"}).status_code == 404  # archived
    assert auth_client.get(url, {"uri": "models:/fraud/latest"}).json()["version"] == 3
    assert auth_client.get(url, {"uri": "file:///etc"}).status_code == 400
    assert auth_client.get(url, {"uri": "models:/fraud/Archived"}).status_code == 400


def test_resolve_answers_as_the_rest_of_the_api_does(api, model, auth_client):
    """GET and HEAD on resolve skip DRF (registry.api_v1.ResolveApi.dispatch); what a client
    sees is still the /api/v1 contract: the access rule before the URI, the /api/v1 error
    shape, HEAD like GET, other methods refused by DRF."""
    from django.test import Client

    move(api, 1, "Staging")
    move(api, 1, "Production")
    url = "/api/v1/resolve"
    anonymous = Client().get(url)  # no URI either: the 401 comes first
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
    missing = auth_client.get(url)
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "code": "INVALID_PARAMETER_VALUE",
        "message": "Missing value for required parameter 'uri'.",
        "details": {},
        "request_id": missing["X-Request-ID"],
    }
    unknown = auth_client.get(url, {"uri": "models:/nobody/Production"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "RESOURCE_DOES_NOT_EXIST"
    got = auth_client.get(url, {"uri": "models:/fraud/Production"}, HTTP_ACCEPT="text/html")
    assert got.status_code == 200 and got["Content-Type"] == "application/json"
    assert got.json()["version"] == 1
    head = auth_client.head(url, {"uri": "models:/fraud/Production"})
    assert head.status_code == 200 and head["ETag"] == got["ETag"]
    assert got["Allow"] == head["Allow"] == "GET, HEAD, OPTIONS"
    refused = auth_client.post(url, {"uri": "models:/fraud/Production"})
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_deployments(api, model, auth_client):
    move(api, 1, "Staging")
    move(api, 1, "Production")

    def deploy(uri, endpoint="/predict"):
        return auth_client.post(
            "/api/v1/deployments",
            {"endpoint": endpoint, "model_uri": uri},
            content_type="application/json",
        )

    first = deploy("models:/fraud/Production")
    assert first.status_code == 201 and first.json()["version"] == 1
    move(api, 2, "Staging")
    second = deploy("models:/fraud/Staging")
    assert second.json()["version"] == 2
    history = auth_client.get("/api/v1/deployments", {"endpoint": "/predict"}).json()
    assert [(d["version"], d["until"] is None) for d in history] == [(2, True), (1, False)]
    move(api, 3, "Archived")
    refused = deploy("models:/fraud/3")
    assert refused.status_code in (400, 404)
    assert auth_client.get("/api/v1/deployments", {"current": "true"}).json()[0]["version"] == 2


def test_archiving_task_runs_at_commit(api, model, django_capture_on_commit_callbacks):
    move(api, 1, "Staging")
    move(api, 2, "Staging")
    with django_capture_on_commit_callbacks(execute=True):
        move(api, 2, "Production")
    # Version 1 was in Staging and older than the new Production version: archived.
    assert (stage_of(1), stage_of(2), stage_of(3)) == ("Archived", "Production", "None")
    from registry.tasks import reconcile_superseded_versions

    assert reconcile_superseded_versions() == {}  # idempotent: nothing left


def test_model_permissions(api, model):
    bob = accounts.user_create(username="bob", role="data-scientist")
    bob_client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=bob, name='t')[1]}")
    assert (
        bob_client.get("/api/2.0/mlflow/registered-models/get", {"name": "fraud"}).status_code
        == 200
    )
    refused = bob_client.post(
        "/api/2.0/mlflow/model-versions/transition-stage",
        {"name": "fraud", "version": "1", "stage": "Staging"},
        content_type="application/json",
    )
    assert refused.status_code == 403
    api.client.put(
        "/api/v1/models/fraud/permissions",
        {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]},
        content_type="application/json",
    )
    hidden = bob_client.get("/api/2.0/mlflow/registered-models/get", {"name": "fraud"})
    assert hidden.status_code == 404
    assert hidden.json()["message"] == "Registered Model with name=fraud not found"
    search = bob_client.get("/api/2.0/mlflow/registered-models/search").json()
    assert search.get("registered_models", []) == []
    assert bob_client.get("/api/v1/resolve", {"uri": "models:/fraud/latest"}).status_code == 404


def test_registering_someone_elses_hidden_run_is_refused(api, model):
    bob = accounts.user_create(username="bob", role="data-scientist")
    experiment = tracking.experiment_create(name="bobs-private", owner=bob)
    from tracking.permissions import experiment_grants_replace

    experiment_grants_replace(
        experiment_id=experiment.experiment_id,
        grants=[{"user": "bob", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    hidden_run = tracking.run_create(
        experiment_id=str(experiment.experiment_id),
        user_id="bob",
        run_name="x",
        start_time=1,
        tags=[],
    )
    response = api.post(
        "model-versions/create", {"name": "fraud", "source": f"runs:/{hidden_run.run_id}/model"}
    )
    assert response.status_code == 404


def test_resolve_command(api, model):
    import io
    import json

    from django.core.management import CommandError, call_command

    move(api, 2, "Staging")
    out = io.StringIO()
    call_command("resolve_model_uri", "models:/fraud/Staging", stdout=out)
    assert json.loads(out.getvalue())["version"] == 2
    with pytest.raises(CommandError, match="has no version in stage Production"):
        call_command("resolve_model_uri", "models:/fraud/Production", stdout=io.StringIO())


def test_deployments_show_what_their_uri_resolves_to_now(api, model, auth_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    move(api, 1, "Staging")
    move(api, 1, "Production")
    api.post("registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"})

    def deploy(uri, endpoint):
        response = auth_client.post(
            "/api/v1/deployments",
            {"endpoint": endpoint, "model_uri": uri},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        return response.json()

    recorded = deploy("models:/fraud/Production", "/prod")
    assert (recorded["version"], recorded["resolves_to"], recorded["drifted"]) == (1, 1, False)
    deploy("models:/fraud@champion", "/champion")
    deploy("models:/fraud/1", "/pinned")
    deploy("models:/fraud/latest", "/latest")

    def current():
        with CaptureQueriesContext(connection) as queries:
            rows = auth_client.get("/api/v1/deployments", {"current": "true"}).json()
        return {d["endpoint"]: (d["version"], d["resolves_to"], d["drifted"]) for d in rows}, len(
            queries
        )

    before, few = current()
    assert before == {
        "/prod": (1, 1, False),
        "/champion": (1, 1, False),
        "/pinned": (1, 1, False),
        "/latest": (3, 3, False),
    }
    move(api, 2, "Staging")
    move(api, 2, "Production")  # v1 archived; @champion stays on it (MLflow semantics)
    move(api, 3, "Archived")
    after, many = current()
    assert after == {
        "/prod": (1, 2, True),
        "/champion": (1, 1, False),
        "/pinned": (1, None, True),  # archived: never resolved by number
        "/latest": (3, 2, True),
    }
    # Past deployments resolve too but never count as drifted.
    deploy("models:/fraud/Production", "/champion")
    history = auth_client.get("/api/v1/deployments", {"endpoint": "/champion"}).json()
    assert [(d["version"], d["resolves_to"], d["drifted"]) for d in history] == [
        (2, 2, False),
        (1, 1, False),
    ]
    for i in range(12):  # more rows, same number of queries
        deploy("models:/fraud/Production", f"/extra-{i}")
    _, more = current()
    assert few == many == more, (few, many, more)


def test_batch_resolution_answers_as_resolve_model_uri(api, model):
    """registry.resolution (deployment lists, approval effects) and the one-URI resolver
    agree on every URI form, archived versions included."""
    from core.errors import ApplicationError
    from registry import resolution, selectors
    from registry.models import RegisteredModel

    move(api, 1, "Staging")
    move(api, 1, "Production")
    move(api, 2, "Staging")
    move(api, 2, "Production")  # v1 archived
    move(api, 3, "Staging")
    for alias, version in (("champion", 1), ("challenger", 3)):
        api.post("registered-models/alias", {"name": "fraud", "alias": alias, "version": version})
    model_id = RegisteredModel.objects.get(name="fraud").pk
    stages, aliases = resolution.model_states([model_id])
    uris = [
        f"models:/fraud/{ref}"
        for ref in ("Production", "staging", "None", "Archived", "latest", "1", "2", "3", "9")
    ] + ["models:/fraud@champion", "models:/fraud@challenger", "models:/fraud@nope"]
    for uri in uris:
        try:
            expected = selectors.resolve_model_uri(uri).version
        except ApplicationError:
            expected = None
        assert resolution.resolve_in(uri, stages[model_id], aliases[model_id]) == expected, uri


def test_the_migration_finds_past_production_versions_in_the_audit_trail(api, model):
    """Versions from before `was_in_production` existed: the migration sets it for the
    Production version and for every version the audit trail shows entering Production."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("registry.migrations.0003_version_was_in_production")
    move(api, 1, "Staging")
    move(api, 1, "Production")
    move(api, 2, "Staging")
    move(api, 2, "Production")  # v1 archived
    move(api, 3, "Staging")
    ModelVersion.objects.update(was_in_production=False)  # as before the field existed
    migration.record_past_production(apps, None)
    flags = dict(ModelVersion.objects.values_list("version", "was_in_production"))
    assert flags == {1: True, 2: True, 3: False}


def test_one_model_grant_is_added_and_removed_with_a_team(api, model):
    """A group (a team) gets EDIT on a model: its members may register and request; the
    grant is removed alone, audited, the creator's MANAGE untouched."""
    from django.contrib.auth.models import Group

    bob = accounts.user_create(username="bob", role="data-scientist")
    bob.groups.add(Group.objects.create(name="fraud-team"))
    bob_client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=bob, name='t')[1]}")

    def bob_moves():
        return bob_client.post(
            "/api/2.0/mlflow/model-versions/transition-stage",
            {"name": "fraud", "version": "1", "stage": "Staging"},
            content_type="application/json",
        ).status_code

    url = "/api/v1/models/fraud/permissions"
    assert bob_moves() == 403
    team = {"group": "fraud-team", "level": "EDIT"}
    added = api.client.post(url, team, content_type="application/json")
    assert added.status_code == 200, added.content
    assert team in added.json()["grants"]
    assert AuditEvent.objects.filter(action="registered_model.permissions.grant").exists()
    assert bob_moves() != 403
    ghost = api.client.post(
        url, {"group": "ghosts", "level": "READ"}, content_type="application/json"
    )
    assert ghost.status_code == 400 and "ghosts" in ghost.json()["error"]["message"]
    removed = api.client.delete(f"{url}?group=fraud-team")
    assert removed.json()["grants"] == [{"user": "alice", "level": "MANAGE"}]
    event = AuditEvent.objects.filter(action="registered_model.permissions.revoke").latest("seq")
    assert event.before["grants"][0] == team and event.model_name == "fraud"

"""Every role against every endpoint family, on objects that belong to someone else
(reference/security.md §2.8). Each case gets fresh objects, so order never matters."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as accounts
from registry import services as registry
from tests.conftest import set_open_policy
from tracking import services as tracking

pytestmark = pytest.mark.django_db

ROLES = {
    "owner": "data-scientist",
    "other": "data-scientist",
    "reviewer": "reviewer",
    "compliance": "compliance",
    "admin": "admin",
}


@pytest.fixture
def world():
    users = {name: accounts.user_create(username=name, role=role) for name, role in ROLES.items()}
    clients = {
        name: Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=u, name='t')[1]}")
        for name, u in users.items()
    }
    clients["anonymous"] = Client()
    owner = users["owner"]
    experiment = tracking.experiment_create(name="owned", owner=owner)
    run = tracking.run_create(
        experiment_id=str(experiment.experiment_id),
        user_id="owner",
        run_name="r",
        start_time=1,
        tags=[],
    )
    registry.registered_model_create(name="owned-model", user=owner)
    registry.model_version_create(name="owned-model", source=f"runs:/{run.run_id}/m", user=owner)
    set_open_policy("owned-model")  # access is under test here, not the promotion policy
    prefix = run.artifact_uri.removeprefix("mlflow-artifacts:/")
    return {
        "clients": clients,
        "exp": str(experiment.experiment_id),
        "run": run.run_id,
        "prefix": prefix,
    }


def call(client: Client, method: str, path: str, body=None, content_type="application/json"):
    if method == "GET":
        return client.get(path, body or {})
    data = body if isinstance(body, bytes) else __import__("json").dumps(body or {})
    return client.generic(method, path, data, content_type=content_type)


M = "/api/2.0/mlflow"
FAMILIES = {
    "read": lambda w: ("GET", f"{M}/runs/get", {"run_id": w["run"]}),
    "search": lambda w: ("POST", f"{M}/runs/search", {"experiment_ids": [w["exp"]]}),
    "write": lambda w: (
        "POST",
        f"{M}/runs/log-metric",
        {"run_id": w["run"], "key": "m", "value": 1, "timestamp": 1},
    ),
    "create-run": lambda w: ("POST", f"{M}/runs/create", {"experiment_id": w["exp"]}),
    "delete": lambda w: ("POST", f"{M}/runs/delete", {"run_id": w["run"]}),
    "delete-experiment": lambda w: ("POST", f"{M}/experiments/delete", {"experiment_id": w["exp"]}),
    "transition": lambda w: (
        "POST",
        f"{M}/model-versions/transition-stage",
        {"name": "owned-model", "version": "1", "stage": "Staging"},
    ),
    "alias": lambda w: (
        "POST",
        f"{M}/registered-models/alias",
        {"name": "owned-model", "alias": "champion", "version": "1"},
    ),
    "delete-model": lambda w: ("DELETE", f"{M}/registered-models/delete", {"name": "owned-model"}),
    "permissions": lambda w: ("PUT", f"/api/v1/experiments/{w['exp']}/permissions", {"grants": []}),
    "model-permissions": lambda w: (
        "PUT",
        "/api/v1/models/owned-model/permissions",
        {"grants": []},
    ),
    "artifact-upload": lambda w: (
        "PUT",
        f"/api/2.0/mlflow-artifacts/artifacts/{w['prefix']}/f",
        b"bytes",
    ),
    "artifact-download": lambda w: (
        "GET",
        f"/api/2.0/mlflow-artifacts/artifacts/{w['prefix']}/f",
        None,
    ),
    "multipart-upload": lambda w: (
        "POST",
        f"/api/2.0/mlflow-artifacts/mpu/create/{w['prefix']}",
        {"path": "f", "num_parts": 1},
    ),
    "audit": lambda w: ("GET", "/api/v1/audit/events", {}),
}

OK = {200, 201, 204}
# family -> the roles that may do it (everyone else: 403; anonymous: 401).
ALLOWED = {
    "read": {"owner", "other", "reviewer", "compliance", "admin"},
    "search": {"owner", "other", "reviewer", "compliance", "admin"},
    "write": {"owner", "admin"},
    "create-run": {"owner", "admin"},
    "delete": {"owner", "admin"},
    "delete-experiment": {"owner", "admin"},
    "transition": {"owner", "admin"},
    "alias": {"owner", "admin"},
    "delete-model": {"owner", "admin"},
    "permissions": {"owner", "admin"},
    "model-permissions": {"owner", "admin"},
    "artifact-upload": {"owner", "admin"},
    "artifact-download": {"owner", "other", "reviewer", "compliance", "admin"},
    "multipart-upload": {"owner", "admin"},
    "audit": {"compliance", "admin"},
}
# Allowed but answered otherwise: no file uploaded yet, multipart not offered.
ALLOWED_STATUS = {"artifact-download": {404}, "multipart-upload": {501}}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_matrix(world, role, family):
    method, path, body = FAMILIES[family](world)
    response = call(
        world["clients"][role],
        method,
        path,
        body,
        content_type="application/octet-stream" if isinstance(body, bytes) else "application/json",
    )
    if role == "anonymous":
        assert response.status_code == 401, response.content
    elif role in ALLOWED[family]:
        assert response.status_code in OK | ALLOWED_STATUS.get(family, set()), (
            response.status_code,
            response.content[:300],
        )
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])


@pytest.mark.parametrize("family", ["read", "write", "artifact-download", "transition"])
def test_hidden_objects_answer_like_missing_ones(world, family):
    from registry.permissions import model_grants_replace
    from tracking.permissions import experiment_grants_replace

    experiment_grants_replace(
        experiment_id=int(world["exp"]),
        grants=[{"user": "owner", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    model_grants_replace(
        name="owned-model",
        grants=[{"user": "owner", "level": "MANAGE"}, {"user": "other", "level": "NONE"}],
    )
    method, path, body = FAMILIES[family](world)
    response = call(world["clients"]["other"], method, path, body)
    assert response.status_code == 404, response.content

"""Personas and fixtures for workflow tests: alice (data scientist, owns the model), bob
(another data scientist), rita and rob (reviewers), carl (compliance) and boss (admin), each
with a bearer-token client; `fraud` is alice's model with two versions from a run that
carries the lineage tags. Every helper acts over HTTP, as users do."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts import services as accounts
from governance.models import TransitionRequest
from registry.models import ModelVersion

M = "/api/2.0/mlflow"
V1 = "/api/v1"
LINEAGE = {"dataset_version": "orders_v2.1", "git_commit": "b7d9e4a", "triggered_by": "ci"}
FULL_CARD = {
    "intended_use": "Score card transactions for fraud review.",
    "out_of_scope_uses": "Credit decisions.",
    "training_data": "orders_v2.1",
    "evaluation_results": "val_auc 0.95",
    "evaluation_by_group": "val_auc by region within 0.02",
    "known_biases": "Fewer samples from new merchants.",
    "limitations": "Not for transactions over 1M.",
    "ethical_considerations": "Humans review every flag.",
    "caveats": "Retrain monthly.",
}


class Persona:
    def __init__(self, username: str, role: str):
        self.user = accounts.user_create(username=username, role=role, password=f"{username}-pw")
        token = accounts.token_create(user=self.user, name="t")[1]
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def mlflow(self, path: str, body: dict, method: str = "POST"):
        if method == "GET":
            return self.client.get(f"{M}/{path}", body)
        return self.client.generic(
            method, f"{M}/{path}", json.dumps(body), content_type="application/json"
        )

    def post(self, path: str, body: dict | None = None):
        return self.client.post(f"{V1}/{path}", body or {}, content_type="application/json")

    def put(self, path: str, body: dict):
        return self.client.put(f"{V1}/{path}", body, content_type="application/json")

    def get(self, path: str, params: dict | None = None):
        return self.client.get(f"{V1}/{path}", params or {})

    def transition(self, version: int, stage: str, name: str = "fraud"):
        return self.mlflow(
            "model-versions/transition-stage",
            {"name": name, "version": str(version), "stage": stage},
        )


@pytest.fixture
def people():
    return {
        "alice": Persona("alice", "data-scientist"),
        "bob": Persona("bob", "data-scientist"),
        "rita": Persona("rita", "reviewer"),
        "rob": Persona("rob", "reviewer"),
        "carl": Persona("carl", "compliance"),
        "admin": Persona("boss", "admin"),
    }


def new_run(alice: Persona, tags: dict[str, str] | None = None, metrics=None) -> str:
    exp = alice.mlflow("experiments/create", {"name": f"e-{TransitionRequest.objects.count()}"})
    exp_id = (
        exp.json().get("experiment_id")
        or alice.mlflow("experiments/get-by-name", {"experiment_name": "e-0"}, "GET").json()[
            "experiment"
        ]["experiment_id"]
    )
    run = alice.mlflow("runs/create", {"experiment_id": exp_id, "start_time": 1})
    run_id = run.json()["run"]["info"]["run_id"]
    batch = {
        "run_id": run_id,
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        "metrics": [
            {"key": k, "value": v, "timestamp": 1, "step": 0} for k, v in (metrics or {}).items()
        ],
    }
    assert alice.mlflow("runs/log-batch", batch).status_code == 200
    return run_id


@pytest.fixture
def fraud(people):
    """Model 'fraud' owned by alice; versions 1 and 2 from a run carrying the lineage tags."""
    alice = people["alice"]
    run_id = new_run(alice, LINEAGE, {"val_auc": 0.95})
    assert alice.mlflow("registered-models/create", {"name": "fraud"}).status_code == 200
    for _ in range(2):
        created = alice.mlflow(
            "model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/model"}
        )
        assert created.status_code == 200, created.content
    return run_id


def stage(version: int, name: str = "fraud") -> str:
    return ModelVersion.objects.get(registered_model__name=name, version=version).current_stage


def to_production_request(people, version: int = 1) -> int:
    alice = people["alice"]
    assert alice.transition(version, "Staging").status_code == 200
    response = alice.transition(version, "Production")
    assert response.status_code == 400, response.content
    return TransitionRequest.objects.get(status="open", version__version=version).pk

"""MLflow feature families Custody does not serve answer 501 `NOT_IMPLEMENTED` naming the
family on every route, method and prefix, and still ask anonymous callers to authenticate."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from core import mlflow_unsupported
from core.mlflow_unsupported import METHODS

pytestmark = [pytest.mark.django_db, pytest.mark.access]


def _concrete(pattern: str) -> str:
    pattern = re.sub(r"<path:[^>]+>", "a-1/b", pattern)
    return "/" + re.sub(r"<str:[^>]+>", "tr-0123", pattern)


ROUTES = mlflow_unsupported.route_paths()


def test_the_families_the_issue_names_are_all_there():
    families = {name for _, name in ROUTES}
    assert {
        "tracing",
        "assessments",
        "gateway",
        "genai-datasets",
        "genai-evaluation",
        "graphql",
        "prompt-lab",
    } <= families
    paths = {path for path, _ in ROUTES}
    # The client's own calls: StartTraceV3, the v2 fallback, OTLP span export, GraphQL.
    for expected in (
        "api/3.0/mlflow/traces",
        "api/2.0/mlflow/traces",
        "v1/traces",
        "graphql",
        "ajax-api/2.0/mlflow/runs/create-promptlab-run",
    ):
        assert expected in paths


@pytest.mark.parametrize(("pattern", "family"), ROUTES)
def test_every_route_answers_not_implemented_naming_its_family(auth_client, pattern, family):
    url = _concrete(pattern)
    for method in METHODS:
        # OTLP posts protobuf: the body is never parsed.
        response = auth_client.generic(
            method, url, b"\x0a\x02\x08\x01", content_type="application/x-protobuf"
        )
        assert response.status_code == 501, (method, url, response.content)
        body = response.json()
        assert body["error_code"] == "NOT_IMPLEMENTED"
        assert f"feature family '{family}'" in body["message"]
        assert "Custody does not serve MLflow" in body["message"]


def test_assessments_are_their_own_family_not_tracing(auth_client):
    response = auth_client.post("/api/3.0/mlflow/traces/tr-1/assessments", {}, "application/json")
    assert "'assessments'" in response.json()["message"]
    response = auth_client.get("/ajax-api/3.0/mlflow/traces/tr-1/info")
    assert "'tracing'" in response.json()["message"]
    assert "mlflow.tracing.disable()" in response.json()["message"]


@pytest.mark.parametrize(("pattern", "family"), ROUTES)
def test_anonymous_callers_get_401_not_the_family_answer(pattern, family):
    response = Client().post(_concrete(pattern), b"{}", content_type="application/json")
    assert response.status_code == 401
    assert "feature family" not in response.content.decode()


def test_an_unknown_route_next_to_a_family_is_still_endpoint_not_found(auth_client):
    response = auth_client.get("/api/2.0/mlflow/no-such-family/x")
    assert response.status_code == 404
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"

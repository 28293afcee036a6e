"""/api/v1/tokens: users manage their own tokens, admins manage all; ids leak nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services

pytestmark = pytest.mark.django_db


def bearer(raw: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_create_list_revoke_own_token(auth_client):
    created = auth_client.post(
        "/api/v1/tokens", {"name": "laptop", "expires_in_days": 30}, content_type="application/json"
    )
    assert created.status_code == 201
    body = created.json()
    raw = body["token"]
    assert raw.startswith(body["display_prefix"]) and body["expires_at"]
    assert bearer(raw).get("/api/v1/me").json()["username"] == "alice"
    listed = auth_client.get("/api/v1/tokens").json()
    assert {t["name"] for t in listed} == {"tests", "laptop"}
    assert all("token" not in t for t in listed)
    assert auth_client.delete(f"/api/v1/tokens/{body['id']}").status_code == 204
    revoked = bearer(raw).get("/api/v1/me")
    assert revoked.status_code == 401
    # In /api/v1's error shape, as every other /api/v1 error (MLflow's on the MLflow routes).
    assert revoked.json()["error"]["code"] == "UNAUTHENTICATED", revoked.json()
    assert revoked["WWW-Authenticate"] == 'Basic realm="custody"'
    on_mlflow = bearer(raw).get("/api/2.0/mlflow/experiments/get", {"experiment_id": "0"})
    assert on_mlflow.json()["error_code"] == "UNAUTHENTICATED"


def test_other_users_tokens_are_invisible_and_untouchable(auth_client):
    bob = services.user_create(username="bob", role="data-scientist")
    token, raw = services.token_create(user=bob, name="bob's")
    assert all(t["name"] != "bob's" for t in auth_client.get("/api/v1/tokens?all=true").json())
    response = auth_client.delete(f"/api/v1/tokens/{token.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_DOES_NOT_EXIST"
    assert bearer(raw).get("/api/v1/me").status_code == 200


def test_admin_sees_and_revokes_all(auth_client):
    admin = services.user_create(username="root", role="admin")
    _, admin_raw = services.token_create(user=admin, name="admin")
    admin_client = bearer(admin_raw)
    names = {t["name"] for t in admin_client.get("/api/v1/tokens?all=true").json()}
    assert {"tests", "admin"} <= names
    alice_token = next(
        t for t in admin_client.get("/api/v1/tokens?all=true").json() if t["name"] == "tests"
    )
    assert admin_client.delete(f"/api/v1/tokens/{alice_token['id']}").status_code == 204
    assert auth_client.get("/api/v1/me").status_code == 401


def test_validation_errors_use_the_v1_error_shape(auth_client):
    response = auth_client.post(
        "/api/v1/tokens", {"name": "", "expires_in_days": 0}, content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "INVALID_PARAMETER_VALUE"
    assert set(error["details"]) == {"name", "expires_in_days"}


def test_v1_requires_authentication():
    response = Client().get("/api/v1/tokens")
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_openapi_schema_is_served(auth_client):
    response = auth_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert b"/api/v1/tokens" in response.content

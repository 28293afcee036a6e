"""The unmodified MLflow client manages webhooks on a live Custody (gunicorn), and a real
local receiver, allowed through CUSTODY_WEBHOOK_ALLOWED_HOSTS, verifies every delivery with
MLflow's signature scheme and drops repeats by delivery id: registering a version, setting an
alias and an approved promotion each arrive exactly once."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.conftest import OPEN_POLICY, LiveServer, fresh_database

pytestmark = pytest.mark.mlflow_client

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("custody-webhooks")
    with fresh_database(workdir, "custody_webhooks") as database_url:
        server = LiveServer(workdir, database_url, {"CUSTODY_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"})
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def client(live, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", live.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", live.password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(live.url)
    return MlflowClient(tracking_uri=live.url, registry_uri=live.url)


def test_the_client_creates_tests_updates_and_deletes_a_webhook(client, receiver):
    from mlflow.entities.webhook import WebhookEvent, WebhookStatus
    from mlflow.exceptions import MlflowException
    from mlflow.webhooks.types import (
        ModelVersionAliasCreatedPayload,
        ModelVersionCreatedPayload,
    )

    hook = receiver(secret=SECRET)
    created = client.create_webhook(
        name="ci",
        url=hook.url,
        events=["model_version.created", "model_version_alias.created"],
        description="deploys on new versions",
        secret=SECRET,
    )
    assert created.status == WebhookStatus.ACTIVE
    assert [str(e) for e in created.events] == [
        "model_version.created",
        "model_version_alias.created",
    ]
    assert created.secret is None  # never answered
    got = client.get_webhook(created.webhook_id)
    assert (got.name, got.url, got.description) == ("ci", hook.url, "deploys on new versions")
    assert created.webhook_id in [w.webhook_id for w in client.list_webhooks()]

    result = client.test_webhook(created.webhook_id)
    assert result.success is True and result.response_status == 200, result.error_message
    result = client.test_webhook(
        created.webhook_id, event=WebhookEvent("model_version_alias", "created")
    )
    assert result.success is True
    first, second = hook.wait_for(2)
    assert first.signature_ok is True and second.signature_ok is True
    assert first.body["data"] == ModelVersionCreatedPayload.example()
    assert second.body["data"] == ModelVersionAliasCreatedPayload.example()
    assert (second.body["entity"], second.body["action"]) == ("model_version_alias", "created")

    updated = client.update_webhook(
        created.webhook_id, description="paused", status=WebhookStatus.DISABLED
    )
    assert (updated.description, updated.status) == ("paused", WebhookStatus.DISABLED)
    # A wrong secret on the receiver's side: the signature no longer verifies.
    client.update_webhook(created.webhook_id, secret="rotated", status=WebhookStatus.ACTIVE)
    assert client.test_webhook(created.webhook_id).success is True
    assert hook.arrivals[-1].signature_ok is False

    client.delete_webhook(created.webhook_id)
    with pytest.raises(MlflowException, match="not found"):
        client.get_webhook(created.webhook_id)


def test_version_alias_and_approved_promotion_each_arrive_once(client, live, receiver):
    import mlflow
    from mlflow.exceptions import MlflowException

    hook = receiver(secret=SECRET)
    admin = requests.Session()
    admin.auth = (live.username, live.password)
    created = admin.post(
        f"{live.url}/api/v1/webhooks",
        json={
            "name": "cd",
            "url": hook.url,
            "secret": SECRET,
            "events": [
                "model_version.created",
                "model_version_alias.created",
                "transition_request.created",
                "transition_request.applied",
                "model_version.stage_changed",
            ],
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    name = f"wh-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    policy = {**OPEN_POLICY, "production_approvals": 1}
    assert admin.put(f"{live.url}/api/v1/models/{name}/policy", json=policy).status_code == 200
    mlflow.set_experiment(f"e-{name}")
    with mlflow.start_run() as run:
        pass
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    client.transition_model_version_stage(name, version.version, "Staging")
    with pytest.raises(MlflowException, match="approv"):
        client.transition_model_version_stage(name, version.version, "Production")
    opened = admin.get(
        f"{live.url}/api/v1/transition-requests", params={"model": name, "status": "open"}
    ).json()["requests"]
    (request,) = opened
    reviewer = f"rev-{uuid.uuid4().hex[:6]}"
    password = live.create_user(reviewer, "reviewer")
    approved = requests.post(
        f"{live.url}/api/v1/transition-requests/{request['id']}/approve",
        json={},
        auth=(reviewer, password),
        timeout=30,
    )
    assert approved.status_code == 200 and approved.json()["applied"] is True, approved.text

    expected = [
        "model_version.created",
        "model_version_alias.created",
        # To Staging: a request that the open policy applies at once.
        "transition_request.created",
        "model_version.stage_changed",
        "transition_request.applied",
        # To Production: a request, then the approval applies it.
        "transition_request.created",
        "model_version.stage_changed",
        "transition_request.applied",
    ]
    arrivals = hook.wait_for(len(expected))
    # One model's events arrive in the order they were recorded.
    assert [a.event for a in arrivals] == expected
    assert all(a.signature_ok for a in hook.arrivals)
    assert len(hook.arrivals) == len(expected)  # none twice
    promoted = [a for a in arrivals if a.event == "model_version.stage_changed"][-1]
    assert promoted.body["data"]["to_stage"] == "Production"
    assert promoted.body["data"]["approved_by"] == [reviewer]
    alias = next(a for a in arrivals if a.event == "model_version_alias.created")
    assert alias.body["data"] == {"name": name, "alias": "champion", "version": "1"}
    log = admin.get(f"{live.url}/api/v1/webhooks/{created.json()['webhook_id']}/deliveries").json()[
        "deliveries"
    ]
    assert {d["status"] for d in log} == {"delivered"} and len(log) == len(expected)
    assert {d["delivery_id"] for d in log} == {a.delivery_id for a in arrivals}

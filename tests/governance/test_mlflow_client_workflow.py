"""The review workflow as an MLflow user meets it: the unmodified client's
transition_model_version_stage to Production answers with the open request and what it
needs; a reviewer approves over /api/v1; the client then sees Production and loads
models:/name/Production. Plus concurrent approvals on PostgreSQL (a live gunicorn server)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import requests

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]])
CARD = {
    "intended_use": "u",
    "out_of_scope_uses": "o",
    "training_data": "t",
    "evaluation_results": "e",
    "evaluation_by_group": "g",
    "known_biases": "b",
    "limitations": "l",
    "ethical_considerations": "c",
    "caveats": "v",
}


@pytest.mark.mlflow_client
def test_promotion_through_review_with_the_real_client(
    mlflow_env, unique_name, live_server_process
):
    from sklearn.linear_model import LogisticRegression

    server = live_server_process
    name = f"gov-{unique_name}"
    mlflow.set_experiment(unique_name)
    with mlflow.start_run():
        mlflow.set_tags({"dataset_version": "orders_v2.1", "git_commit": "b7d9e4a"})
        mlflow.log_metric("val_auc", 0.93)
        model = LogisticRegression().fit(X, np.array([0, 1, 0, 1]))
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = MlflowClient()

    # Staging needs the lineage tags: the client is told which one is missing.
    with pytest.raises(MlflowException) as excinfo:
        client.transition_model_version_stage(name, "1", "Staging")
    assert excinfo.value.error_code == "INVALID_STATE"
    assert "lineage tag 'triggered_by' is missing" in excinfo.value.message
    client.set_tag(client.get_model_version(name, "1").run_id, "triggered_by", "ci")
    assert client.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"

    # Production needs a reviewer's approval: the error names the request.
    with pytest.raises(MlflowException) as excinfo:
        client.transition_model_version_stage(name, "1", "Production")
    message = excinfo.value.message
    assert "1 more approval needed" in message and "model card is missing" in message
    request_id = int(message.split("transition request ")[1].split(" ")[0])
    assert client.get_model_version(name, "1").current_stage == "Staging"

    admin = (server.username, server.password)
    assert requests.put(
        f"{server.url}/api/v1/models/{name}/versions/1/card", json=CARD, auth=admin, timeout=30
    ).ok
    reviewer = (f"rev-{unique_name}", server.create_user(f"rev-{unique_name}", "reviewer"))
    approved = requests.post(
        f"{server.url}/api/v1/transition-requests/{request_id}/approve",
        json={"comment": "metrics and card checked"},
        auth=reviewer,
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["applied"] is True

    assert client.get_model_version(name, "1").current_stage == "Production"
    loaded = mlflow.sklearn.load_model(f"models:/{name}/Production")
    assert loaded.predict(X).tolist() == [0, 1, 0, 1]
    chain = requests.get(
        f"{server.url}/api/v1/models/{name}/versions/1/reviews", auth=admin, timeout=30
    ).json()
    production = [r for r in chain["requests"] if r["to_stage"] == "Production"]
    assert production[0]["reviews"][0]["reviewer"] == reviewer[0]
    assert production[0]["status"] == "applied"


def _request_id(message: str) -> int:
    return int(message.split("transition request ")[1].split(" ")[0])


@pytest.mark.mlflow_client
def test_leaving_production_with_the_real_client_waits_for_a_reviewer(
    mlflow_env, unique_name, live_server_process, monkeypatch
):
    """A data scientist who may edit the model drives the unmodified client. Archiving the
    Production version opens a request and fails with what it needs; the reviewer's approval
    applies it. The promotion that replaces a Production version archives it with no request."""
    from sklearn.linear_model import LogisticRegression

    server = live_server_process
    v1 = f"{server.url}/api/v1"
    reviewer = (f"rev-{unique_name}", server.create_user(f"rev-{unique_name}", "reviewer"))
    scientist = (f"ds-{unique_name}", server.create_user(f"ds-{unique_name}", "data-scientist"))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", scientist[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", scientist[1])
    name = f"exit-{unique_name}"
    mlflow.set_experiment(unique_name)
    with mlflow.start_run():
        mlflow.set_tags({"dataset_version": "d1", "git_commit": "c1", "triggered_by": "ci"})
        model = LogisticRegression().fit(X, np.array([0, 1, 0, 1]))
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = MlflowClient()
    first = client.get_model_version(name, "1")
    client.create_model_version(name, first.source, run_id=first.run_id)
    for version in ("1", "2"):
        card = requests.put(
            f"{v1}/models/{name}/versions/{version}/card", json=CARD, auth=scientist, timeout=30
        )
        assert card.ok, card.text

    def approve(request_id: int, auth=reviewer) -> requests.Response:
        return requests.post(
            f"{v1}/transition-requests/{request_id}/approve", json={}, auth=auth, timeout=30
        )

    def refused_move(version: str, stage: str, **kwargs) -> str:
        with pytest.raises(MlflowException) as excinfo:
            client.transition_model_version_stage(name, version, stage, **kwargs)
        assert excinfo.value.error_code == "INVALID_STATE"
        return excinfo.value.message

    assert client.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"
    assert approve(_request_id(refused_move("1", "Production"))).json()["applied"] is True

    # Version 2 replaces it: the approved promotion archives version 1, no request of its own.
    assert client.transition_model_version_stage(name, "2", "Staging").current_stage == "Staging"
    message = refused_move("2", "Production", archive_existing_versions=True)
    assert approve(_request_id(message)).json()["applied"] is True
    assert client.get_model_version(name, "2").current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    chain = requests.get(f"{v1}/models/{name}/versions/1/reviews", auth=reviewer, timeout=30)
    assert [r["to_stage"] for r in chain.json()["requests"]] == ["Staging", "Production"]

    # Archiving version 2 takes it out of serving: a request, and the client is told.
    message = refused_move("2", "Archived")
    request_id = _request_id(message)
    assert f"Version 2 of '{name}' cannot leave Production for Archived yet" in message
    assert "1 more approval needed to leave Production (0 of 1)" in message
    assert "any user with the reviewer role" in message and "other than the requester" in message
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["2"]
    loaded = mlflow.sklearn.load_model(f"models:/{name}/Production")
    assert loaded.predict(X).tolist() == [0, 1, 0, 1]
    assert _request_id(refused_move("2", "Archived")) == request_id  # reused

    own = approve(request_id, auth=scientist)
    assert own.status_code == 403 and "separation of duties" in own.text
    approved = approve(request_id)
    assert approved.status_code == 200 and approved.json()["applied"] is True, approved.text
    assert client.get_model_version(name, "2").current_stage == "Archived"
    assert client.get_latest_versions(name, stages=["Production"]) == []


@pytest.mark.postgres
def test_concurrent_approvals_apply_the_move_exactly_once(live_server_process, unique_name):
    server = live_server_process
    if not server.database_url.startswith("postgres"):
        pytest.skip("needs PostgreSQL row locks; run with DATABASE_URL=postgres://...")
    admin = requests.Session()
    admin.auth = (server.username, server.password)
    api, v1 = f"{server.url}/api/2.0/mlflow", f"{server.url}/api/v1"
    name = f"quorum-{unique_name}"
    run = admin.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    for key in ("dataset_version", "git_commit", "triggered_by"):
        admin.post(f"{api}/runs/set-tag", json={"run_id": run["run_id"], "key": key, "value": "x"})
    assert admin.post(f"{api}/registered-models/create", json={"name": name}).ok
    assert admin.post(
        f"{api}/model-versions/create",
        json={"name": name, "source": f"runs:/{run['run_id']}/model"},
    ).ok
    assert admin.put(f"{v1}/models/{name}/policy", json={"production_approvals": 2}).ok
    assert admin.put(f"{v1}/models/{name}/versions/1/card", json=CARD).ok
    requester = (f"req-{unique_name}", server.create_user(f"req-{unique_name}", "data-scientist"))
    grant = {"grants": [{"user": requester[0], "level": "EDIT"}]}
    assert admin.put(f"{v1}/models/{name}/permissions", json=grant).ok
    ask = requests.post(
        f"{v1}/transition-requests",
        json={"model": name, "version": "1", "stage": "Staging"},
        auth=requester,
        timeout=30,
    )
    assert ask.status_code == 200 and ask.json()["applied"], ask.text
    ask = requests.post(
        f"{v1}/transition-requests",
        json={"model": name, "version": "1", "stage": "Production"},
        auth=requester,
        timeout=30,
    )
    assert ask.status_code == 201, ask.text
    request_id = ask.json()["id"]

    reviewers = [
        (f"r{i}-{unique_name}", server.create_user(f"r{i}-{unique_name}", "reviewer"))
        for i in range(4)
    ]
    barrier = threading.Barrier(len(reviewers) * 2)
    answers: list[tuple[int, dict]] = []

    def approve(auth):
        barrier.wait()
        response = requests.post(
            f"{v1}/transition-requests/{request_id}/approve", json={}, auth=auth, timeout=60
        )
        answers.append((response.status_code, response.json()))

    # Each reviewer approves twice at the same instant (a double-submitted form).
    threads = [threading.Thread(target=approve, args=(r,)) for r in reviewers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(code in (200, 409) for code, _ in answers), answers
    assert sum(1 for code, body in answers if code == 200 and body.get("applied")) >= 1
    detail = admin.get(f"{v1}/transition-requests/{request_id}").json()
    assert detail["status"] == "applied"
    version = admin.get(f"{api}/model-versions/get", params={"name": name, "version": "1"})
    assert version.json()["model_version"]["current_stage"] == "Production"
    events = admin.get(
        f"{v1}/audit/events",
        params={"model": name, "action": "model_version.transition", "limit": 100},
    ).json()
    rows = events.get("events", events.get("results", []))
    to_production = [e for e in rows if (e.get("after") or {}).get("current_stage") == "Production"]
    assert len(to_production) == 1, rows
    assert len(to_production[0]["after"]["approved_by"]) == 2


@pytest.mark.mlflow_client
def test_rollback_with_the_real_client(mlflow_env, unique_name, live_server_process, monkeypatch):
    """Production v2 misbehaves: the data scientist asks with the unmodified client for v1 to
    go back; a reviewer approves over /api/v1; v1 serves again under models:/…/Production and
    @champion (which stayed on it while it was archived), v2 is archived."""
    from sklearn.linear_model import LogisticRegression

    server = live_server_process
    v1 = f"{server.url}/api/v1"
    reviewer = (f"rev-{unique_name}", server.create_user(f"rev-{unique_name}", "reviewer"))
    scientist = (f"ds-{unique_name}", server.create_user(f"ds-{unique_name}", "data-scientist"))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", scientist[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", scientist[1])
    name = f"rollback-{unique_name}"
    mlflow.set_experiment(unique_name)
    for flip in (False, True):
        with mlflow.start_run():
            mlflow.set_tags({"dataset_version": "d1", "git_commit": "c1", "triggered_by": "ci"})
            y = np.array([1, 0, 1, 0] if flip else [0, 1, 0, 1])
            model = LogisticRegression().fit(X, y)
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client = MlflowClient()
    for version in ("1", "2"):
        card = requests.put(
            f"{v1}/models/{name}/versions/{version}/card", json=CARD, auth=scientist, timeout=30
        )
        assert card.ok, card.text

    def promote(version: str, stage: str = "Production") -> dict:
        with pytest.raises(MlflowException) as excinfo:
            client.transition_model_version_stage(name, version, stage)
        assert excinfo.value.error_code == "INVALID_STATE"
        approved = requests.post(
            f"{v1}/transition-requests/{_request_id(excinfo.value.message)}/approve",
            json={"comment": "ok"},
            auth=reviewer,
            timeout=30,
        )
        assert approved.status_code == 200 and approved.json()["applied"], approved.text
        return {"message": excinfo.value.message, "request": approved.json()["request"]}

    client.transition_model_version_stage(name, "1", "Staging")
    promote("1")
    client.set_registered_model_alias(name, "champion", "1")
    client.transition_model_version_stage(name, "2", "Staging")
    promote("2")
    assert client.get_model_version(name, "1").current_stage == "Archived"
    # The seed flow: every URI form still loads, @champion the archived version 1.
    assert mlflow.sklearn.load_model(f"models:/{name}/Production").predict(X).tolist() == [
        1,
        0,
        1,
        0,
    ]
    assert mlflow.sklearn.load_model(f"models:/{name}/latest").predict(X).tolist() == [1, 0, 1, 0]
    assert mlflow.sklearn.load_model(f"models:/{name}/1").predict(X).tolist() == [0, 1, 0, 1]
    assert mlflow.sklearn.load_model(f"models:/{name}@champion").predict(X).tolist() == [0, 1, 0, 1]

    rollback = promote("1")
    assert "cannot be rolled back into Production yet" in rollback["message"]
    assert "to roll back into Production (0 of 1)" in rollback["message"]
    assert rollback["request"]["rollback"] is True
    assert client.get_model_version(name, "1").current_stage == "Production"
    assert client.get_model_version(name, "2").current_stage == "Archived"
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    assert mlflow.sklearn.load_model(f"models:/{name}/Production").predict(X).tolist() == [
        0,
        1,
        0,
        1,
    ]
    assert mlflow.sklearn.load_model(f"models:/{name}@champion").predict(X).tolist() == [0, 1, 0, 1]

    timeline = requests.get(f"{v1}/models/{name}/timeline", auth=reviewer, timeout=30).json()
    production = timeline["stages"]["Production"]
    assert [(i["version"], i["rollback"]) for i in production] == [
        (1, False),
        (2, False),
        (1, True),
    ]
    events = requests.get(
        f"{v1}/audit/events",
        params={"model": name, "action": "model_version.transition", "limit": 100},
        auth=(server.username, server.password),
        timeout=30,
    ).json()
    rows = events.get("events", events.get("results", []))
    rollbacks = [e for e in rows if (e.get("after") or {}).get("rollback")]
    assert len(rollbacks) == 1 and rollbacks[0]["after"]["approved_by"] == [reviewer[0]]

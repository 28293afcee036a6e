"""The unmodified MLflow client registers, transitions, aliases and loads models from Custody
through every `models:/` URI form (a live gunicorn server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.mlflow_client

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]])


def train(flip: bool = False):
    from sklearn.linear_model import LogisticRegression

    y = np.array([1, 0, 1, 0] if flip else [0, 1, 0, 1])
    return LogisticRegression().fit(X, y)


def test_register_transition_alias_and_load_every_uri(mlflow_env, unique_name, live_server_process):
    """The registry's mechanics under a policy that asks for nothing; the review workflow
    with the real client is in tests/governance/test_mlflow_client_workflow.py."""
    name = f"fraud-{unique_name}"
    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(train(), name="model", registered_model_name=name)
    live_server_process.open_policy(name)
    with mlflow.start_run() as run2:
        mlflow.sklearn.log_model(train(flip=True), name="model")
    second = mlflow.register_model(f"runs:/{run2.info.run_id}/model", name)
    assert second.version == "2" and second.status == "READY"
    assert second.run_id == run2.info.run_id

    client = MlflowClient()
    v1 = client.get_model_version(name, "1")
    assert v1.run_id == run.info.run_id and v1.current_stage == "None"

    client.transition_model_version_stage(name, "1", "Staging")
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "staging")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")

    prod = mlflow.sklearn.load_model(f"models:/{name}/Production")
    assert prod.predict(X).tolist() == [0, 1, 0, 1]
    staging = mlflow.pyfunc.load_model(f"models:/{name}/Staging")
    assert staging.predict(pd.DataFrame(X)).tolist() == [1, 0, 1, 0]
    assert mlflow.sklearn.load_model(f"models:/{name}/latest").predict(X).tolist() == [1, 0, 1, 0]
    assert mlflow.sklearn.load_model(f"models:/{name}/1").predict(X).tolist() == [0, 1, 0, 1]
    assert mlflow.sklearn.load_model(f"models:/{name}@champion").predict(X).tolist() == [0, 1, 0, 1]

    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"Production": "1", "Staging": "2"}
    assert client.get_model_version_by_alias(name, "challenger").version == "2"
    model = client.get_registered_model(name)
    assert model.aliases == {"champion": "1", "challenger": "2"}

    # Promoting version 2 moves version 1 out of Production in the same transaction.
    client.transition_model_version_stage(name, "2", "Production")
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert client.get_model_version(name, "2").current_stage == "Production"
    # MLflow semantics: archiving keeps the aliases (none is protected by this policy), and
    # an alias may be pointed at an archived version. Stages and `latest` skip it.
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").current_stage == "Archived"
    assert mlflow.sklearn.load_model(f"models:/{name}/Production").predict(X).tolist() == [
        1,
        0,
        1,
        0,
    ]
    assert mlflow.sklearn.load_model(f"models:/{name}/latest").predict(X).tolist() == [1, 0, 1, 0]
    assert mlflow.sklearn.load_model(f"models:/{name}/1").predict(X).tolist() == [0, 1, 0, 1]
    assert mlflow.sklearn.load_model(f"models:/{name}@champion").predict(X).tolist() == [0, 1, 0, 1]
    # Archived → Production is a rollback for a version that was in Production before (at
    # once under this policy: rollback_approvals 0); a version never in Production may not.
    client.transition_model_version_stage(name, "1", "Production")
    assert client.get_model_version(name, "1").current_stage == "Production"
    assert client.get_model_version(name, "2").current_stage == "Archived"
    assert mlflow.sklearn.load_model(f"models:/{name}/Production").predict(X).tolist() == [
        0,
        1,
        0,
        1,
    ]
    v3 = client.create_model_version(name, v1.source, run_id=v1.run_id)
    client.transition_model_version_stage(name, v3.version, "Archived")
    with pytest.raises(MlflowException) as excinfo:
        client.transition_model_version_stage(name, v3.version, "Production")
    assert "only a version that has been in Production before" in excinfo.value.message
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version_by_alias(name, "nope")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"


def test_registry_crud_and_search(mlflow_env, unique_name):
    client = MlflowClient()
    name = f"crud-{unique_name}"
    client.create_registered_model(name, tags={"team": "risk"}, description="first")
    with pytest.raises(MlflowException) as excinfo:
        client.create_registered_model(name)
    assert excinfo.value.error_code == "RESOURCE_ALREADY_EXISTS"
    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "owner", "alice")
    model = client.get_registered_model(name)
    assert model.description == "second" and model.tags == {"team": "risk", "owner": "alice"}
    client.delete_registered_model_tag(name, "owner")

    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(train(), name="model")
    mv = client.create_model_version(
        name, f"models:/{info.model_id}", run_id=run.info.run_id, tags={"k": "v"}
    )
    client.update_model_version(name, mv.version, description="v1 notes")
    client.set_model_version_tag(name, mv.version, "validated", "yes")
    assert client.get_model_version(name, mv.version).description == "v1 notes"
    assert client.get_model_version_download_uri(name, mv.version).endswith(
        f"/models/{info.model_id}/artifacts"
    )

    found = client.search_registered_models(filter_string=f"name = '{name}'")
    assert [m.name for m in found] == [name]
    assert [
        m.name
        for m in client.search_registered_models(filter_string="tags.team = 'risk'")
        if m.name == name
    ] == [name]
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert [(v.name, v.version) for v in versions] == [(name, "1")]
    assert client.search_model_versions(f"name = '{name}' and tags.validated = 'yes'")

    new_name = name + "-renamed"
    client.rename_registered_model(name, new_name)
    assert client.get_registered_model(new_name).name == new_name
    client.delete_model_version(new_name, "1")
    with pytest.raises(MlflowException) as excinfo:
        client.get_model_version(new_name, "1")
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as excinfo:
        client.get_registered_model(new_name)
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"

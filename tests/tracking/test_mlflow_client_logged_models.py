"""MLflow 3 logged models with the unmodified client against a live Custody server: the
`mlflow.modelVersions` link to registered versions, search by dataset, `source_run_id` as
MLflow accepts it, and the UI's routes for a logged model's files and a run's uploads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

pytestmark = pytest.mark.mlflow_client

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402

LINK_TAG = "mlflow.modelVersions"


def _sklearn_model():
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]])
    return LogisticRegression().fit(X, np.array([0, 1, 0, 1]))


def _links(model_id: str) -> list[dict] | None:
    value = mlflow.get_logged_model(model_id).tags.get(LINK_TAG)
    return None if value is None else json.loads(value)


class Http:
    """Plain HTTP to the live server as its admin, for the UI-only routes."""

    def __init__(self, server):
        self.url, self.auth = server.url, (server.username, server.password)

    def get(self, path: str, **params):
        return requests.get(f"{self.url}/{path}", params=params, auth=self.auth, timeout=60)

    def post(self, path: str, **kwargs):
        return requests.post(f"{self.url}/{path}", auth=self.auth, timeout=60, **kwargs)


@pytest.fixture
def http(live_server_process) -> Http:
    return Http(live_server_process)


def test_registered_versions_show_on_the_logged_model(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(_sklearn_model(), name="model")
    name = f"lm-{unique_name}"
    # The fluent path: the server adds the link, then the client appends it again itself.
    first = mlflow.register_model(f"models:/{info.model_id}", name)
    assert _links(info.model_id) == [{"name": name, "version": first.version}]
    client = MlflowClient()
    second = client.create_model_version(name, f"models:/{info.model_id}", model_id=info.model_id)
    assert _links(info.model_id) == [
        {"name": name, "version": "1"},
        {"name": name, "version": second.version},
    ]
    # (the client's ModelVersion does not read model_id back from the wire: TODO in mlflow)

    client.delete_model_version(name, "1")
    assert _links(info.model_id) == [{"name": name, "version": "2"}]
    client.rename_registered_model(name, f"{name}-renamed")
    assert _links(info.model_id) == [{"name": f"{name}-renamed", "version": "2"}]
    client.delete_registered_model(f"{name}-renamed")
    assert _links(info.model_id) is None


def test_search_by_dataset_with_and_without_a_metric_clause(mlflow_env, unique_name):
    client = MlflowClient()
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id).info.run_id
    on_train, on_eval, on_nothing = (
        client.create_logged_model(experiment_id, source_run_id=run_id).model_id for _ in range(3)
    )
    client.log_batch(
        run_id,
        metrics=[
            Metric("acc", 0.9, 1, 0, model_id=on_train, dataset_name="train", dataset_digest="d1"),
            Metric("acc", 0.4, 1, 0, model_id=on_eval, dataset_name="eval", dataset_digest="d2"),
            Metric("acc", 0.8, 1, 0, model_id=on_nothing),
        ],
    )

    def ids(**kwargs) -> set[str]:
        return {m.model_id for m in client.search_logged_models([experiment_id], **kwargs)}

    assert ids() == {on_train, on_eval, on_nothing}
    assert ids(datasets=[{"dataset_name": "train"}]) == {on_train}
    assert ids(datasets=[{"dataset_name": "train", "dataset_digest": "d1"}]) == {on_train}
    assert ids(datasets=[{"dataset_name": "train", "dataset_digest": "other"}]) == set()
    assert ids(datasets=[{"dataset_name": "train"}, {"dataset_name": "eval"}]) == {
        on_train,
        on_eval,
    }
    assert ids(filter_string="metrics.acc > 0.5") == {on_train, on_nothing}
    assert ids(filter_string="metrics.acc > 0.5", datasets=[{"dataset_name": "eval"}]) == set()
    assert ids(filter_string="metrics.acc < 0.5", datasets=[{"dataset_name": "eval"}]) == {on_eval}
    assert ids(filter_string=f"source_run_id = '{run_id}'") == {on_train, on_eval, on_nothing}


def test_source_run_id_is_kept_as_given_but_only_a_run_of_the_experiment_links(
    mlflow_env, unique_name, http
):
    client = MlflowClient()
    experiment_id = client.create_experiment(unique_name)
    elsewhere = client.create_experiment(unique_name + "-other")
    other_run = client.create_run(elsewhere).info.run_id
    own_run = client.create_run(experiment_id).info.run_id

    made_up = client.create_logged_model(experiment_id, source_run_id="123")
    foreign = client.create_logged_model(experiment_id, source_run_id=other_run)
    linked = client.create_logged_model(experiment_id, source_run_id=own_run)
    assert client.get_logged_model(made_up.model_id).source_run_id == "123"
    assert client.get_logged_model(foreign.model_id).source_run_id == other_run
    found = client.search_logged_models([experiment_id], filter_string="source_run_id = '123'")
    assert [m.model_id for m in found] == [made_up.model_id]

    def lineage_source_run(model_id: str):
        response = http.get("api/v1/lineage", node=f"logged-model:{model_id}", depth="0")
        assert response.status_code == 200, response.text
        return response.json()["nodes"][0]["source_run"]

    assert lineage_source_run(made_up.model_id) is None
    assert lineage_source_run(foreign.model_id) is None
    assert lineage_source_run(linked.model_id) is not None


def test_the_ui_lists_and_reads_a_logged_models_files(mlflow_env, unique_name, http):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(_sklearn_model(), name="model")
    model = mlflow.get_logged_model(info.model_id)
    expected = open(  # noqa: PTH123 - the client hands back a local path
        mlflow.artifacts.download_artifacts(f"{model.artifact_location}/MLmodel"), "rb"
    ).read()
    for prefix in ("ajax-api", "api"):
        base = f"{prefix}/2.0/mlflow/logged-models/{info.model_id}/artifacts"
        listing = http.get(f"{base}/directories")
        assert listing.status_code == 200, listing.text
        assert listing.json()["root_uri"] == model.artifact_location
        files = {f["path"]: f for f in listing.json()["files"]}
        assert files["MLmodel"]["is_dir"] is False
        assert files["MLmodel"]["file_size"] == len(expected)

        content = http.get(f"{base}/files", artifact_file_path="MLmodel")
        assert content.status_code == 200
        assert content.content == expected

        escape = http.get(f"{base}/files", artifact_file_path="../../../secret")
        assert escape.status_code == 400
        assert escape.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        missing = http.get(f"{base}/files")
        assert missing.status_code == 400
        assert "artifact_file_path" in missing.json()["message"]


def test_the_ui_uploads_a_file_into_a_run_and_lists_its_datasets(mlflow_env, unique_name, http):
    import pandas as pd

    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        frame = pd.DataFrame({"x": [1, 2]})
        mlflow.log_input(mlflow.data.from_pandas(frame, name="orders"), context="training")
    experiment_id = run.info.experiment_id

    uploaded = http.post(
        "ajax-api/2.0/mlflow/upload-artifact",
        params={"run_uuid": run.info.run_id, "path": "notes/readme.txt"},
        data=b"hello from the UI",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 200, uploaded.text
    client = MlflowClient()
    assert [f.path for f in client.list_artifacts(run.info.run_id, "notes")] == ["notes/readme.txt"]
    local = client.download_artifacts(run.info.run_id, "notes/readme.txt")
    assert open(local, "rb").read() == b"hello from the UI"  # noqa: PTH123

    summaries = http.post(
        "ajax-api/2.0/mlflow/experiments/search-datasets",
        json={"experiment_ids": [experiment_id]},
    )
    assert summaries.status_code == 200, summaries.text
    (summary,) = summaries.json()["dataset_summaries"]
    assert summary["experiment_id"] == experiment_id
    assert summary["name"] == "orders"
    assert summary["context"] == "training"
    none = http.post("ajax-api/2.0/mlflow/experiments/search-datasets", json={})
    assert none.status_code == 400
    assert "at least one experiment_id" in none.json()["message"]


def test_logged_model_names_follow_mlflows_rule(mlflow_env, unique_name):
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    experiment_id = client.create_experiment(unique_name)
    for bad in ("a/b", "v1.2", "x:y", "50%", "it's"):
        with pytest.raises(MlflowException) as excinfo:
            client.create_logged_model(experiment_id, name=bad)
        assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "cannot contain the following characters" in excinfo.value.message
    assert client.create_logged_model(experiment_id, name="").name  # generated, as in MLflow

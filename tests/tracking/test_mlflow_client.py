"""The unmodified MLflow client against a live Custody server (gunicorn, real HTTP)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.mlflow_client

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


def test_experiment_lifecycle(mlflow_env, unique_name):
    client = MlflowClient()
    exp_id = client.create_experiment(unique_name, tags={"team": "fraud"})
    experiment = client.get_experiment(exp_id)
    assert experiment.name == unique_name
    assert experiment.tags["team"] == "fraud"
    assert experiment.artifact_location == f"mlflow-artifacts:/{exp_id}"
    assert client.get_experiment_by_name(unique_name).experiment_id == exp_id

    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(unique_name)
    assert excinfo.value.error_code == "RESOURCE_ALREADY_EXISTS"

    client.set_experiment_tag(exp_id, "stage", "dev")
    client.rename_experiment(exp_id, unique_name + "-renamed")
    renamed = client.get_experiment(exp_id)
    assert renamed.name == unique_name + "-renamed"
    assert renamed.tags["stage"] == "dev"
    client.delete_experiment_tag(exp_id, "stage")
    assert "stage" not in client.get_experiment(exp_id).tags

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    active = {e.experiment_id for e in client.search_experiments()}
    deleted = {e.experiment_id for e in client.search_experiments(view_type=2)}
    assert exp_id not in active and exp_id in deleted
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"

    assert client.get_experiment_by_name("definitely-missing-" + unique_name) is None
    assert client.get_experiment("0").name == "Default"


def test_default_experiment_and_generated_run_name(mlflow_env):
    with mlflow.start_run() as run:
        pass
    fetched = MlflowClient().get_run(run.info.run_id)
    assert fetched.info.experiment_id == "0"
    assert fetched.info.run_name  # the server generated one
    assert fetched.data.tags["mlflow.runName"] == fetched.info.run_name
    assert fetched.info.status == "FINISHED"


def test_logging_round_trip(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 6, "loss": "log_loss"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"val_auc": 0.93, "val_acc": 0.88}, step=4)
        mlflow.set_tag("dataset_version", "orders_v2.1")
        mlflow.set_tags({"git_commit": "b7d9e4", "triggered_by": "ci"})
        mlflow.log_metric("weird", float("nan"))
        mlflow.log_metric("big", float("inf"))
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 3.0)

    client = MlflowClient()
    fetched = client.get_run(run.info.run_id)
    assert fetched.info.run_name == "train"
    assert fetched.info.status == "FINISHED"
    assert fetched.info.end_time >= fetched.info.start_time
    assert fetched.data.params == {"alpha": "0.5", "depth": "6", "loss": "log_loss"}
    assert fetched.data.metrics["loss"] == pytest.approx(0.2)  # the latest step
    assert fetched.data.metrics["val_auc"] == pytest.approx(0.93)
    assert math.isnan(fetched.data.metrics["weird"])
    assert fetched.data.metrics["big"] == math.inf
    assert fetched.data.tags["dataset_version"] == "orders_v2.1"
    assert fetched.data.tags["triggered_by"] == "ci"

    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [round(m.value, 4) for m in history] == [1.0, 0.5, 0.3333, 0.25, 0.2]

    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert child_run.data.metrics["child_metric"] == 3.0

    with pytest.raises(MlflowException) as excinfo:
        client.log_param(run.info.run_id, "alpha", "0.7")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_param(run.info.run_id, "alpha", "0.5")  # same value again is fine

    client.delete_tag(run.info.run_id, "triggered_by")
    assert "triggered_by" not in client.get_run(run.info.run_id).data.tags


def test_log_batch_splits_and_limits(mlflow_env, unique_name):
    from mlflow.entities import Metric, Param

    exp_id = MlflowClient().create_experiment(unique_name)
    client = MlflowClient()
    run = client.create_run(exp_id)
    params = [Param(f"p{i}", str(i)) for i in range(250)]  # the client splits 100+100+50
    metrics = [Metric("m", float(i), 1_700_000_000_000 + i, i) for i in range(2500)]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    fetched = client.get_run(run.info.run_id)
    assert len(fetched.data.params) == 250
    assert fetched.data.metrics["m"] == 2499.0
    assert len(client.get_metric_history(run.info.run_id, "m")) == 2500


def test_artifacts_round_trip(mlflow_env, unique_name, tmp_path):
    mlflow.set_experiment(unique_name)
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    (source / "nested" / "b.bin").write_bytes(os.urandom(300_000))
    single = tmp_path / "model.pkl"
    single.write_bytes(os.urandom(70_000))
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(source), artifact_path="data_files")
        mlflow.log_dict({"k": [1, 2]}, "cfg/config.json")
        mlflow.log_text("hello", "notes/readme.txt")

    client = MlflowClient()
    top = {f.path: f.is_dir for f in client.list_artifacts(run.info.run_id)}
    assert top == {"model.pkl": False, "data_files": True, "cfg": True, "notes": True}
    nested = {f.path for f in client.list_artifacts(run.info.run_id, "data_files")}
    assert nested == {"data_files/a.txt", "data_files/nested"}

    out = tmp_path / "out"
    out.mkdir()
    path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model.pkl", dst_path=str(out)
    )
    assert Path(path).read_bytes() == single.read_bytes()
    tree = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="data_files", dst_path=str(out)
    )
    assert (Path(tree) / "a.txt").read_text() == "alpha\n"
    assert (Path(tree) / "nested" / "b.bin").read_bytes() == (
        source / "nested" / "b.bin"
    ).read_bytes()
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/cfg/config.json") == {"k": [1, 2]}
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/readme.txt") == "hello"


def test_sklearn_log_model_and_load_from_runs_uri(mlflow_env, unique_name):
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.1]])
    y = np.array([0, 1, 0, 1])
    model = LogisticRegression().fit(X, y)
    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        mlflow.log_metric("train_acc", 1.0)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
        mlflow.log_metric("after_model", 2.0)

    client = MlflowClient()
    logged = client.get_logged_model(info.model_id)
    assert logged.status.to_proto() == 2 or str(logged.status).endswith("READY")
    assert logged.source_run_id == run.info.run_id
    outputs = client.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [info.model_id]

    loaded = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    assert loaded.predict(X).tolist() == [0, 1, 0, 1]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    assert pyfunc.predict(pd.DataFrame(X)).tolist() == [0, 1, 0, 1]

    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string="name = 'model'",
        output_format="list",
    )
    assert [m.model_id for m in found] == [info.model_id]


def test_log_input_datasets(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})
    dataset = mlflow.data.from_pandas(frame, name="orders", source="s3://bucket/orders.csv")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training", tags={"split": "train"})
    fetched = MlflowClient().get_run(run.info.run_id)
    (dataset_input,) = fetched.inputs.dataset_inputs
    assert dataset_input.dataset.name == "orders"
    assert dataset_input.dataset.digest == dataset.digest
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags == {"split": "train", "mlflow.data.context": "training"}
    assert json.loads(dataset_input.dataset.source)["uri"] == "s3://bucket/orders.csv"


def test_search_runs_filters_and_ordering(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    for i in range(6):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_param("p", str(i % 2))
            mlflow.log_metric("m", i / 10)
            mlflow.set_tag("group", "even" if i % 2 == 0 else "odd")
    exp_id = mlflow.get_experiment_by_name(unique_name).experiment_id
    client = MlflowClient()
    runs = client.search_runs(
        [exp_id], "metrics.m > 0.1 and params.p = '1'", order_by=["metrics.m DESC"]
    )
    assert [r.info.run_name for r in runs] == ["r5", "r3"]
    runs = client.search_runs([exp_id], "tags.group = 'even'", order_by=["metrics.m ASC"])
    assert [r.info.run_name for r in runs] == ["r0", "r2", "r4"]

    page = client.search_runs([exp_id], max_results=4, order_by=["attributes.run_name ASC"])
    assert [r.info.run_name for r in page] == ["r0", "r1", "r2", "r3"]
    assert page.token
    rest = client.search_runs(
        [exp_id], max_results=4, order_by=["attributes.run_name ASC"], page_token=page.token
    )
    assert [r.info.run_name for r in rest] == ["r4", "r5"]
    assert not rest.token

    frame = mlflow.search_runs(
        experiment_ids=[exp_id], filter_string="tags.group = 'odd'", order_by=["metrics.m DESC"]
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame["tags.mlflow.runName"].tolist() == ["r5", "r3", "r1"]
    assert frame["metrics.m"].tolist() == [0.5, 0.3, 0.1]
    assert set(frame["params.p"]) == {"1"}

    with pytest.raises(MlflowException) as excinfo:
        client.search_runs([exp_id], "metrics.m > 0.1 OR params.p = '1'")
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_and_restore_run(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    exp_id = run.info.experiment_id
    client = MlflowClient()
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([exp_id]) == []
    assert len(client.search_runs([exp_id], run_view_type=2)) == 1
    with pytest.raises(MlflowException) as excinfo:
        client.log_metric(run.info.run_id, "m", 2.0)
    assert excinfo.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run.info.run_id)
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run.info.run_id]

    with pytest.raises(MlflowException) as excinfo:
        client.get_run("0" * 32)
    assert excinfo.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_mlflow_runs_cli(mlflow_env, unique_name):
    mlflow.set_experiment(unique_name)
    with mlflow.start_run(run_name="cli-run") as run:
        mlflow.log_param("p", "v")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_env}
    cli = [sys.executable, "-m", "mlflow"]
    listed = subprocess.run(
        [*cli, "runs", "list", "--experiment-id", run.info.experiment_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cli-run" in listed.stdout and run.info.run_id in listed.stdout
    described = subprocess.run(
        [*cli, "runs", "describe", "--run-id", run.info.run_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    payload = json.loads(described.stdout)
    assert payload["info"]["run_id"] == run.info.run_id
    assert payload["data"]["params"] == {"p": "v"}


def test_bearer_token_and_no_credentials(mlflow_env, live_server_process, monkeypatch, unique_name):
    import requests

    created = requests.post(
        f"{mlflow_env}/api/v1/tokens",
        json={"name": "client"},
        auth=(live_server_process.username, live_server_process.password),
    )
    assert created.status_code == 201
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", created.json()["token"])
    client = MlflowClient()
    exp_id = client.create_experiment(unique_name)
    run = client.create_run(exp_id)
    assert run.info.user_id == live_server_process.username
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    with pytest.raises(MlflowException) as excinfo:
        MlflowClient().get_experiment(exp_id)
    assert excinfo.value.error_code == "UNAUTHENTICATED"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "cust_not-a-real-token")
    with pytest.raises(MlflowException) as excinfo:
        MlflowClient().get_experiment(exp_id)
    assert excinfo.value.error_code == "UNAUTHENTICATED"

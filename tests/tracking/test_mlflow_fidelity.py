"""Regression tests for the MLflow protocol differences of issue 25, through HTTP and with the
real client: strict types (tests/core/test_mlflow_protocol.py walks every endpoint), "." as
the artifact root, the UI's ajax routes and get-history-bulk."""

from __future__ import annotations

import filecmp
import uuid
from pathlib import Path

import pytest
from django.test import Client

from tests.tracking import test_artifacts_api

pytestmark = pytest.mark.django_db

AJAX = "/ajax-api/2.0/mlflow"
local_root = test_artifacts_api.local_root


def _log(api, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
    body = {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step}
    assert api.post("runs/log-metric", body).status_code == 200


def test_types_are_refused_not_coerced(api):
    """`{"name": 123}` no longer creates an experiment named "123"; `"run_id": 31` is a 400
    naming the field, not a 404."""
    from tracking.models import Experiment

    response = api.post("experiments/create", {"name": 123})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid value 123 for parameter 'name' supplied:")
    assert not Experiment.objects.filter(name="123").exists()
    for path, body in (
        ("runs/log-metric", {"key": "k", "value": 1, "timestamp": 1}),
        ("runs/log-parameter", {"key": "k", "value": "v"}),
        ("runs/set-tag", {"key": "k", "value": "v"}),
    ):
        response = api.post(path, {"run_id": 31, **body})
        assert response.status_code == 400, path
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert response.json()["message"].startswith(
            "Invalid value 31 for parameter 'run_id' supplied"
        )


def test_ajax_routes_answer_like_the_api_ones(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    _log(api, run_id, "loss", 0.5, 10, 0)
    for path in ("metrics/get-history", "runs/get"):
        params = {"run_id": run_id, "metric_key": "loss"}
        ajax = api.client.get(f"{AJAX}/{path}", params)
        assert ajax.status_code == 200, (path, ajax.content)
        assert ajax.json() == api.get(path, params).json()
    bulk = api.client.get(f"{AJAX}/metrics/get-history-bulk", {"run_id": run_id, "metric_key": "x"})
    assert bulk.status_code == 200 and bulk.json() == {"metrics": []}


def test_get_history_bulk_orders_by_run_then_time_and_limits_in_total(api):
    experiment = api.experiment()
    runs = sorted(api.run(experiment)["info"]["run_id"] for _ in range(2))
    # Logged out of order: (timestamp, step, value) decides within a run.
    for run_id in reversed(runs):
        _log(api, run_id, "loss", 3.0, 30, 1)
        _log(api, run_id, "loss", 2.0, 10, 2)
        _log(api, run_id, "loss", 1.0, 10, 1)
        _log(api, run_id, "other", 9.0, 1, 0)
    params = {"run_id": list(reversed(runs)), "metric_key": "loss"}
    metrics = api.client.get(f"{AJAX}/metrics/get-history-bulk", params).json()["metrics"]
    assert [(m["run_id"], m["timestamp"], m["step"], m["value"]) for m in metrics] == [
        (run, ts, step, value)
        for run in runs
        for ts, step, value in ((10, 1, 1.0), (10, 2, 2.0), (30, 1, 3.0))
    ]
    assert {m["key"] for m in metrics} == {"loss"}
    limited = api.client.get(f"{AJAX}/metrics/get-history-bulk", {**params, "max_results": 4})
    assert limited.json()["metrics"] == metrics[:4]


def test_get_history_bulk_validation(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    url = f"{AJAX}/metrics/get-history-bulk"
    too_many = api.client.get(url, {"run_id": [run_id] * 101, "metric_key": "loss"})
    assert too_many.status_code == 400
    assert too_many.json()["message"] == (
        "GetMetricHistoryBulk request cannot specify more than 100 run_ids. Received 101 run_ids."
    )
    no_key = api.client.get(url, {"run_id": run_id})
    assert no_key.status_code == 400
    assert no_key.json()["message"].startswith("Missing value for required parameter 'metric_key'.")
    no_run = api.client.get(url, {"metric_key": "loss"})
    assert no_run.status_code == 400
    missing = api.client.get(url, {"run_id": [run_id, uuid.uuid4().hex], "metric_key": "loss"})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_get_history_bulk_decides_on_every_run_named(api):
    """A repeated `run_id` names several runs: each is decided on, not only the first."""
    from accounts import services as accounts
    from tracking.permissions import experiment_grants_replace

    private = api.experiment()
    secret_run = api.run(private)["info"]["run_id"]
    _log(api, secret_run, "loss", 42.0, 1, 0)
    experiment_grants_replace(
        experiment_id=int(private),
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    mallory = accounts.user_create(username="mallory", role="data-scientist")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=mallory, name='t')[1]}")
    exp = client.post(
        "/api/2.0/mlflow/experiments/create", {"name": "mine"}, content_type="application/json"
    ).json()["experiment_id"]
    own_run = client.post(
        "/api/2.0/mlflow/runs/create",
        {"experiment_id": exp, "start_time": 1},
        content_type="application/json",
    ).json()["run"]["info"]["run_id"]
    response = client.get(
        f"{AJAX}/metrics/get-history-bulk", {"run_id": [own_run, secret_run], "metric_key": "loss"}
    )
    assert response.status_code == 404
    # The refusal carries no metric (the message names the run, whose id may hold any digits).
    assert set(response.json()) == {"error_code", "message", "request_id"}
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_artifact_listing_of_dot_is_the_root(api, local_root):
    run = api.run(api.experiment())["info"]
    prefix = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
    upload = api.client.generic(
        "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{prefix}/dir/a.txt", b"alpha"
    )
    assert upload.status_code == 200, upload.content
    root = api.get("artifacts/list", {"run_id": run["run_id"], "path": ""}).json()
    assert root["files"] == [{"path": "dir", "is_dir": True}]
    for spelling in (".", "./"):
        listed = api.get("artifacts/list", {"run_id": run["run_id"], "path": spelling})
        assert listed.status_code == 200, listed.content
        assert listed.json() == root
    dir_listing = api.get("artifacts/list", {"run_id": run["run_id"], "path": "dir"}).json()
    assert dir_listing["files"] == [{"path": "dir/a.txt", "is_dir": False, "file_size": 5}]
    for spelling in ("./dir", "dir/.", "./dir/./"):
        listed = api.get("artifacts/list", {"run_id": run["run_id"], "path": spelling})
        assert listed.status_code == 200, listed.content
        assert [f["is_dir"] for f in listed.json()["files"]] == [False]
    for traversal in ("..", "../x", "/etc", "dir/../..", "./..", "%2e%2e"):
        refused = api.get("artifacts/list", {"run_id": run["run_id"], "path": traversal})
        assert refused.status_code == 400, traversal
        assert refused.json()["message"].startswith("Invalid path")


# ---------------------------------------------------------------------------------------------
# The real client


@pytest.mark.mlflow_client
def test_download_artifacts_of_dot_is_byte_identical_to_the_root(mlflow_env, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n")
    (source / "nested" / "b.bin").write_bytes(bytes(range(256)) * 64)
    mlflow.set_experiment(f"dot-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source), artifact_path="data")
        mlflow.log_text("top", "top.txt")
    run_id = run.info.run_id

    downloads = {}
    for label, path in (("empty", ""), ("dot", ".")):
        out = tmp_path / f"fluent-{label}"
        out.mkdir()
        downloads[label] = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=str(out)
            )
        )
        client_out = tmp_path / f"client-{label}"
        client_out.mkdir()
        downloads[f"client-{label}"] = Path(
            MlflowClient().download_artifacts(run_id, path, str(client_out))
        )
    for label in ("dot", "client-empty", "client-dot"):
        comparison = filecmp.dircmp(downloads["empty"], downloads[label])
        assert _identical(comparison), label
    assert (downloads["dot"] / "data" / "nested" / "b.bin").read_bytes() == (
        source / "nested" / "b.bin"
    ).read_bytes()
    assert (downloads["dot"] / "top.txt").read_text() == "top"


def _identical(comparison: filecmp.dircmp) -> bool:
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(
        comparison.left, comparison.right, comparison.common_files, shallow=False
    )
    if mismatch or errors:
        return False
    return all(_identical(sub) for sub in comparison.subdirs.values())


def test_search_datasets_lists_what_the_runs_of_readable_experiments_used(api):
    from accounts import services as accounts
    from tracking.permissions import experiment_grants_replace

    experiment = api.experiment()
    run_id = api.run(experiment)["info"]["run_id"]
    dataset = {"name": "train", "digest": "abc123", "source_type": "local", "source": "{}"}
    body = {
        "run_id": run_id,
        "datasets": [
            {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]},
            {"dataset": {**dataset, "name": "raw", "digest": "d0"}},
        ],
    }
    assert api.post("runs/log-inputs", body).status_code == 200, body
    url = f"{AJAX}/experiments/search-datasets"
    response = api.client.post(url, {"experiment_ids": [experiment]}, "application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "dataset_summaries": [
            {"experiment_id": experiment, "name": "raw", "digest": "d0"},
            {
                "experiment_id": experiment,
                "name": "train",
                "digest": "abc123",
                "context": "training",
            },
        ]
    }
    for ids, message in (
        ([], "SearchDatasets request must specify at least one experiment_id."),
        (
            [experiment] * 21,
            "SearchDatasets request cannot specify more than 20 experiment_ids. "
            "Received 21 experiment_ids.",
        ),
    ):
        refused = api.client.post(url, {"experiment_ids": ids}, "application/json")
        assert refused.status_code == 400
        assert refused.json()["message"] == message
    experiment_grants_replace(
        experiment_id=int(experiment),
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    mallory = accounts.user_create(username="mallory", role="data-scientist")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=mallory, name='t')[1]}")
    hidden = client.post(url, {"experiment_ids": [experiment]}, "application/json")
    assert hidden.status_code == 200
    assert hidden.json() == {}

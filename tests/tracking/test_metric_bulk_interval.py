"""`metrics/get-history-bulk-interval` (the UI's chart route): MLflow's cross-run sampling,
MLflow's validation order, and long run lists refused with MLflow's limit as JSON."""

from __future__ import annotations

import types
import uuid

import pytest
import requests

BULK = "metrics/get-history-bulk-interval"


def _log_steps(client, run_id: str, steps) -> None:
    from mlflow.entities import Metric

    metrics = [Metric("loss", float(step) / 10, 1_700_000_000_000 + step, step) for step in steps]
    client.log_batch(run_id, metrics=metrics)


def _mlflow_oracle(histories: dict[str, list], run_ids, max_results, start_step, end_step):
    """MLflow's own sampling (AbstractStore.get_metric_history_bulk_interval) over the same
    histories, with a stand-in store that only answers get_metric_history."""
    from mlflow.store.tracking.abstract_store import AbstractStore

    store = types.SimpleNamespace(
        get_metric_history=lambda run_id, key: histories[run_id],
        _evenly_spaced_indices=AbstractStore._evenly_spaced_indices,
    )
    sampled = AbstractStore.get_metric_history_bulk_interval(
        store,
        run_ids=run_ids,
        metric_key="loss",
        max_results=max_results,
        start_step=start_step,
        end_step=end_step,
    )
    return [(m.run_id, m.step, m.value) for m in sampled]


@pytest.mark.mlflow_client
@pytest.mark.parametrize(
    ("max_results", "start_step", "end_step"), [(5, None, None), (3, 2, 13), (2500, None, None)]
)
def test_three_runs_are_sampled_together_as_mlflow_does(
    mlflow_env, live_server_process, unique_name, max_results, start_step, end_step
):
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment_id = client.create_experiment(unique_name)
    step_lists = [range(10), range(20), range(10, 15)]
    run_ids = []
    for steps in step_lists:
        run_id = client.create_run(experiment_id).info.run_id
        _log_steps(client, run_id, steps)
        run_ids.append(run_id)

    params = {"run_ids": run_ids, "metric_key": "loss", "max_results": max_results}
    if start_step is not None:
        params |= {"start_step": start_step, "end_step": end_step}
    response = requests.get(
        f"{mlflow_env}/ajax-api/2.0/mlflow/{BULK}",
        params=params,
        auth=(live_server_process.username, live_server_process.password),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    got = [(m["run_id"], m["step"], m["value"]) for m in response.json()["metrics"]]

    histories = {run_id: client.get_metric_history(run_id, "loss") for run_id in run_ids}
    assert got == _mlflow_oracle(histories, run_ids, max_results, start_step, end_step)
    if max_results == 5:
        # The first run's steps, as MLflow's own test expects them: sampled on the union of
        # all three runs' steps (0..19 every 4th, and 19), plus each run's first and last.
        assert [step for run, step, _ in got if run == run_ids[0]] == [0, 4, 8, 9]
        assert [step for run, step, _ in got if run == run_ids[2]] == [10, 12, 14]


@pytest.mark.mlflow_client
def test_a_thousand_run_ids_get_mlflows_limit_as_json_not_a_414(
    mlflow_env, live_server_process, unique_name
):
    run_ids = [uuid.uuid4().hex for _ in range(1000)]
    for prefix in ("api", "ajax-api"):
        response = requests.get(
            f"{mlflow_env}/{prefix}/2.0/mlflow/{BULK}",
            params={"run_ids": run_ids, "metric_key": "loss"},
            auth=(live_server_process.username, live_server_process.password),
            timeout=60,
        )
        assert response.status_code == 400, response.text[:300]
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert body.pop("request_id") == response.headers["X-Request-ID"]
        assert body == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "GetMetricHistoryBulkInterval request must specify at most 100 "
            "run_ids. Received 1000 run_ids.",
        }


@pytest.mark.django_db
class TestValidationOrder:
    """MLflow checks the request before looking the runs up."""

    def test_a_missing_metric_key_is_400_even_for_a_missing_run(self, api):
        response = api.get(BULK, {"run_ids": [uuid.uuid4().hex]})
        assert response.status_code == 400
        # MLflow's wording, with the sentence MLflow adds after it.
        assert response.json()["message"].startswith(
            "Missing value for required parameter 'metric_key'."
        )

    def test_missing_run_ids(self, api):
        response = api.get(BULK, {"metric_key": "loss"})
        assert response.status_code == 400
        assert "'run_ids'" in response.json()["message"]

    def test_more_than_100_runs_in_a_short_url(self, api):
        response = api.get(BULK, {"run_ids": [str(i) for i in range(101)], "metric_key": "m"})
        assert response.status_code == 400
        assert "at most 100 run_ids. Received 101 run_ids." in response.json()["message"]

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"start_step": 1}, "If either start step or end step are specified"),
            ({"start_step": 5, "end_step": 1}, "end_step must be greater than start_step"),
            ({"max_results": 0}, "max_results must be between 1 and 2500."),
            ({"max_results": 2501}, "max_results must be between 1 and 2500."),
        ],
    )
    def test_step_and_size_checks_come_before_the_run_lookup(self, api, params, message):
        response = api.get(BULK, {"run_ids": [uuid.uuid4().hex], "metric_key": "m", **params})
        assert response.status_code == 400
        assert message in response.json()["message"]

    def test_then_a_missing_run_is_404(self, api):
        response = api.get(BULK, {"run_ids": [uuid.uuid4().hex], "metric_key": "m"})
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_an_overlong_url_elsewhere_is_still_414(self, api):
        response = api.get("metrics/get-history", {"run_id": "x" * 9000, "metric_key": "m"})
        assert response.status_code == 414
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"

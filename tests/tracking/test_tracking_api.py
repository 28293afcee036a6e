"""The tracking REST API at the HTTP level: status codes, error codes, limits (protocol §3, §4)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client

from audit.models import AuditEvent
from tests.conftest import MlflowApiClient
from tracking.models import LatestMetric, Metric, Param, Run

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


def error(response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["message"]


# ------------------------------------------------------------------------------- experiments


def test_default_experiment_exists(api):
    response = api.get("experiments/get", {"experiment_id": "0"})
    assert response.status_code == 200
    experiment = response.json()["experiment"]
    assert experiment["name"] == "Default"
    assert experiment["artifact_location"] == "mlflow-artifacts:/0"
    assert experiment["lifecycle_stage"] == "active"


def test_create_experiment_errors(api):
    assert error(api.post("experiments/create", {}))[:2] == (400, "INVALID_PARAMETER_VALUE")
    assert error(api.post("experiments/create", {"name": "  "}))[:2] == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    api.experiment("dup")
    status, code, message = error(api.post("experiments/create", {"name": "dup"}))
    assert (status, code) == (400, "RESOURCE_ALREADY_EXISTS")
    assert "dup" in message
    status, code, message = error(
        api.post("experiments/create", {"name": "x", "artifact_location": "file:///etc/"})
    )
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "assigned by the server" in message
    status, code, _ = error(api.post("experiments/create", {"name": "n" * 501}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")


def test_get_experiment_errors(api):
    assert error(api.get("experiments/get", {"experiment_id": "999999"}))[:2] == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    assert error(api.get("experiments/get", {"experiment_id": "abc"}))[:2] == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert error(api.get("experiments/get-by-name", {"experiment_name": "nope"}))[:2] == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_deleted_experiment_keeps_name_and_refuses_runs(api):
    exp_id = api.experiment("gone")
    run = api.run(exp_id)
    assert api.post("experiments/delete", {"experiment_id": exp_id}).status_code == 200
    got = api.get("experiments/get-by-name", {"experiment_name": "gone"}).json()["experiment"]
    assert got["lifecycle_stage"] == "deleted"
    assert error(api.post("experiments/create", {"name": "gone"}))[1] == "RESOURCE_ALREADY_EXISTS"
    status, code, _ = error(api.post("runs/create", {"experiment_id": exp_id}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert Run.objects.get(pk=run["info"]["run_id"]).lifecycle_stage == "deleted"
    api.post("experiments/restore", {"experiment_id": exp_id})
    assert Run.objects.get(pk=run["info"]["run_id"]).lifecycle_stage == "active"


def test_experiment_search_requires_positive_max_results(api):
    status, code, message = error(api.post("experiments/search", {"max_results": 0}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "max_results" in message
    assert error(api.post("experiments/search", {"max_results": 50001}))[0] == 400
    ok = api.post("experiments/search", {"max_results": 10, "view_type": "ALL"})
    assert ok.status_code == 200
    assert "Default" in [e["name"] for e in ok.json()["experiments"]]


def test_experiment_search_without_max_results_pages_by_1000():
    """Issue #14 item 7: a search without max_results gets the client's default page
    (1000) rather than a 400; an explicit 0 is still refused (above)."""
    from django.test import Client

    from accounts import services as accounts
    from tracking.models import Experiment

    admin = accounts.user_create(username="search-admin", role="admin", password="pw-admin-1")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=admin, name='t')[1]}")
    Experiment.objects.bulk_create(
        Experiment(
            name=f"bulk-{i}",
            name_key=f"bulk-{i}",
            artifact_location=f"mlflow-artifacts:/bulk-{i}",
            creation_time=TS + i,
            last_update_time=TS + i,
        )
        for i in range(1001)
    )
    url = "/api/2.0/mlflow/experiments/search"
    for first in (
        client.post(url, {}, content_type="application/json"),
        client.get(url),
    ):
        assert first.status_code == 200, first.content
        body = first.json()
        assert len(body["experiments"]) == 1000
        rest = client.get(url, {"page_token": body["next_page_token"]})
        assert rest.status_code == 200, rest.content
        assert len(rest.json()["experiments"]) == 2  # bulk-0 and Default
        assert "next_page_token" not in rest.json()


# ------------------------------------------------------------------------------------- runs


def test_create_run_names(api):
    exp_id = api.experiment()
    generated = api.run(exp_id)
    name = generated["info"]["run_name"]
    assert name and name.count("-") == 2
    assert {"key": "mlflow.runName", "value": name} in generated["data"]["tags"]
    assert generated["info"]["status"] == "RUNNING"
    assert generated["info"]["artifact_uri"] == (
        f"mlflow-artifacts:/{exp_id}/{generated['info']['run_id']}/artifacts"
    )
    tagged = api.run(exp_id, tags=[{"key": "mlflow.runName", "value": "from-tag"}])
    assert tagged["info"]["run_name"] == "from-tag"
    status, code, _ = error(
        api.post(
            "runs/create",
            {
                "experiment_id": exp_id,
                "run_name": "a",
                "tags": [{"key": "mlflow.runName", "value": "b"}],
            },
        )
    )
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")


def test_rename_run_updates_tag(api):
    run_id = api.run(api.experiment(), run_name="before")["info"]["run_id"]
    response = api.post("runs/update", {"run_id": run_id, "run_name": "after"})
    assert response.json()["run_info"]["run_name"] == "after"
    tags = api.get("runs/get", {"run_id": run_id}).json()["run"]["data"]["tags"]
    assert {"key": "mlflow.runName", "value": "after"} in tags
    api.post("runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": "third"})
    assert api.get("runs/get", {"run_id": run_id}).json()["run"]["info"]["run_name"] == "third"


def test_get_run_accepts_run_uuid(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    assert api.get("runs/get", {"run_uuid": run_id}).status_code == 200
    assert error(api.get("runs/get", {"run_id": "f" * 32}))[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.get("runs/get", {}))[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_log_metric_validation(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    ok = {"run_id": run_id, "key": "m", "value": 1.5, "timestamp": TS, "step": 2}
    assert api.post("runs/log-metric", ok).status_code == 200
    bad_cases = [
        {**ok, "timestamp": None},
        {**ok, "value": "abc"},
        {**ok, "key": "../x"},
        {**ok, "key": "bad*key"},
        {**ok, "key": "k" * 251},
        {**ok, "step": 2**63},
        {**ok, "timestamp": 1.5},
        {**ok, "value": True},
    ]
    for body in bad_cases:
        status, code, message = error(api.post("runs/log-metric", body))
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE"), body
        assert message
    assert Metric.objects.filter(run_id=run_id).count() == 1


def test_nan_and_infinity_round_trip(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    for i, value in enumerate(["NaN", "Infinity", "-Infinity"]):
        body = {"run_id": run_id, "key": f"k{i}", "value": value, "timestamp": TS}
        assert api.post("runs/log-metric", body).status_code == 200
    metrics = {
        m["key"]: m["value"]
        for m in api.get("runs/get", {"run_id": run_id}).json()["run"]["data"]["metrics"]
    }
    assert metrics == {"k0": "NaN", "k1": "Infinity", "k2": "-Infinity"}
    history = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "k0"}).json()
    assert history["metrics"][0]["value"] == "NaN"


def test_batch_values_are_stored_exactly(api):
    """A batch's rows travel to the database as JSON on PostgreSQL: doubles keep every bit
    (shortest round-trip form), infinities among finite values and NaN keep their meaning,
    int64 extremes and text with quotes, backslashes and non-ASCII arrive as sent."""
    run_id = api.run(api.experiment())["info"]["run_id"]
    values = [0.1, 1 / 3, -2.5e-308, 1.7976931348623157e308, "Infinity", "-Infinity", "NaN"]
    text = 'say "hi" \\ naïve 東京 \t end'
    body = {
        "run_id": run_id,
        "metrics": [
            {"key": "m", "value": v, "timestamp": TS, "step": step} for step, v in enumerate(values)
        ]
        + [{"key": "edge", "value": 1.0, "timestamp": 2**63 - 1, "step": -(2**63)}],
        "params": [{"key": "p", "value": text}],
        "tags": [{"key": "t", "value": text}],
    }
    assert api.post("runs/log-batch", body).status_code == 200
    history = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "m"}).json()
    assert [p["value"] for p in sorted(history["metrics"], key=lambda p: int(p["step"]))] == values
    run = api.get("runs/get", {"run_id": run_id}).json()["run"]
    assert run["data"]["params"] == [{"key": "p", "value": text}]
    assert {"key": "t", "value": text} in run["data"]["tags"]
    (edge,) = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "edge"}).json()[
        "metrics"
    ]
    assert (int(edge["timestamp"]), int(edge["step"])) == (2**63 - 1, -(2**63))
    latest = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert latest["m"] == "NaN"  # the highest step's point, whatever its value


def test_latest_metric_is_largest_step_then_timestamp(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    points = [(5, TS, 1.0), (3, TS + 10, 2.0), (5, TS + 5, 3.0), (5, TS + 5, 0.5)]
    api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [
                {"key": "m", "value": v, "timestamp": ts, "step": s} for s, ts, v in points
            ],
        },
    )
    latest = LatestMetric.objects.get(run_id=run_id, key="m")
    assert (latest.step, latest.timestamp, latest.value) == (5, TS + 5, 3.0)
    api.post(
        "runs/log-metric",
        {"run_id": run_id, "key": "m", "value": 9.0, "timestamp": TS, "step": 4},
    )
    assert LatestMetric.objects.get(run_id=run_id, key="m").value == 3.0


def test_duplicate_metric_points_are_accepted_once(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    body = {
        "run_id": run_id,
        "metrics": [{"key": "m", "value": 0.5, "timestamp": TS, "step": 1}],
    }
    assert api.post("runs/log-batch", body).status_code == 200
    body["metrics"][0]["model_id"] = "m-abc"
    assert api.post("runs/log-batch", body).status_code == 200
    assert Metric.objects.filter(run_id=run_id).count() == 1


def test_params_are_immutable_and_truncated(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    assert (
        api.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}).status_code
        == 200
    )
    assert (
        api.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}).status_code
        == 200
    )
    status, code, message = error(
        api.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "2"})
    )
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values is not allowed" in message
    long_value = "x" * 6001
    assert (
        api.post(
            "runs/log-parameter", {"run_id": run_id, "key": "long", "value": long_value}
        ).status_code
        == 200
    )
    assert len(Param.objects.get(run_id=run_id, key="long").value) == 6000
    status, code, message = error(
        api.post(
            "runs/log-batch",
            {
                "run_id": run_id,
                "params": [{"key": "d", "value": "1"}, {"key": "d", "value": "2"}],
            },
        )
    )
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "Duplicate parameter keys" in message


def test_log_batch_limits(api):
    run_id = api.run(api.experiment())["info"]["run_id"]

    def metrics(n):
        return [{"key": f"m{i}", "value": 1.0, "timestamp": TS, "step": 0} for i in range(n)]

    def kvs(n, prefix):
        return [{"key": f"{prefix}{i}", "value": "v"} for i in range(n)]

    at_limit = {"run_id": run_id, "metrics": metrics(1000)}
    assert api.post("runs/log-batch", at_limit).status_code == 200
    over = [
        {"run_id": run_id, "metrics": metrics(1001)},
        {"run_id": run_id, "params": kvs(101, "p")},
        {"run_id": run_id, "tags": kvs(101, "t")},
        {"run_id": run_id, "metrics": metrics(950), "params": kvs(51, "p")},
    ]
    for body in over:
        status, code, message = error(api.post("runs/log-batch", body))
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
        assert "at most" in message
    # Nothing of a refused batch was written.
    assert not Param.objects.filter(run_id=run_id).exists()


def test_batch_is_all_or_nothing(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    api.post("runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"})
    body = {
        "run_id": run_id,
        "metrics": [{"key": "m", "value": 1.0, "timestamp": TS}],
        "params": [{"key": "new", "value": "n"}, {"key": "p", "value": "changed"}],
        "tags": [{"key": "t", "value": "v"}],
    }
    status, code, message = error(api.post("runs/log-batch", body))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
    assert "key='p' was already logged with value='1'" in message
    assert "new value 'changed'" in message
    run = api.get("runs/get", {"run_id": run_id}).json()["run"]
    assert run["data"]["metrics"] == []
    assert {"key": "t", "value": "v"} not in run["data"]["tags"]
    assert run["data"]["params"] == [{"key": "p", "value": "1"}]
    # The same batch with the stored value is accepted, and writes the rest.
    body["params"][1]["value"] = "1"
    assert api.post("runs/log-batch", body).status_code == 200
    run = api.get("runs/get", {"run_id": run_id}).json()["run"]
    assert sorted(p["key"] for p in run["data"]["params"]) == ["new", "p"]
    assert [m["key"] for m in run["data"]["metrics"]] == ["m"]
    assert {"key": "t", "value": "v"} in run["data"]["tags"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_setting_one_param_differently_keep_exactly_one(scientist_token):
    """Writers of one run take no lock on it: the param's unique index decides. Of eight
    batches that each give param "p" its own value, with a metric and a tag, exactly one is
    kept whole; the others are refused with MLflow's message and leave nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement batch is PostgreSQL's; run with DATABASE_URL=postgres://")
    api = MlflowApiClient(Client(HTTP_AUTHORIZATION=f"Bearer {scientist_token}"))
    run_id = api.run(api.experiment())["info"]["run_id"]
    writers = 8
    start = threading.Barrier(writers)
    answers: dict[int, tuple[int, str]] = {}

    def write(n: int) -> None:
        try:
            mine = MlflowApiClient(Client(HTTP_AUTHORIZATION=f"Bearer {scientist_token}"))
            start.wait()
            response = mine.post(
                "runs/log-batch",
                {
                    "run_id": run_id,
                    "params": [{"key": "p", "value": str(n)}],
                    "metrics": [{"key": f"m{n}", "value": 1.0, "timestamp": TS}],
                    "tags": [{"key": f"t{n}", "value": "v"}],
                },
            )
            answers[n] = (response.status_code, response.content.decode())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = [n for n, (status, _) in answers.items() if status == 200]
    assert len(kept) == 1, answers
    (winner,) = kept
    for n, (status, content) in answers.items():
        if n != winner:
            assert status == 400, content
            assert f"key='p' was already logged with value='{winner}'" in content
    run = api.get("runs/get", {"run_id": run_id}).json()["run"]
    assert run["data"]["params"] == [{"key": "p", "value": str(winner)}]
    assert [m["key"] for m in run["data"]["metrics"]] == [f"m{winner}"]
    assert [t["key"] for t in run["data"]["tags"] if t["key"].startswith("t")] == [f"t{winner}"]


def test_writes_to_deleted_run_are_refused(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    api.post("runs/delete", {"run_id": run_id})
    for path, body in [
        ("runs/log-metric", {"key": "m", "value": 1, "timestamp": TS}),
        ("runs/log-parameter", {"key": "p", "value": "1"}),
        ("runs/set-tag", {"key": "t", "value": "v"}),
        ("runs/log-batch", {"params": [{"key": "p", "value": "1"}]}),
        ("runs/update", {"status": "FINISHED", "end_time": TS}),
    ]:
        status, code, message = error(api.post(path, {"run_id": run_id, **body}))
        assert (status, code) == (400, "INVALID_PARAMETER_VALUE")
        assert "active" in message


def test_delete_missing_tag(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    assert error(api.post("runs/delete-tag", {"run_id": run_id, "key": "nope"}))[:2] == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )


def test_metric_history_paging(api):
    run_id = api.run(api.experiment())["info"]["run_id"]
    api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [
                {"key": "m", "value": float(i), "timestamp": TS + i, "step": i} for i in range(7)
            ],
        },
    )
    page = api.get("metrics/get-history", {"run_id": run_id, "metric_key": "m", "max_results": 3})
    body = page.json()
    assert [m["step"] for m in body["metrics"]] == [0, 1, 2]
    steps = [m["step"] for m in body["metrics"]]
    while body.get("next_page_token"):
        body = api.get(
            "metrics/get-history",
            {
                "run_id": run_id,
                "metric_key": "m",
                "max_results": 3,
                "page_token": body["next_page_token"],
            },
        ).json()
        steps += [m["step"] for m in body["metrics"]]
    assert steps == list(range(7))
    assert api.get("metrics/get-history", {"run_id": run_id, "metric_key": "zz"}).json() == {}
    bad = api.get(
        "metrics/get-history", {"run_id": run_id, "metric_key": "m", "page_token": "garbage"}
    )
    assert error(bad)[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_log_inputs_dedupes_datasets(api):
    exp_id = api.experiment()
    dataset = {
        "name": "orders",
        "digest": "abc123",
        "source_type": "local",
        "source": '{"uri": "/data/orders.csv"}',
    }
    tags = [{"key": "mlflow.data.context", "value": "training"}]
    runs = [api.run(exp_id)["info"]["run_id"] for _ in range(2)]
    for run_id in runs:
        for _ in range(2):
            body = {"run_id": run_id, "datasets": [{"tags": tags, "dataset": dataset}]}
            assert api.post("runs/log-inputs", body).status_code == 200
    from tracking.models import Dataset, RunInput

    assert Dataset.objects.filter(experiment_id=exp_id).count() == 1
    assert RunInput.objects.filter(run_id__in=runs).count() == 2
    assert RunInput.objects.filter(run_id=runs[0]).get().context == "training"
    too_long = {**dataset, "digest": "d" * 37}
    assert (
        api.post(
            "runs/log-inputs", {"run_id": runs[0], "datasets": [{"dataset": too_long}]}
        ).status_code
        == 400
    )


def test_logged_model_lifecycle(api):
    exp_id = api.experiment()
    run_id = api.run(exp_id)["info"]["run_id"]
    created = api.post(
        "logged-models",
        {
            "experiment_id": exp_id,
            "name": "model",
            "source_run_id": run_id,
            "params": [{"key": "alpha", "value": "0.1"}],
            "tags": [{"key": "mlflow.user", "value": "me"}],
        },
    )
    assert created.status_code == 200
    info = created.json()["model"]["info"]
    model_id = info["model_id"]
    assert model_id.startswith("m-")
    assert info["status"] == "LOGGED_MODEL_PENDING"
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp_id}/models/{model_id}/artifacts"
    assert (
        api.post(
            "runs/outputs", {"run_id": run_id, "models": [{"model_id": model_id, "step": 0}]}
        ).status_code
        == 200
    )
    api.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "metrics": [{"key": "acc", "value": 0.9, "timestamp": TS, "model_id": model_id}],
        },
    )
    patched = api.patch(
        f"logged-models/{model_id}", {"model_id": model_id, "status": "LOGGED_MODEL_READY"}
    )
    assert patched.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    api.patch(f"logged-models/{model_id}/tags", {"tags": [{"key": "k", "value": "v"}]})
    got = api.get(f"logged-models/{model_id}").json()["model"]
    assert {"key": "k", "value": "v"} in got["info"]["tags"]
    assert got["data"]["params"] == [{"key": "alpha", "value": "0.1"}]
    assert got["data"]["metrics"][0]["key"] == "acc"
    assert got["data"]["metrics"][0]["run_id"] == run_id
    run = api.get("runs/get", {"run_id": run_id}).json()["run"]
    assert run["outputs"] == {"model_outputs": [{"model_id": model_id, "step": 0}]}
    assert api.client.delete(f"/api/2.0/mlflow/logged-models/{model_id}/tags/k").status_code == 200
    assert api.delete(f"logged-models/{model_id}").status_code == 200
    assert error(api.get(f"logged-models/{model_id}"))[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
    assert api.get(f"logged-models/{model_id}", {"allow_deleted": "true"}).status_code == 200
    bad = api.patch(f"logged-models/{model_id}", {"status": "SOMETHING"})
    assert error(bad)[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_lifecycle_changes_are_audited(api):
    before = AuditEvent.objects.count()
    exp_id = api.experiment("audited")
    run_id = api.run(exp_id)["info"]["run_id"]
    api.post("runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": TS})
    api.post("runs/delete", {"run_id": run_id})
    api.post("runs/restore", {"run_id": run_id})
    api.post("experiments/delete", {"experiment_id": exp_id})
    actions = list(
        AuditEvent.objects.filter(seq__gt=before).order_by("seq").values_list("action", flat=True)
    )
    assert actions == [
        "experiment.create",
        "run.create",
        "run.delete",
        "run.restore",
        "experiment.delete",
    ]
    refused = api.post("experiments/create", {"name": "audited"})
    assert refused.status_code == 400
    assert AuditEvent.objects.count() == before + 5


def test_wrong_method_is_a_json_error(api):
    response = api.client.get("/api/2.0/mlflow/runs/create")
    assert response.status_code == 405
    assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "POST" in response["Allow"]


def test_camel_case_fields_are_accepted(api):
    exp_id = api.experiment()
    response = api.post("runs/create", {"experimentId": exp_id, "runName": "camel"})
    assert response.json()["run"]["info"]["run_name"] == "camel"
    both = api.post("runs/create", {"experimentId": exp_id, "experiment_id": exp_id})
    assert error(both)[:2] == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "variant",
    ["FRAUD-models", "ｆｒａｕｄ-models", "fraud-models"],
)
def test_experiment_names_have_one_identity(api, variant):
    api.experiment("fraud-models")
    status, code, message = error(api.post("experiments/create", {"name": variant}))
    assert (status, code) == (400, "RESOURCE_ALREADY_EXISTS")
    assert "fraud-models" in message


@pytest.mark.parametrize(
    "name",
    [" padded", "padded ", "zero\u200bwidth", "rtl\u202eoverride", "line\u2028sep", "tab\tname"],
)
def test_experiment_names_refuse_invisible_characters(api, name):
    status, code, _ = error(api.post("experiments/create", {"name": name}))
    assert (status, code) == (400, "INVALID_PARAMETER_VALUE")


def test_nfd_and_nfc_spellings_are_one_name(api):
    exp_id = api.experiment("caf\u00e9")
    got = api.get("experiments/get-by-name", {"experiment_name": "cafe\u0301"})
    # The stored name is NFC; the decomposed spelling names the same experiment.
    assert error(api.post("experiments/create", {"name": "cafe\u0301"}))[1] == (
        "RESOURCE_ALREADY_EXISTS"
    )
    assert got.json()["experiment"]["experiment_id"] == exp_id

"""Writes to a run decided on from the run's cached experiment (PostgreSQL): log-metric,
log-batch, log-parameter, set-tag and runs/update take the experiment of a run this process has seen from
its cache instead of reading the run, and their one statement writes only if the run is
still active in that experiment. Whatever happened to the run since it was cached, the
answer is the one a fresh look-up gives, and nothing is written that it would refuse."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts
from tests.conftest import MlflowApiClient
from tracking import services as tracking
from tracking.models import LatestMetric, Metric, Param, Run, RunTag

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

WRITES = {
    "runs/log-metric": lambda run_id, step: {
        "run_id": run_id,
        "key": "loss",
        "value": 0.5,
        "timestamp": 1,
        "step": step,
    },
    "runs/log-batch": lambda run_id, step: {
        "run_id": run_id,
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": step}],
        "params": [{"key": f"p{step}", "value": "v"}],
        "tags": [{"key": "t", "value": str(step)}],
    },
    "runs/log-parameter": lambda run_id, step: {
        "run_id": run_id,
        "key": f"p{step}",
        "value": "v",
    },
    "runs/set-tag": lambda run_id, step: {"run_id": run_id, "key": "t", "value": str(step)},
    "runs/update": lambda run_id, step: {"run_id": run_id, "status": "RUNNING", "end_time": step},
}


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("decisions from the cached experiment are PostgreSQL's; SQLite reads the run")


@pytest.fixture
def alice():
    user = accounts.user_create(username="alice", role="data-scientist")
    return MlflowApiClient(
        Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")
    )


@pytest.fixture
def bob():
    user = accounts.user_create(username="bob", role="data-scientist")
    return MlflowApiClient(
        Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")
    )


def _written(run_id: str) -> tuple:
    return (
        Metric.objects.filter(run_id=run_id).count(),
        list(LatestMetric.objects.filter(run_id=run_id).values_list("step", "history_version")),
        Param.objects.filter(run_id=run_id).count(),
        list(RunTag.objects.filter(run_id=run_id, key="t").values_list("value", flat=True)),
        list(Run.objects.filter(pk=run_id).values_list("end_time", flat=True)),
    )


def _warm(api: MlflowApiClient, route: str, run_id: str) -> None:
    """The first write reads the run (and caches its experiment); the second is decided on
    from the cache, in one statement."""
    for step in (1, 2):
        response = api.post(route, WRITES[route](run_id, step))
        assert response.status_code == 200, response.content
    with CaptureQueriesContext(connection) as queries:
        response = api.post(route, WRITES[route](run_id, 3))
    assert response.status_code == 200, response.content
    # no read of the run: the one statement (with the test transaction's savepoint for params)
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any(sql.startswith('SELECT "tracking_run".') for sql in statements), statements
    written = ("WITH live AS", 'UPDATE "tracking_run"')
    assert any(sql.startswith(written) for sql in statements), statements


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_run_deleted_after_it_was_cached_refuses_the_write(alice, route):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, route, run_id)
    before = _written(run_id)
    tracking.run_delete(run_id=run_id)
    response = alice.post(route, WRITES[route](run_id, 4))
    assert response.status_code == 400, response.content
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "must be in the 'active' state" in response.json()["message"]
    assert _written(run_id) == before
    tracking.run_restore(run_id=run_id)  # and restored, it is written to again
    response = alice.post(route, WRITES[route](run_id, 5))
    assert response.status_code == 200, response.content
    assert _written(run_id) != before


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_run_gone_for_good_after_it_was_cached_is_not_found(alice, route):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, route, run_id)
    Run.objects.filter(pk=run_id).delete()
    response = alice.post(route, WRITES[route](run_id, 4))
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _written(run_id) == (0, [], 0, [], [])


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_run_found_in_another_experiment_is_decided_on_there(alice, bob, route):
    """A run never changes experiment through Custody; should it all the same (a run
    collected for good and imported again under its old id into another experiment), the
    cached experiment decides nothing: the write is decided on the run as stored. Alice
    may only read Bob's experiment."""
    bobs = int(bob.experiment("bobs"))  # before the warm-up: a grant change empties the cache
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, route, run_id)
    before = _written(run_id)
    Run.objects.filter(pk=run_id).update(experiment_id=bobs)
    response = alice.post(route, WRITES[route](run_id, 4))
    assert response.status_code == 403, response.content
    assert response.json()["error_code"] == "PERMISSION_DENIED"
    assert _written(run_id) == before


@pytest.mark.parametrize("route", sorted(WRITES))
def test_a_grant_taken_back_after_the_run_was_cached_refuses_the_write(alice, bob, route):
    from tracking import permissions

    experiment_id = bob.experiment("shared")
    permissions.experiment_grant_put(
        experiment_id=int(experiment_id), grant={"user": "alice", "level": "EDIT"}
    )
    run_id = alice.run(experiment_id)["info"]["run_id"]
    _warm(alice, route, run_id)
    before = _written(run_id)
    permissions.experiment_grant_put(
        experiment_id=int(experiment_id), grant={"user": "alice", "level": "READ"}
    )
    response = alice.post(route, WRITES[route](run_id, 4))
    assert response.status_code == 403, response.content
    assert _written(run_id) == before


def test_a_changed_param_through_the_cached_decision_keeps_nothing_of_the_batch(alice):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, "runs/log-batch", run_id)
    before = _written(run_id)
    response = alice.post(
        "runs/log-batch",
        {
            "run_id": run_id,
            "params": [{"key": "p1", "value": "changed"}, {"key": "new", "value": "v"}],
            "metrics": [{"key": "loss", "value": 9.0, "timestamp": 1, "step": 99}],
        },
    )
    assert response.status_code == 400, response.content
    assert "Changing param values is not allowed" in response.json()["message"]
    assert _written(run_id) == before


def test_a_rename_through_the_cached_decision_renames_the_run(alice):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, "runs/set-tag", run_id)
    response = alice.post(
        "runs/set-tag", {"run_id": run_id, "key": "mlflow.runName", "value": "renamed"}
    )
    assert response.status_code == 200, response.content
    assert Run.objects.get(pk=run_id).name == "renamed"


def _read(api: MlflowApiClient, run_id: str):
    return api.get("runs/get", {"run_id": run_id})


def _warm_read(api: MlflowApiClient, run_id: str) -> dict:
    """The first read reads the run (and caches its experiment); the next reads the run row
    with everything else, in one query, from the cached experiment."""
    first = _read(api, run_id)
    assert first.status_code == 200, first.content
    with CaptureQueriesContext(connection) as queries:
        response = _read(api, run_id)
    assert response.status_code == 200, response.content
    # (the cache's version poll aside, which any request may make)
    statements = [q["sql"] for q in queries.captured_queries if "core_cacheversion" not in q["sql"]]
    assert len(statements) == 1, statements
    assert "experiment_id = " in statements[0], statements
    assert response.json() == first.json()  # the same answer either way
    return response.json()["run"]


def test_a_run_read_from_the_cached_experiment_answers_as_the_stored_run(alice):
    experiment_id = alice.experiment("cached")
    run = alice.run(experiment_id)
    run_id = run["info"]["run_id"]
    for route in sorted(WRITES):
        assert alice.post(route, WRITES[route](run_id, 1)).status_code == 200
    response = alice.post(
        "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_000_123}
    )
    assert response.status_code == 200, response.content
    read = _warm_read(alice, run_id)
    assert read["info"] == {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": run["info"]["run_name"],
        "experiment_id": experiment_id,
        "user_id": "alice",
        "status": "FINISHED",
        "start_time": run["info"]["start_time"],
        "end_time": 1_700_000_000_123,
        "artifact_uri": run["info"]["artifact_uri"],
        "lifecycle_stage": "active",
    }
    assert {m["key"] for m in read["data"]["metrics"]} == {"loss"}
    assert {p["key"] for p in read["data"]["params"]} == {"p1"}
    assert {"key": "t", "value": "1"} in read["data"]["tags"]
    # a deleted run still reads, as deleted (MLflow answers deleted runs)
    tracking.run_delete(run_id=run_id)
    response = _read(alice, run_id)
    assert response.status_code == 200, response.content
    assert response.json()["run"]["info"]["lifecycle_stage"] == "deleted"


def test_a_run_read_after_it_is_gone_for_good_is_not_found(alice):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm_read(alice, run_id)
    Run.objects.filter(pk=run_id).delete()
    response = _read(alice, run_id)
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_run_read_found_in_another_experiment_is_decided_on_there(alice, bob):
    """Moved behind the cache's back into an experiment Alice may not read: not found (a run
    the caller may not read is not shown to exist), and no part of the run is answered from
    the cached decision."""
    bobs = bob.experiment("bobs")
    from tracking import permissions

    permissions.experiment_grant_put(
        experiment_id=int(bobs), grant={"user": "alice", "level": "NONE"}
    )
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm_read(alice, run_id)
    Run.objects.filter(pk=run_id).update(experiment_id=int(bobs))
    response = _read(alice, run_id)
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # where the caller may read, the run answers from where it is now
    permissions.experiment_grant_put(
        experiment_id=int(bobs), grant={"user": "alice", "level": "READ"}
    )
    response = _read(alice, run_id)
    assert response.status_code == 200, response.content
    assert response.json()["run"]["info"]["experiment_id"] == bobs


def test_a_read_grant_taken_back_after_the_run_was_cached_refuses_the_read(alice, bob):
    from tracking import permissions

    experiment_id = bob.experiment("shared")
    run_id = bob.run(experiment_id)["info"]["run_id"]
    permissions.experiment_grant_put(
        experiment_id=int(experiment_id), grant={"user": "alice", "level": "READ"}
    )
    _warm_read(alice, run_id)
    permissions.experiment_grant_put(
        experiment_id=int(experiment_id), grant={"user": "alice", "level": "NONE"}
    )
    response = _read(alice, run_id)
    assert response.status_code == 404, response.content
    assert "run" not in response.json()


def test_a_run_this_process_created_is_written_to_without_reading_it(
    alice, django_capture_on_commit_callbacks
):
    """runs/create leaves the new run's experiment in the cache once it commits: the
    training job's first write after it (a batch, then the closing runs/update) reads no run."""
    experiment_id = alice.experiment("created")
    with django_capture_on_commit_callbacks(execute=True):
        run_id = alice.run(experiment_id)["info"]["run_id"]
    for route in ("runs/log-batch", "runs/update"):
        with CaptureQueriesContext(connection) as queries:
            response = alice.post(route, WRITES[route](run_id, 1))
        assert response.status_code == 200, response.content
        statements = [q["sql"] for q in queries.captured_queries]
        assert not any(sql.startswith('SELECT "tracking_run".') for sql in statements), statements
    assert _written(run_id) == (1, [(1, 1)], 1, ["1"], [1])
    info = alice.get("runs/get", {"run_id": run_id}).json()["run"]["info"]
    assert (info["status"], info["end_time"]) == ("RUNNING", 1)


def test_an_update_through_the_cached_decision_answers_as_the_stored_run(alice):
    run_id = alice.run(alice.experiment("cached"))["info"]["run_id"]
    _warm(alice, "runs/update", run_id)
    finished = alice.post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 9})
    assert finished.status_code == 200, finished.content
    stored = alice.get("runs/get", {"run_id": run_id}).json()["run"]["info"]
    assert finished.json()["run_info"] == stored
    assert (stored["status"], stored["end_time"]) == ("FINISHED", 9)
    renamed = alice.post("runs/update", {"run_id": run_id, "run_name": "renamed"})
    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["run_info"]["run_name"] == "renamed"
    assert Run.objects.get(pk=run_id).name == "renamed"
    assert RunTag.objects.get(run_id=run_id, key="mlflow.runName").value == "renamed"

"""A run's or logged model's files are read and written with no look-up once the process has
seen it: its experiment, artifact directory and lifecycle stage come from the process's
artifact-owner cache, whose version the database's own triggers change with any of those
facts (tracking migration 0010). Whatever happens to the owner or the caller's grants
afterwards, a read or an upload answers as a fresh look-up would: at once in the process
that made the change, within the poll interval when the change came another way (another
process, a queryset update, raw SQL)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts
from core import access
from tests.conftest import MlflowApiClient
from tracking import services as tracking
from tracking.models import Experiment, LoggedModel, Run

pytestmark = pytest.mark.django_db

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def alice(settings):
    settings.CUSTODY_CACHE_POLL_SECONDS = 60  # within one poll interval, as in production
    user = accounts.user_create(username="alice", role="data-scientist")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")
    return MlflowApiClient(client)


def _stored_file(api: MlflowApiClient, name: str) -> tuple[str, str, str]:
    experiment_id = api.experiment(name)
    run_id = api.run(experiment_id)["info"]["run_id"]
    url = f"{ARTIFACTS}/{experiment_id}/{run_id}/artifacts/model.txt"
    response = api.client.generic("PUT", url, b"weights")
    assert response.status_code == 200, response.content
    return experiment_id, run_id, url


def _download(api: MlflowApiClient, url: str):
    with CaptureQueriesContext(connection) as queries:
        response = api.client.get(url)
    return response, len(queries)


def test_a_seen_runs_files_are_read_with_no_query_and_the_same_bytes(alice):
    _, run_id, url = _stored_file(alice, "reads")
    first, _ = _download(alice, url)
    assert first.status_code == 200 and b"".join(first.streaming_content) == b"weights"
    again, queries = _download(alice, url)
    assert again.status_code == 200 and b"".join(again.streaming_content) == b"weights"
    assert queries == 0
    # A deleted run's files are still served (as MLflow serves them), from the cache too.
    tracking.run_delete(run_id=run_id)
    deleted, _ = _download(alice, url)
    assert deleted.status_code == 200 and b"".join(deleted.streaming_content) == b"weights"
    # The deletion dropped the process's owners: an upload to the deleted run is refused.
    refused = alice.client.generic("PUT", url.replace("model.txt", "more.txt"), b"x")
    assert refused.status_code == 400, refused.content
    assert "deleted" in refused.json()["message"]


def _upload(api: MlflowApiClient, url: str, name: str):
    with CaptureQueriesContext(connection) as queries:
        response = api.client.generic("PUT", url.replace("model.txt", name), b"more")
    return response, len(queries)


def test_uploads_follow_a_run_deleted_and_restored_through_the_api_at_once(alice):
    experiment_id, run_id, url = _stored_file(alice, "uploads")
    response, queries = _upload(alice, url, "a.txt")
    assert response.status_code == 200 and queries == 0  # decided from the cache
    for deleted, route, body in (
        (True, "runs/delete", {"run_id": run_id}),
        (False, "runs/restore", {"run_id": run_id}),
        (True, "experiments/delete", {"experiment_id": experiment_id}),
        (False, "experiments/restore", {"experiment_id": experiment_id}),
    ):
        assert alice.post(route, body).status_code == 200
        response, _ = _upload(alice, url, "b.txt")
        assert response.status_code == (400 if deleted else 200), (route, response.content)
        if deleted:
            assert "deleted" in response.json()["message"]


@pytest.mark.parametrize("how", ["queryset", "sql"])
def test_a_lifecycle_change_behind_the_services_back_is_seen_within_the_poll_interval(
    alice, settings, how
):
    _, run_id, url = _stored_file(alice, f"behind-{how}")
    response, queries = _upload(alice, url, "a.txt")
    assert response.status_code == 200 and queries == 0

    def set_stage(stage: str) -> None:
        if how == "queryset":  # no signal: only the database's trigger knows
            assert Run.objects.filter(pk=run_id).update(lifecycle_stage=stage) == 1
        else:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE tracking_run SET lifecycle_stage = %s WHERE run_id = %s",
                    [stage, run_id],
                )

    set_stage("deleted")
    settings.CUSTODY_CACHE_POLL_SECONDS = 0  # the poll interval has passed
    response, _ = _upload(alice, url, "b.txt")
    assert response.status_code == 400, response.content
    assert "deleted" in response.json()["message"]
    settings.CUSTODY_CACHE_POLL_SECONDS = 60
    set_stage("active")
    settings.CUSTODY_CACHE_POLL_SECONDS = 0
    response, _ = _upload(alice, url, "c.txt")
    assert response.status_code == 200, response.content


def test_a_logged_models_files_follow_its_deletion(alice, settings):
    experiment_id = alice.experiment("logged")
    created = alice.post("logged-models", {"experiment_id": experiment_id, "name": "m"})
    assert created.status_code == 200, created.content
    model_id = created.json()["model"]["info"]["model_id"]
    url = f"{ARTIFACTS}/{experiment_id}/models/{model_id}/artifacts/model.txt"
    first = alice.client.generic("PUT", url, b"weights")
    assert first.status_code == 200, first.content
    response, queries = _upload(alice, url, "MLmodel")
    assert response.status_code == 200 and queries == 0
    downloaded, queries = _download(alice, url)
    assert b"".join(downloaded.streaming_content) == b"weights" and queries == 0
    # Behind the services' back first (the trigger), then through the API (at once).
    assert LoggedModel.objects.filter(pk=model_id).update(lifecycle_stage="deleted") == 1
    settings.CUSTODY_CACHE_POLL_SECONDS = 0
    response, _ = _upload(alice, url, "late.txt")
    assert response.status_code == 400 and "deleted" in response.json()["message"]
    LoggedModel.objects.filter(pk=model_id).update(lifecycle_stage="active")
    assert _upload(alice, url, "back.txt")[0].status_code == 200
    settings.CUSTODY_CACHE_POLL_SECONDS = 60
    assert alice.delete(f"logged-models/{model_id}").status_code == 200
    response, _ = _upload(alice, url, "after.txt")
    assert response.status_code == 400 and "deleted" in response.json()["message"]


def test_a_run_gone_for_good_after_it_was_read_is_not_found(alice):
    _, run_id, url = _stored_file(alice, "gone")
    assert _download(alice, url)[0].status_code == 200
    Run.objects.filter(pk=run_id).delete()
    response, _ = _download(alice, url)
    assert response.status_code == 404, response.content
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    listing = alice.client.get(ARTIFACTS, {"path": url.removeprefix(f"{ARTIFACTS}/")})
    assert listing.status_code == 200 and listing.json() == {}


def test_an_experiment_gone_for_good_takes_its_cached_locations_with_it(alice):
    experiment_id, run_id, url = _stored_file(alice, "gone-experiment")
    assert _download(alice, url)[0].status_code == 200
    Run.objects.filter(pk=run_id).delete()
    Experiment.objects.filter(pk=experiment_id).delete()
    response, _ = _download(alice, url)
    assert response.status_code == 404, response.content


def test_a_grant_taken_back_refuses_the_next_read(alice, settings):
    settings.CUSTODY_DEFAULT_PERMISSION = access.NONE
    bob_user = accounts.user_create(username="bob", role="data-scientist")
    bob = MlflowApiClient(
        Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=bob_user, name='t')[1]}")
    )
    experiment_id, _, url = _stored_file(alice, "shared")
    grants = f"/api/v1/experiments/{experiment_id}/permissions"
    added = alice.client.post(grants, {"user": "bob", "level": "READ"}, "application/json")
    assert added.status_code in (200, 201), added.content
    assert _download(bob, url)[0].status_code == 200
    assert _download(bob, url)[0].status_code == 200  # from the cache
    removed = alice.client.delete(f"{grants}?user=bob")
    assert removed.status_code in (200, 204), removed.content
    response, _ = _download(bob, url)
    assert response.status_code in (403, 404), response.content

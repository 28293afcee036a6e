"""A run's files are read with no query once the process has seen the run: the run's
location (its experiment and artifact directory) never changes, so reads take it from the
process's cache. Whatever happens to the run or the caller's grants afterwards, a read
answers as a fresh look-up would."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts
from core import access
from tests.conftest import MlflowApiClient
from tracking import services as tracking
from tracking.models import Experiment, Run

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
    # Writes are never decided from it: an upload to the deleted run is refused.
    refused = alice.client.generic("PUT", url.replace("model.txt", "more.txt"), b"x")
    assert refused.status_code == 400, refused.content
    assert "deleted" in refused.json()["message"]


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

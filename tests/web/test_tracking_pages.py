"""Experiment, run and compare pages: what a user may not read stays hidden, query counts do
not grow with rows, column choice, sorting, chart sampling, paging and inline errors."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as accounts
from tracking import services as tracking
from tracking.permissions import experiment_grants_replace

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def new_run(experiment_id, name: str, tags: list | None = None, **log) -> str:
    run = tracking.run_create(
        experiment_id=str(experiment_id),
        user_id="alice",
        run_name=name,
        start_time=TS,
        tags=tags or [],
    )
    if log:
        tracking.run_log_batch(
            run_id=run.run_id,
            metrics=log.get("metrics", []),
            params=log.get("params", []),
            tags=log.get("log_tags", []),
        )
    return run.run_id


def parent_tag(run_id: str) -> list[dict]:
    return [{"key": "mlflow.parentRunId", "value": run_id}]


def test_run_page_hides_parent_and_children_the_user_cannot_read(scientist):
    secret = tracking.experiment_create(name="private", owner=scientist)
    experiment_grants_replace(
        experiment_id=secret.experiment_id,
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    bob = accounts.user_create(username="bob", role="data-scientist", password="bob-pw-1")
    shared = tracking.experiment_create(name="shared", owner=bob)
    visible = new_run(shared.experiment_id, "visible-run")
    hidden_parent = new_run(secret.experiment_id, "hidden-parent")
    pointing_up = new_run(shared.experiment_id, "child-of-hidden", tags=parent_tag(hidden_parent))
    new_run(secret.experiment_id, "hidden-child", tags=parent_tag(visible))
    deleted_child = new_run(shared.experiment_id, "deleted-child", tags=parent_tag(visible))
    tracking.run_delete(run_id=deleted_child)
    live_child = new_run(shared.experiment_id, "live-child", tags=parent_tag(visible))

    client = signed_in(bob)
    page = client.get(f"/runs/{visible}/").content.decode()
    assert "live-child" in page and f"/runs/{live_child}/" in page
    assert "hidden-child" not in page and "deleted-child" not in page
    up = client.get(f"/runs/{pointing_up}/").content.decode()
    assert "hidden-parent" not in up and "Parent run" not in up
    # alice may read both: she sees the hidden ones (but still not the deleted one)
    mine = signed_in(scientist).get(f"/runs/{visible}/").content.decode()
    assert "hidden-child" in mine and "deleted-child" not in mine
    assert "hidden-parent" in signed_in(scientist).get(f"/runs/{pointing_up}/").content.decode()

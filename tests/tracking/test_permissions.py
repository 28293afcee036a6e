"""Per-experiment permissions through the MLflow API and /api/v1: who may read, write and
manage, and what an unreadable experiment looks like (exactly like a missing one)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as accounts
from audit.models import AuditEvent
from tests.conftest import MlflowApiClient

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


def persona(username: str, role: str) -> MlflowApiClient:
    user = accounts.user_create(username=username, role=role, password=f"{username}-pw-1")
    _, raw = accounts.token_create(user=user, name="t")
    return MlflowApiClient(Client(HTTP_AUTHORIZATION=f"Bearer {raw}"))


@pytest.fixture
def people(api):
    return {
        "alice": api,  # data scientist, the experiment's creator
        "bob": persona("bob", "data-scientist"),
        "rita": persona("rita", "reviewer"),
        "cora": persona("cora", "compliance"),
        "root": persona("root", "admin"),
    }


@pytest.fixture
def experiment(people):
    exp_id = people["alice"].experiment("alice-exp")
    run_id = people["alice"].run(exp_id)["info"]["run_id"]
    return exp_id, run_id


def set_grants(client: MlflowApiClient, exp_id: str, grants: list[dict]):
    return client.client.put(
        f"/api/v1/experiments/{exp_id}/permissions",
        {"grants": grants},
        content_type="application/json",
    )


def test_default_read_for_others_and_manage_for_the_creator(people, experiment):
    exp_id, run_id = experiment
    bob = people["bob"]
    assert bob.get("experiments/get", {"experiment_id": exp_id}).status_code == 200
    assert bob.get("runs/get", {"run_id": run_id}).status_code == 200
    refused = bob.post("runs/create", {"experiment_id": exp_id})
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert "EDIT" in refused.json()["message"]
    assert (
        bob.post(
            "runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": TS}
        ).status_code
        == 403
    )
    assert bob.post("experiments/delete", {"experiment_id": exp_id}).status_code == 403
    denied = AuditEvent.objects.filter(outcome="denied", actor_username="bob")
    assert denied.count() == 3
    assert people["alice"].post("experiments/delete", {"experiment_id": exp_id}).status_code == 200


def test_unreadable_experiment_answers_like_a_missing_one(people, experiment):
    exp_id, run_id = experiment
    assert (
        set_grants(
            people["alice"],
            exp_id,
            [
                {"user": "alice", "level": "MANAGE"},
                {"user": "bob", "level": "NONE"},
            ],
        ).status_code
        == 200
    )
    bob = people["bob"]
    hidden = bob.get("experiments/get", {"experiment_id": exp_id})
    missing = bob.get("experiments/get", {"experiment_id": "987654"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["message"] == f"No Experiment with id={exp_id} exists"
    assert bob.get("experiments/get-by-name", {"experiment_name": "alice-exp"}).status_code == 404
    assert bob.get("runs/get", {"run_id": run_id}).status_code == 404
    assert bob.get("metrics/get-history", {"run_id": run_id, "metric_key": "m"}).status_code == 404
    runs = bob.post("runs/search", {"experiment_ids": [exp_id, "0"]}).json()
    assert runs.get("runs", []) == [] and "next_page_token" not in runs
    names = [
        e["name"]
        for e in bob.post("experiments/search", {"max_results": 100}).json()["experiments"]
    ]
    assert "alice-exp" not in names and "Default" in names
    # The compliance officer still reads it; the admin too.
    assert people["cora"].get("runs/get", {"run_id": run_id}).status_code == 200
    assert people["root"].get("runs/get", {"run_id": run_id}).status_code == 200


def test_edit_grant_allows_logging_but_not_deleting(people, experiment):
    exp_id, run_id = experiment
    set_grants(people["alice"], exp_id, [{"user": "bob", "level": "EDIT"}])
    bob = people["bob"]
    assert bob.post("runs/create", {"experiment_id": exp_id}).status_code == 200
    assert (
        bob.post(
            "runs/log-metric", {"run_id": run_id, "key": "m", "value": 1, "timestamp": TS}
        ).status_code
        == 200
    )
    assert bob.post("runs/delete", {"run_id": run_id}).status_code == 403
    assert bob.post("experiments/delete", {"experiment_id": exp_id}).status_code == 403


def test_group_grants_apply_to_roles(people, experiment):
    exp_id, _ = experiment
    set_grants(people["alice"], exp_id, [{"group": "reviewer", "level": "EDIT"}])
    assert people["rita"].post("runs/create", {"experiment_id": exp_id}).status_code == 200
    assert people["bob"].post("runs/create", {"experiment_id": exp_id}).status_code == 403


def test_compliance_reads_everything_and_changes_nothing(people, experiment):
    exp_id, run_id = experiment
    cora = people["cora"]
    assert cora.get("runs/get", {"run_id": run_id}).status_code == 200
    for path, body in [
        ("experiments/create", {"name": "cora-exp"}),
        ("runs/create", {"experiment_id": exp_id}),
        ("runs/set-tag", {"run_id": run_id, "key": "k", "value": "v"}),
        ("experiments/delete", {"experiment_id": exp_id}),
    ]:
        response = cora.post(path, body)
        assert response.status_code == 403, path
        assert "Compliance" in response.json()["message"]
    assert set_grants(cora, exp_id, []).status_code == 403


def test_default_experiment_is_open_to_data_scientists_only(people):
    assert people["bob"].post("runs/create", {}).status_code == 200
    assert people["rita"].post("runs/create", {"experiment_id": "0"}).status_code == 403


def test_permissions_api(people, experiment):
    exp_id, _ = experiment
    url = f"/api/v1/experiments/{exp_id}/permissions"
    assert people["bob"].client.get(url).json()["grants"] == [{"user": "alice", "level": "MANAGE"}]
    assert set_grants(people["bob"], exp_id, []).status_code == 403
    bad = set_grants(people["alice"], exp_id, [{"user": "bob", "level": "OWNER"}])
    assert bad.status_code == 400
    assert (
        set_grants(people["alice"], exp_id, [{"user": "ghost", "level": "READ"}]).status_code == 400
    )
    ok = set_grants(
        people["alice"],
        exp_id,
        [{"user": "alice", "level": "MANAGE"}, {"group": "compliance", "level": "READ"}],
    )
    assert ok.json()["grants"] == [
        {"group": "compliance", "level": "READ"},
        {"user": "alice", "level": "MANAGE"},
    ]
    event = AuditEvent.objects.filter(action="experiment.permissions.update").latest("seq")
    assert event.before == {"grants": [{"user": "alice", "level": "MANAGE"}]}
    assert people["bob"].client.get("/api/v1/experiments/999999/permissions").status_code == 404


def test_one_grant_is_added_changed_and_removed_without_touching_the_others(people, experiment):
    """A team's second data scientist gets EDIT without anyone replacing the whole list."""
    exp_id, _ = experiment
    alice, bob = people["alice"], people["bob"]
    url = f"/api/v1/experiments/{exp_id}/permissions"
    assert bob.post("runs/create", {"experiment_id": exp_id}).status_code == 403
    add = {"user": "bob", "level": "EDIT"}
    assert bob.client.post(url, add, content_type="application/json").status_code == 403
    added = alice.client.post(url, add, content_type="application/json")
    assert added.status_code == 200 and added.json()["outcome"] == "added"
    assert added.json()["grants"] == [
        {"user": "alice", "level": "MANAGE"},
        {"user": "bob", "level": "EDIT"},
    ]
    event = AuditEvent.objects.filter(action="experiment.permissions.grant").latest("seq")
    assert event.actor_username == "alice" and event.after["granted"] == add
    assert event.before == {"grants": [{"user": "alice", "level": "MANAGE"}]}
    assert bob.post("runs/create", {"experiment_id": exp_id}).status_code == 200

    again = alice.client.post(url, add, content_type="application/json")
    assert again.json()["outcome"] == "unchanged"
    team = {"group": "compliance", "level": "READ"}
    assert alice.client.post(url, team, content_type="application/json").status_code == 200
    changed = alice.client.post(
        url, {"user": "bob", "level": "READ"}, content_type="application/json"
    )
    assert changed.json()["outcome"] == "changed"

    both = alice.client.post(
        url,
        {"user": "bob", "group": "compliance", "level": "READ"},
        content_type="application/json",
    )
    assert both.status_code == 400 and "exactly one" in both.json()["error"]["message"]
    assert alice.client.delete(f"{url}?user=nobody").status_code == 400
    assert bob.client.delete(f"{url}?user=bob").status_code == 403
    removed = alice.client.delete(f"{url}?user=bob")
    assert removed.status_code == 200
    assert removed.json()["grants"] == [
        {"group": "compliance", "level": "READ"},
        {"user": "alice", "level": "MANAGE"},
    ]
    event = AuditEvent.objects.filter(action="experiment.permissions.revoke").latest("seq")
    assert event.after["removed"] == {"user": "bob"}
    assert bob.post("runs/create", {"experiment_id": exp_id}).status_code == 403

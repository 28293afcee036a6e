"""The promotion workflow over HTTP, as its users drive it: alice (data scientist, owns the
model) asks; rita and rob (reviewers) decide; carl (compliance) reads; the admin sets rules.
Every move goes through /api/v1 or the MLflow routes, never through services directly."""

from __future__ import annotations

import json

import pytest
import yaml

from audit.models import AuditEvent
from governance.models import Review, TransitionRequest
from registry.models import ModelVersion
from tests.personas import FULL_CARD, LINEAGE, new_run, stage, to_production_request

pytestmark = pytest.mark.django_db


def test_the_default_policy_is_the_servers(people, fraud):
    policy = people["carl"].get("models/fraud/policy").json()
    assert policy["is_default"] is True
    assert policy["required_tags"] == ["dataset_version", "git_commit", "triggered_by"]
    assert (policy["staging_approvals"], policy["production_approvals"]) == (0, 1)
    assert policy["require_model_card"] is True and policy["exclude_run_author"] is True


def test_staging_needs_the_lineage_tags_and_reuses_one_request(people):
    alice = people["alice"]
    run_id = new_run(alice, {"dataset_version": "orders_v2.1"})
    alice.mlflow("registered-models/create", {"name": "fraud"})
    alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/model"})
    response = alice.transition(1, "Staging")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_STATE"
    request_id = TransitionRequest.objects.get().pk
    assert f"transition request {request_id} is open" in body["message"]
    assert "lineage tag 'git_commit' is missing" in body["message"]
    assert "lineage tag 'triggered_by' is missing" in body["message"]
    assert "dataset_version" not in body["message"].split("Still missing:")[1]
    assert stage(1) == "None"
    refused = AuditEvent.objects.get(action="model_version.transition.refused")
    assert refused.outcome == "refused" and "git_commit" in refused.reason
    # Asking again reuses the open request; once the run carries the tags the move happens.
    assert alice.transition(1, "Staging").status_code == 400
    assert TransitionRequest.objects.count() == 1
    for key in ("git_commit", "triggered_by"):
        alice.mlflow("runs/set-tag", {"run_id": run_id, "key": key, "value": "x"})
    moved = alice.transition(1, "Staging")
    assert moved.status_code == 200
    assert moved.json()["model_version"]["current_stage"] == "Staging"
    assert TransitionRequest.objects.get().status == "applied"


def test_metric_gates_are_checked_on_the_source_run(people, fraud):
    admin, alice = people["admin"], people["alice"]
    gate = {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.97}]}
    assert admin.put("models/fraud/policy", gate).status_code == 200
    response = alice.transition(1, "Staging")
    assert response.status_code == 400
    assert "metric gate val_auc >= 0.97 fails: the run has 0.95" in response.json()["message"]
    alice.mlflow(
        "runs/log-metric",
        {"run_id": fraud, "key": "val_auc", "value": 0.98, "timestamp": 2, "step": 1},
    )
    assert alice.transition(1, "Staging").status_code == 200


def test_production_needs_a_reviewer_who_is_not_the_requester_and_a_complete_card(people, fraud):
    alice, rita = people["alice"], people["rita"]
    request_id = to_production_request(people)
    message = alice.transition(1, "Production").json()["message"]
    assert f"transition request {request_id}" in message
    assert "1 more approval needed (0 of 1)" in message
    assert "the model card is missing" in message
    assert f"/api/v1/transition-requests/{request_id}/approve" in message

    own = alice.post(f"transition-requests/{request_id}/approve")
    assert own.status_code == 403
    assert "separation of duties" in own.json()["error"]["message"]
    bob = people["bob"].post(f"transition-requests/{request_id}/approve")
    assert bob.status_code == 403 and "reviewer" in bob.json()["error"]["message"]
    denied = AuditEvent.objects.filter(action="transition_request.approve.denied")
    assert denied.count() == 2 and {e.actor_username for e in denied} == {"alice", "bob"}

    # An approval is the last step: it waits until everything else is in place.
    early = rita.post(f"transition-requests/{request_id}/approve", {"comment": "looks good"})
    assert early.status_code == 400
    assert "cannot be approved yet: the model card is missing" in early.json()["error"]["message"]
    assert stage(1) == "Staging" and not Review.objects.exists()

    assert alice.put("models/fraud/versions/1/card", FULL_CARD).status_code == 200
    approved = rita.post(f"transition-requests/{request_id}/approve", {"comment": "looks good"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["applied"] is True
    assert stage(1) == "Production"
    event = AuditEvent.objects.filter(action="model_version.transition").latest("seq")
    assert event.after["transition_request"] == request_id
    assert event.after["approved_by"] == ["rita"]
    assert event.after["requested_by"] == "alice"
    detail = people["carl"].get(f"transition-requests/{request_id}").json()
    assert detail["status"] == "applied"
    assert [h["action"] for h in detail["history"]] == [
        "transition_request.create",
        "model_version.transition.refused",
        "model_version.transition.refused",
        "transition_request.approve.denied",  # alice: separation of duties
        "transition_request.approve.denied",  # bob: not a reviewer
        # rita, before the card was complete: a rule the request did not meet yet
        "transition_request.approve.refused",
        "transition_request.approve",
        "transition_request.apply",
    ]
    assert detail["reviews"][0]["reviewer"] == "rita"


def test_the_last_approval_applies_the_move(people, fraud):
    alice, rita = people["alice"], people["rita"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    answer = rita.post(f"transition-requests/{request_id}/approve").json()
    assert answer["applied"] is True and answer["current_stage"] == "Production"
    assert stage(1) == "Production"
    # A replayed approval has no second effect.
    again = rita.post(f"transition-requests/{request_id}/approve")
    assert again.status_code == 200 and again.json()["applied"] is True
    assert Review.objects.filter(request_id=request_id).count() == 1
    assert (
        AuditEvent.objects.filter(
            action="model_version.transition", after__current_stage="Production"
        ).count()
        == 1
    )


def test_two_approvals_and_the_run_author_excluded(people, fraud):
    admin, alice, rita, rob = (people[k] for k in ("admin", "alice", "rita", "rob"))
    admin.put("models/fraud/policy", {"production_approvals": 2})
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    first = rita.post(f"transition-requests/{request_id}/approve").json()
    assert first["applied"] is False
    assert "1 more approval needed (1 of 2)" in first["missing"][0]["message"]
    assert rita.post(f"transition-requests/{request_id}/approve").json()["applied"] is False
    assert rob.post(f"transition-requests/{request_id}/approve").json()["applied"] is True
    assert stage(1) == "Production"

    # A reviewer who trained the model cannot review it.
    run_id = new_run(rob, LINEAGE)
    rob_version = rob.mlflow(
        "model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/model"}
    )
    assert rob_version.status_code == 403  # rob may only read alice's model
    ModelVersion.objects.filter(version=2).update(run_id=run_id)
    second = to_production_request(people, version=2)
    refused = rob.post(f"transition-requests/{second}/approve")
    assert refused.status_code == 403
    assert "author of run" in refused.json()["error"]["message"]


def test_reject_needs_a_reason_and_ends_the_request(people, fraud):
    rita = people["rita"]
    request_id = to_production_request(people)
    missing_reason = rita.post(f"transition-requests/{request_id}/reject", {})
    assert missing_reason.status_code == 400
    assert "reason" in json.dumps(missing_reason.json())
    rejected = rita.post(f"transition-requests/{request_id}/reject", {"reason": "AUC too low"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = people["rob"].post(f"transition-requests/{request_id}/approve")
    assert late.status_code == 409 and "rejected (AUC too low)" in late.json()["error"]["message"]
    assert stage(1) == "Staging"
    # Asking again opens a new request: the old approvals (none) and rejection do not carry.
    people["alice"].transition(1, "Production")
    assert TransitionRequest.objects.filter(status="open").exclude(pk=request_id).count() == 1


def test_cancel_is_the_requesters(people, fraud):
    request_id = to_production_request(people)
    assert people["bob"].post(f"transition-requests/{request_id}/cancel").status_code == 403
    done = people["alice"].post(f"transition-requests/{request_id}/cancel")
    assert done.status_code == 200 and done.json()["status"] == "cancelled"


def test_requests_go_stale_when_the_stage_changes_underneath(people, fraud):
    request_id = to_production_request(people)
    assert people["alice"].transition(1, "Archived").status_code == 200
    shown = people["rita"].get(f"transition-requests/{request_id}").json()
    assert shown["status"] == "stale"
    late = people["rita"].post(f"transition-requests/{request_id}/approve")
    assert late.status_code == 409
    assert "now Archived, not Staging" in late.json()["error"]["message"]
    assert stage(1) == "Archived"


def test_the_review_queue_and_designated_reviewers(people, fraud):
    admin, rita, rob = people["admin"], people["rita"], people["rob"]
    request_id = to_production_request(people)
    queue = rita.get("transition-requests").json()
    assert queue["queue"] is True and [r["id"] for r in queue["requests"]] == [request_id]
    assert people["alice"].get("transition-requests").json()["requests"] == []  # her own
    assert admin.put("models/fraud/policy", {"reviewers": ["rob"]}).status_code == 200
    assert rita.get("transition-requests").json()["requests"] == []
    refused = rita.post(f"transition-requests/{request_id}/approve")
    assert (
        refused.status_code == 403 and "designated reviewers" in refused.json()["error"]["message"]
    )
    filtered = people["carl"].get("transition-requests", {"status": "open", "model": "fraud"})
    assert [r["id"] for r in filtered.json()["requests"]] == [request_id]
    assert rob.get("transition-requests", {"status": "nonsense"}).status_code == 400


def test_managers_may_only_make_the_policy_stricter(people, fraud):
    alice, admin = people["alice"], people["admin"]
    looser = alice.put("models/fraud/policy", {"production_approvals": 0})
    assert looser.status_code == 403
    assert "production_approvals from 1 to 0" in looser.json()["error"]["message"]
    denied = AuditEvent.objects.get(action="policy.update.denied")
    assert denied.actor_username == "alice" and denied.after["data"] == {"production_approvals": 0}
    for change in (
        {"required_tags": ["dataset_version"]},
        {"require_model_card": False},
        {"reviewers": ["rita"]},
    ):
        assert alice.put("models/fraud/policy", change).status_code == 403, change
    stricter = alice.put(
        "models/fraud/policy",
        {
            "production_approvals": 2,
            "metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.9}],
        },
    )
    assert stricter.status_code == 200 and stricter.json()["production_approvals"] == 2
    weaker_gate = alice.put(
        "models/fraud/policy", {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.5}]}
    )
    assert weaker_gate.status_code == 403
    assert people["rita"].put("models/fraud/policy", {"staging_approvals": 3}).status_code == 403
    assert admin.put("models/fraud/policy", {"production_approvals": 0}).status_code == 200
    event = AuditEvent.objects.filter(action="policy.update").latest("seq")
    assert event.actor_username == "boss"
    assert (event.before["production_approvals"], event.after["production_approvals"]) == (2, 0)
    bad = admin.put("models/fraud/policy", {"metric_gates": [{"metric": "x", "op": "~"}]})
    assert bad.status_code == 400 and "exactly 'metric', 'op' and 'value'" in json.dumps(bad.json())
    unknown = admin.put("models/fraud/policy", {"approvals": 3})
    assert unknown.status_code == 400 and "Unknown policy field" in json.dumps(unknown.json())


def test_protected_aliases_follow_production(people, fraud):
    admin, alice = people["admin"], people["alice"]
    admin.put("models/fraud/policy", {"protected_aliases": ["champion"], "production_approvals": 0})
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    alias = {"name": "fraud", "alias": "champion", "version": "1"}
    refused = alice.mlflow("registered-models/alias", alias)
    assert refused.status_code == 403 and "protected" in refused.json()["message"]
    assert admin.mlflow("registered-models/alias", alias).status_code == 403  # nobody bypasses
    assert alice.mlflow("registered-models/alias", {**alias, "alias": "canary"}).status_code == 200
    alice.transition(1, "Staging")
    assert alice.transition(1, "Production").status_code == 200
    assert alice.mlflow("registered-models/alias", alias).status_code == 200


def test_archiving_takes_only_the_protected_aliases_along(people, fraud):
    """MLflow semantics for the aliases the policy does not protect: they stay on a version
    that is archived (and may be set on one); the protected ones leave with Production."""
    admin, alice = people["admin"], people["alice"]
    admin.put(
        "models/fraud/policy",
        {"protected_aliases": ["champion"], "production_approvals": 0, "demotion_approvals": 0},
    )
    for version in (1, 2):
        alice.put(f"models/fraud/versions/{version}/card", FULL_CARD)
        assert alice.transition(version, "Staging").status_code == 200
    assert alice.transition(1, "Production").status_code == 200
    for name in ("champion", "canary"):
        set_alias = {"name": "fraud", "alias": name, "version": "1"}
        assert alice.mlflow("registered-models/alias", set_alias).status_code == 200
    assert alice.transition(2, "Production").status_code == 200  # archives version 1

    def alias_of(name):
        return alice.mlflow("registered-models/alias", {"name": "fraud", "alias": name}, "GET")

    assert alias_of("canary").json()["model_version"]["version"] == "1"
    assert alias_of("canary").json()["model_version"]["current_stage"] == "Archived"
    assert alias_of("champion").status_code == 400  # protected: it followed Production out
    deleted = AuditEvent.objects.get(action="model_version.alias.delete")
    assert deleted.before == {"alias": "champion", "version": 1}
    assert "protected alias follows Production" in deleted.reason
    resolved = alice.get("resolve", {"uri": "models:/fraud@canary"})
    assert resolved.status_code == 200 and resolved.json()["version"] == 1
    assert resolved.json()["stage"] == "Archived"
    # An unprotected alias may be pointed at an archived version; a protected one may not.
    assert (
        alice.mlflow(
            "registered-models/alias", {"name": "fraud", "alias": "old", "version": "1"}
        ).status_code
        == 200
    )
    refused = alice.mlflow(
        "registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"}
    )
    assert refused.status_code == 403 and "protected" in refused.json()["message"]
    # Stage and `latest` never resolve an archived version.
    assert alice.transition(2, "Archived").status_code == 200
    assert alice.get("resolve", {"uri": "models:/fraud/Production"}).status_code == 404
    assert alice.get("resolve", {"uri": "models:/fraud/latest"}).status_code == 404
    assert alice.get("resolve", {"uri": "models:/fraud@canary"}).json()["version"] == 1


def test_tags_can_be_required_at_registration(people, fraud):
    admin, alice = people["admin"], people["alice"]
    admin.put("models/fraud/policy", {"require_tags_at_registration": True})
    bare = new_run(alice)
    refused = alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{bare}/m"})
    assert refused.status_code == 400 and "requires lineage tags" in refused.json()["message"]
    assert ModelVersion.objects.filter(registered_model__name="fraud").count() == 2
    ok = alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{fraud}/m"})
    assert ok.status_code == 200


def test_model_card_prefilled_checked_and_exported(people, fraud):
    alice = people["alice"]
    alice.mlflow(
        "runs/log-inputs",
        {
            "run_id": fraud,
            "datasets": [
                {
                    "dataset": {
                        "name": "orders",
                        "digest": "abc123",
                        "source_type": "local",
                        "source": "{}",
                    },
                    "tags": [{"key": "mlflow.data.context", "value": "training"}],
                }
            ],
        },
    )
    draft = alice.get("models/fraud/versions/1/card").json()
    assert draft["saved"] is False and draft["complete"] is False
    assert "orders (digest abc123, training" in draft["training_data"]
    assert "val_auc: 0.95" in draft["evaluation_results"]
    partial = alice.put("models/fraud/versions/1/card", {"intended_use": "fraud triage"})
    assert partial.status_code == 200
    assert "limitations" in partial.json()["missing"]
    assert "training_data" not in partial.json()["missing"]  # kept from the draft
    full = alice.put("models/fraud/versions/1/card", FULL_CARD).json()
    assert full["complete"] is True and full["missing"] == []
    markdown = alice.get("models/fraud/versions/1/card.md")
    text = markdown.content.decode()
    assert markdown["Content-Type"].startswith("text/markdown")
    assert text.startswith("---\nlibrary_name: mlflow")
    assert '- type: "val_auc"' in text and "value: 0.95" in text
    assert "## Intended use\n\nScore card transactions" in text
    # The front matter is the YAML Hugging Face reads: datasets, and each result's task,
    # dataset and metrics.
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "mlflow"
    assert front["datasets"] == ["orders", "orders_v2.1"]
    (result,) = front["model-index"][0]["results"]
    assert result["dataset"] == {"type": "orders", "name": "orders"}
    assert result["task"] == {"type": "custom"}
    assert {"type": "val_auc", "name": "val_auc", "value": 0.95} in result["metrics"]
    assert people["carl"].put("models/fraud/versions/1/card", FULL_CARD).status_code == 403
    # What GET answers can be edited and PUT back as it is.
    fetched = alice.get("models/fraud/versions/1/card").json()
    fetched["caveats"] = "Retrain weekly."
    round_trip = alice.put("models/fraud/versions/1/card", fetched)
    assert round_trip.status_code == 200 and round_trip.json()["caveats"] == "Retrain weekly."
    bad = alice.put("models/fraud/versions/1/card", {"favourite_colour": "red"})
    assert bad.status_code == 400 and "Unknown model card field" in json.dumps(bad.json())


def test_databricks_style_endpoints(people, fraud):
    alice, rita = people["alice"], people["rita"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    alice.transition(1, "Staging")
    created = alice.mlflow(
        "transition-requests/create",
        {"name": "fraud", "version": "1", "stage": "Production", "comment": "ready"},
    )
    assert created.status_code == 200
    request = created.json()["request"]
    assert request["to_stage"] == "Production" and request["user_id"] == "alice"
    listed = rita.mlflow("transition-requests/list", {"name": "fraud", "version": "1"}, "GET")
    assert [r["id"] for r in listed.json()["requests"]] == [request["id"]]
    comment = rita.mlflow("comments/create", {"name": "fraud", "version": "1", "comment": "hm"})
    assert comment.status_code == 200
    comment_id = comment.json()["comment"]["id"]
    assert (
        alice.mlflow("comments/update", {"id": comment_id, "comment": "x"}, "PATCH").status_code
        == 403
    )
    assert (
        rita.mlflow("comments/update", {"id": comment_id, "comment": "ok"}, "PATCH").status_code
        == 200
    )
    assert rita.mlflow("comments/delete", {"id": comment_id}, "DELETE").status_code == 200
    approved = rita.mlflow(
        "transition-requests/approve",
        {"name": "fraud", "version": "1", "stage": "Production", "comment": "ship it"},
    )
    assert approved.status_code == 200 and approved.json()["activity"]["applied"] is True
    assert stage(1) == "Production"
    # Reject and delete name a request by (model, version, stage).
    alice.transition(2, "Staging")
    alice.mlflow(
        "transition-requests/create", {"name": "fraud", "version": "2", "stage": "Production"}
    )
    no_reason = rita.mlflow(
        "transition-requests/reject", {"name": "fraud", "version": "2", "stage": "Production"}
    )
    assert no_reason.status_code == 400
    deleted = alice.mlflow(
        "transition-requests/delete",
        {"name": "fraud", "version": "2", "stage": "Production"},
        "DELETE",
    )
    assert deleted.status_code == 200
    gone = rita.mlflow(
        "transition-requests/approve", {"name": "fraud", "version": "2", "stage": "Production"}
    )
    assert gone.status_code == 404


def test_compliance_reads_everything_and_changes_nothing(people, fraud):
    carl = people["carl"]
    request_id = to_production_request(people)
    assert carl.get(f"transition-requests/{request_id}").status_code == 200
    assert carl.get(f"transition-requests/{request_id}/review").status_code == 200
    assert carl.post(f"transition-requests/{request_id}/approve").status_code == 403
    assert (
        carl.post(f"transition-requests/{request_id}/comments", {"text": "hi"}).status_code == 403
    )
    assert carl.transition(2, "Staging").status_code == 403
    assert stage(1) == "Staging"


def test_unreadable_models_requests_look_missing(people, fraud):
    admin = people["admin"]
    request_id = to_production_request(people)
    grants = {
        "grants": [
            {"user": "alice", "level": "MANAGE"},
            {"group": "data-scientist", "level": "NONE"},
        ]
    }
    assert admin.put("models/fraud/permissions", grants).status_code == 200
    bob = people["bob"]
    assert bob.get(f"transition-requests/{request_id}").status_code == 404
    assert bob.get("transition-requests", {"model": "fraud"}).json()["requests"] == []


def test_review_screen_compares_with_production(people, fraud):
    alice, rita = people["alice"], people["rita"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    rita.post(f"transition-requests/{to_production_request(people)}/approve")
    assert stage(1) == "Production"
    other = new_run(alice, {**LINEAGE, "git_commit": "c0ffee1"}, {"val_auc": 0.97})
    alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{other}/model"})
    request_id = to_production_request(people, version=3)
    screen = rita.get(f"transition-requests/{request_id}/review").json()
    assert screen["production"]["version"] == 1
    assert screen["compare"]["commit"] == {"candidate": "c0ffee1", "production": "b7d9e4a"}
    auc = next(r for r in screen["compare"]["metrics"] if r["key"] == "val_auc")
    assert (auc["candidate"], auc["production"], auc["differs"]) == (0.97, 0.95, True)
    card_check = next(c for c in screen["checks"] if c["what"] == "model card complete")
    assert card_check["ok"] is False
    assert screen["card_markdown"].startswith("---")

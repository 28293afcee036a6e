"""Governed rollback: an archived version that was in Production before may go back into it
(Archived → Production) as a transition request with the policy's own `rollback_approvals`,
re-checking the card and the gates, archiving the current Production version in the same
transaction, and recorded as a rollback in the audit trail and the timeline. All over HTTP."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from governance.models import TransitionRequest
from registry.models import ModelVersion
from tests.personas import FULL_CARD, stage, to_production_request

pytestmark = pytest.mark.django_db


def promote(people, version: int) -> None:
    people["alice"].put(f"models/fraud/versions/{version}/card", FULL_CARD)
    request_id = to_production_request(people, version)
    answer = people["rita"].post(f"transition-requests/{request_id}/approve")
    assert answer.json()["applied"] is True and stage(version) == "Production"


def v2_replaced_v1(people) -> None:
    promote(people, 1)
    people["alice"].mlflow(
        "registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"}
    )
    promote(people, 2)
    assert stage(1) == "Archived"


def test_rollback_through_the_v1_api_waits_for_its_approval(people, fraud):
    alice, rob, carl = people["alice"], people["rob"], people["carl"]
    v2_replaced_v1(people)
    opened = alice.post(
        "transition-requests",
        {"model": "fraud", "version": "1", "stage": "Production", "comment": "v2 misbehaves"},
    )
    assert opened.status_code == 201, opened.content
    body = opened.json()
    assert body["request"]["rollback"] is True and body["request"]["from_stage"] == "Archived"
    assert any(
        "1 more approval needed to roll back into Production (0 of 1)" in m["message"]
        for m in body["missing"]
    )
    assert stage(1) == "Archived" and stage(2) == "Production"

    approved = rob.post(f"transition-requests/{body['id']}/approve", {"comment": "roll back"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["applied"] is True
    assert (stage(1), stage(2)) == ("Production", "Archived")
    # The unprotected alias stayed on version 1 throughout.
    champion = alice.get("resolve", {"uri": "models:/fraud@champion"}).json()
    assert champion["version"] == 1 and champion["stage"] == "Production"

    moved = AuditEvent.objects.filter(action="model_version.transition", model_version=1).latest(
        "seq"
    )
    assert moved.before["current_stage"] == "Archived"
    assert moved.after["current_stage"] == "Production"
    assert moved.after["rollback"] is True and moved.after["immediate"] is False
    assert moved.after["approved_by"] == ["rob"]
    applied = AuditEvent.objects.get(action="transition_request.apply", object_id=str(body["id"]))
    assert applied.after["rollback"] is True
    superseded = AuditEvent.objects.filter(
        action="model_version.transition", model_version=2
    ).latest("seq")
    assert superseded.after["current_stage"] == "Archived"
    assert superseded.seq < moved.seq  # one transaction: v2 out, then v1 in

    production = carl.get("models/fraud/timeline").json()["stages"]["Production"]
    assert [(i["version"], i["rollback"]) for i in production] == [
        (1, False),
        (2, False),
        (1, True),
    ]
    assert production[2]["approved_by"] == ["rob"] and production[2]["until"] is None
    assert "superseded in Production by version 1" in production[1]["moved_out_reason"]


def test_the_mlflow_route_names_the_rollback_request(people, fraud):
    alice = people["alice"]
    v2_replaced_v1(people)
    answer = alice.transition(1, "Production")
    assert answer.status_code == 400 and answer.json()["error_code"] == "INVALID_STATE"
    req = TransitionRequest.objects.get(status="open")
    assert (req.from_stage, req.to_stage) == ("Archived", "Production")
    assert answer.json()["message"].startswith(
        f"Version 1 of 'fraud' cannot be rolled back into Production yet: transition request "
        f"{req.pk} is open"
    )


def test_immediate_rollback_with_no_approvals_is_audited_as_such(people, fraud):
    admin, alice = people["admin"], people["alice"]
    v2_replaced_v1(people)
    assert admin.put("models/fraud/policy", {"rollback_approvals": 0}).status_code == 200
    assert alice.transition(1, "Production").status_code == 200
    assert (stage(1), stage(2)) == ("Production", "Archived")
    moved = AuditEvent.objects.filter(action="model_version.transition", model_version=1).latest(
        "seq"
    )
    assert moved.after["rollback"] is True and moved.after["immediate"] is True
    assert moved.after["approved_by"] == [] and moved.actor_username == "alice"


def test_rollback_rechecks_the_card_and_the_gates(people, fraud):
    admin, alice, rob = people["admin"], people["alice"], people["rob"]
    v2_replaced_v1(people)
    admin.put(
        "models/fraud/policy", {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.99}]}
    )
    answer = alice.transition(1, "Production")
    assert answer.status_code == 400
    assert "metric gate val_auc >= 0.99 fails" in answer.json()["message"]
    req = TransitionRequest.objects.get(status="open")
    refused = rob.post(f"transition-requests/{req.pk}/approve")
    assert refused.status_code == 400 and stage(1) == "Archived"
    admin.put("models/fraud/policy", {"metric_gates": []})
    alice.put("models/fraud/versions/1/card", {**FULL_CARD, "limitations": ""})
    assert "model card is incomplete" in alice.transition(1, "Production").json()["message"]


def test_only_a_version_that_was_in_production_can_be_rolled_back(people, fraud):
    alice = people["alice"]
    assert alice.transition(1, "Archived").status_code == 200  # never in Production
    refused = alice.transition(1, "Production")
    assert refused.status_code == 400
    assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "only a version that has been in Production before" in refused.json()["message"]
    assert not TransitionRequest.objects.filter(to_stage="Production").exists()
    api = alice.post(
        "transition-requests", {"model": "fraud", "version": "1", "stage": "Production"}
    )
    assert api.status_code == 400
    assert not ModelVersion.objects.get(registered_model__name="fraud", version=1).was_in_production


def test_rollback_approvals_is_a_policy_field_managers_cannot_lower(people, fraud):
    admin, alice = people["admin"], people["alice"]
    shown = alice.get("models/fraud/policy").json()
    assert shown["rollback_approvals"] == 1
    looser = alice.put("models/fraud/policy", {"rollback_approvals": 0})
    assert looser.status_code == 403 and "rollback_approvals from 1 to 0" in looser.content.decode()
    assert alice.put("models/fraud/policy", {"rollback_approvals": 2}).status_code == 200
    for bad in (-1, 11, "1", None, True):
        assert admin.put("models/fraud/policy", {"rollback_approvals": bad}).status_code == 400


def test_the_request_says_what_approving_will_do(people, fraud):
    """Before v2's promotion is approved: v1 will be archived, the protected @champion leaves
    with it, the unprotected @canary stays on archived v1, and the endpoint serving
    models:/fraud/Production will answer v2."""
    admin, alice, rita = people["admin"], people["alice"], people["rita"]
    admin.put("models/fraud/policy", {"protected_aliases": ["champion"]})
    promote(people, 1)
    for alias in ("champion", "canary"):
        alice.mlflow("registered-models/alias", {"name": "fraud", "alias": alias, "version": "1"})
    for endpoint, uri in (
        ("/prod", "models:/fraud/Production"),
        ("/canary", "models:/fraud@canary"),
    ):
        assert (
            alice.post("deployments", {"endpoint": endpoint, "model_uri": uri}).status_code == 201
        )
    alice.put("models/fraud/versions/2/card", FULL_CARD)
    request_id = to_production_request(people, 2)
    effects = rita.get(f"transition-requests/{request_id}").json()["effects"]
    assert effects == {
        "versions_moved": [
            {"version": 1, "from": "Production", "to": "Archived"},
            {"version": 2, "from": "Staging", "to": "Production"},
        ],
        "versions_archived": [1],
        "aliases_removed": [
            {"alias": "champion", "version": 1, "why": "protected: follows Production"}
        ],
        "aliases_kept_on_archived": [{"alias": "canary", "version": 1}],
        "deployments_changed": [
            {"endpoint": "/prod", "model_uri": "models:/fraud/Production", "now": 1, "after": 2}
        ],
    }
    screen = rita.get(f"transition-requests/{request_id}/review").json()
    assert "v1: Production → Archived" in screen["effects"]
    assert any("@champion is removed from v1" in line for line in screen["effects"])
    page = Client()
    page.force_login(rita.user)
    html = page.get(f"/reviews/{request_id}/").content.decode()
    assert (
        'id="effects"' in html
        and "deployment /prod (models:/fraud/Production) resolves to v2" in html
    )
    admin_html = Client()
    admin_html.force_login(rita.user)
    console = admin_html.get(f"/admin/governance/transitionrequest/{request_id}/change/")
    assert "Approving will" in console.content.decode()

    assert rita.post(f"transition-requests/{request_id}/approve").json()["applied"] is True
    done = rita.get(f"transition-requests/{request_id}").json()
    assert done["effects"] is None  # applied: nothing left to foresee

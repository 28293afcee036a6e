"""Leaving Production is governed like entering it: alice (who may edit the model) asks for
her Production version to be archived or put back into Staging, and the move waits for the
approvals the policy asks for to leave Production (`demotion_approvals`; null: as many as
for Production) from a reviewer who is not her. The archiving that an approved promotion
does to the previous Production version stays part of that promotion. All over HTTP."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from governance.models import ModelPolicy, TransitionRequest
from tests.personas import FULL_CARD, stage, to_production_request

pytestmark = pytest.mark.django_db


def promote(people, version: int = 1, *reviewers: str) -> None:
    """Version `version` of fraud into Production through the workflow (rita approves)."""
    people["alice"].put(f"models/fraud/versions/{version}/card", FULL_CARD)
    request_id = to_production_request(people, version)
    for reviewer in reviewers or ("rita",):
        answer = people[reviewer].post(f"transition-requests/{request_id}/approve")
        assert answer.status_code == 200, answer.content
    assert answer.json()["applied"] is True and stage(version) == "Production"


def ask(people, target: str):
    """alice asks through /api/v1 for version 1 of fraud to enter `target`."""
    body = {"model": "fraud", "version": "1", "stage": target}
    return people["alice"].post("transition-requests", body)


def production_versions(persona) -> list[str]:
    body = persona.mlflow(
        "registered-models/get-latest-versions", {"name": "fraud", "stages": ["Production"]}
    ).json()
    return [v["version"] for v in body.get("model_versions", [])]


def test_archiving_a_production_version_waits_for_a_reviewer(people, fraud):
    alice, rob = people["alice"], people["rob"]
    promote(people)

    answer = alice.transition(1, "Archived")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error_code"] == "INVALID_STATE"
    req = TransitionRequest.objects.get(status="open")
    assert (req.from_stage, req.to_stage, req.requested_by.username) == (
        "Production",
        "Archived",
        "alice",
    )
    message = body["message"]
    assert message.startswith(
        f"Version 1 of 'fraud' cannot leave Production for Archived yet: transition request "
        f"{req.pk} is open (requested by alice)."
    )
    assert "1 more approval needed to leave Production (0 of 1)" in message
    assert "from any user with the reviewer role who may read the model" in message
    assert "other than the requester" in message
    assert f"/api/v1/transition-requests/{req.pk}/approve" in message
    # Nothing moved: the version still serves.
    assert stage(1) == "Production" and production_versions(alice) == ["1"]
    refused = AuditEvent.objects.filter(action="model_version.transition.refused").latest("seq")
    assert refused.object_id == str(req.pk) and "to leave Production" in refused.reason

    # Asking again reuses the request; the requester cannot approve it herself.
    assert alice.transition(1, "Archived").status_code == 400
    assert TransitionRequest.objects.filter(status="open").count() == 1
    own = alice.post(f"transition-requests/{req.pk}/approve")
    assert own.status_code == 403 and "separation of duties" in own.json()["error"]["message"]
    assert stage(1) == "Production"

    approved = rob.post(f"transition-requests/{req.pk}/approve", {"comment": "retire it"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["applied"] is True and approved.json()["current_stage"] == "Archived"
    assert stage(1) == "Archived" and production_versions(alice) == []
    event = AuditEvent.objects.filter(action="model_version.transition").latest("seq")
    assert event.before["current_stage"] == "Production"
    assert event.after["current_stage"] == "Archived"
    assert event.after["transition_request"] == req.pk
    assert (event.after["requested_by"], event.after["approved_by"]) == ("alice", ["rob"])
    req.refresh_from_db()
    assert (req.status, req.resolved_by.username) == ("applied", "rob")


def test_back_to_staging_through_the_v1_api_is_reviewed_too(people, fraud):
    rita = people["rita"]
    promote(people)
    asked = ask(people, "Staging")
    assert asked.status_code == 201, asked.content
    body = asked.json()
    assert body["applied"] is False and body["current_stage"] == "Production"
    assert [m["code"] for m in body["missing"]] == ["approvals"]
    assert "to leave Production (0 of 1)" in body["missing"][0]["message"]
    checks = people["carl"].get(f"transition-requests/{body['id']}").json()
    assert checks["approvals"] == {"given": 0, "needed": 1}
    assert stage(1) == "Production"

    done = rita.post(f"transition-requests/{body['id']}/approve").json()
    assert done["applied"] is True and stage(1) == "Staging"


def test_the_web_ui_request_form_opens_a_request_too(people, fraud):
    promote(people)
    browser = Client()
    browser.force_login(people["alice"].user)
    answer = browser.post("/models/fraud/versions/1/request", {"stage": "Archived"})
    assert answer.status_code == 302
    req = TransitionRequest.objects.get(status="open")
    assert answer["Location"].endswith(f"/reviews/{req.pk}/")
    assert (req.from_stage, req.to_stage) == ("Production", "Archived")
    assert stage(1) == "Production"


def test_an_approved_promotion_still_archives_the_previous_production_version(people, fraud):
    """The previous Production version leaves with the approved promotion, in its transaction,
    even when leaving Production on its own would need more approvals than entering it."""
    alice = people["alice"]
    promote(people)
    assert people["admin"].put("models/fraud/policy", {"demotion_approvals": 3}).status_code == 200
    alice.put("models/fraud/versions/2/card", FULL_CARD)
    assert alice.transition(2, "Staging").status_code == 200
    asked = alice.mlflow(
        "model-versions/transition-stage",
        {"name": "fraud", "version": "2", "stage": "Production", "archive_existing_versions": True},
    )
    assert asked.status_code == 400 and "cannot enter Production yet" in asked.json()["message"]
    req = TransitionRequest.objects.get(status="open")
    assert req.archive_existing_versions is True
    approved = people["rita"].post(f"transition-requests/{req.pk}/approve").json()
    assert approved["applied"] is True
    assert (stage(1), stage(2)) == ("Archived", "Production")
    # No request for version 1: its archiving was part of version 2's approved promotion.
    assert not TransitionRequest.objects.filter(version__version=1, from_stage="Production")
    moved_out = AuditEvent.objects.filter(
        action="model_version.transition", model_version=1, after__current_stage="Archived"
    ).get()
    assert moved_out.reason == "superseded in Production by version 2"


@pytest.mark.parametrize(
    "change", [{"demotion_approvals": 0}, {"production_approvals": 0, "demotion_approvals": None}]
)
def test_no_approvals_to_leave_production_applies_at_once(people, fraud, change):
    promote(people)
    assert people["admin"].put("models/fraud/policy", change).status_code == 200
    answer = people["alice"].transition(1, "Archived")
    assert answer.status_code == 200, answer.content
    assert answer.json()["model_version"]["current_stage"] == "Archived" == stage(1)
    assert TransitionRequest.objects.get(to_stage="Archived").status == "applied"


def test_leaving_follows_production_approvals_unless_set_on_its_own(people, fraud):
    admin, alice = people["admin"], people["alice"]
    admin.put("models/fraud/policy", {"production_approvals": 2})
    promote(people, 1, "rita", "rob")
    answer = alice.transition(1, "Archived")
    assert "1 more approval" not in answer.json()["message"]
    assert "2 more approvals needed to leave Production (0 of 2)" in answer.json()["message"]
    request_id = TransitionRequest.objects.get(status="open").pk
    # Set on its own, the number applies to the open request from its next evaluation.
    assert admin.put("models/fraud/policy", {"demotion_approvals": 1}).status_code == 200
    assert people["rita"].post(f"transition-requests/{request_id}/approve").json()["applied"]
    assert stage(1) == "Archived"


def test_back_to_staging_needs_the_larger_of_leaving_and_entering_staging(people, fraud):
    promote(people)
    changed = {"staging_approvals": 2, "demotion_approvals": 1}
    assert people["admin"].put("models/fraud/policy", changed).status_code == 200
    asked = ask(people, "Staging").json()
    assert "2 more approvals needed to leave Production (0 of 2)" in asked["missing"][0]["message"]
    archive = ask(people, "Archived").json()
    assert "1 more approval needed to leave Production (0 of 1)" in archive["missing"][0]["message"]


def test_the_policy_api_shows_and_guards_demotion_approvals(people, fraud):
    admin, alice = people["admin"], people["alice"]
    shown = people["carl"].get("models/fraud/policy").json()
    assert shown["demotion_approvals"] is None and shown["production_approvals"] == 1

    # alice manages the model: she may only make it stricter, compared by what null stands for.
    looser = alice.put("models/fraud/policy", {"demotion_approvals": 0})
    assert looser.status_code == 403
    assert "approvals to leave Production (demotion_approvals) from 1 to 0" in json.dumps(
        looser.json()
    )
    stricter = alice.put("models/fraud/policy", {"demotion_approvals": 2})
    assert stricter.status_code == 200 and stricter.json()["demotion_approvals"] == 2
    back_to_null = alice.put("models/fraud/policy", {"demotion_approvals": None})
    assert back_to_null.status_code == 403 and "from 2 to 1" in json.dumps(back_to_null.json())
    both = alice.put("models/fraud/policy", {"production_approvals": 3, "demotion_approvals": None})
    assert both.status_code == 200 and both.json()["demotion_approvals"] is None
    looser_via_production = admin.put("models/fraud/policy", {"production_approvals": 1})
    assert looser_via_production.status_code == 200  # admins may loosen
    event = AuditEvent.objects.filter(action="policy.update").latest("seq")
    assert event.before["demotion_approvals"] is None and event.before["production_approvals"] == 3

    for bad in (11, -1, "2", True, 1.5):
        refused = admin.put("models/fraud/policy", {"demotion_approvals": bad})
        assert refused.status_code == 400, bad
        assert "'demotion_approvals' must be null" in json.dumps(refused.json())
    # What GET answers goes back through PUT unchanged.
    current = admin.get("models/fraud/policy").json()
    assert admin.put("models/fraud/policy", current).status_code == 200
    assert ModelPolicy.objects.get(model__name="fraud").demotion_approvals is None


def test_the_policy_field_is_described_and_shown(people, fraud):
    schema = people["carl"].get("schema", {"format": "json"})
    assert schema.status_code == 200
    assert "demotion_approvals" in schema.content.decode()
    people["admin"].put("models/fraud/policy", {"production_approvals": 2})
    policy = ModelPolicy.objects.get(model__name="fraud")
    console = Client()
    console.force_login(people["admin"].user)
    page = console.get(f"/admin/governance/modelpolicy/{policy.pk}/change/").content.decode()
    assert "Approvals to leave Production" in page
    assert "2 (same as Production)" in page
    web = Client()
    web.force_login(people["alice"].user)
    assert "2 to leave Production" in web.get("/models/fraud/").content.decode()


def test_deleting_a_production_version_or_its_model_is_refused(people, fraud):
    alice = people["alice"]  # she created the model: she manages it
    promote(people)
    for who in (alice, people["admin"]):
        version = who.mlflow("model-versions/delete", {"name": "fraud", "version": "1"}, "DELETE")
        assert version.status_code == 400 and version.json()["error_code"] == "INVALID_STATE"
        assert "Request that the version leave Production first" in version.json()["message"]
        model = who.mlflow("registered-models/delete", {"name": "fraud"}, "DELETE")
        assert model.status_code == 400 and model.json()["error_code"] == "INVALID_STATE"
        assert "leave Production first" in model.json()["message"]
    assert stage(1) == "Production"
    # Once it has left Production (reviewed), it can be deleted.
    alice.transition(1, "Archived")
    request_id = TransitionRequest.objects.get(status="open").pk
    assert people["rita"].post(f"transition-requests/{request_id}/approve").json()["applied"]
    deleted = alice.mlflow("model-versions/delete", {"name": "fraud", "version": "1"}, "DELETE")
    assert deleted.status_code == 200, deleted.content

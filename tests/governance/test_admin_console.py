"""The reviewers' console in the Django admin, through the test client: the queue, the
review screen with everything on it, approve/reject through the same services, and who
sees what."""

from __future__ import annotations

import pytest
from django.test import Client

from governance.models import TransitionRequest
from registry.models import ModelVersion
from tests.personas import FULL_CARD, to_production_request

pytestmark = pytest.mark.django_db
QUEUE = "/admin/governance/transitionrequest/"


def browser_for(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_a_reviewer_takes_a_promotion_to_production_in_the_admin(people, fraud):
    alice = people["alice"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    rita = browser_for(people["rita"])

    queue = rita.get(QUEUE)
    assert queue.status_code == 200
    assert f"{QUEUE}{request_id}/change/" in queue.content.decode()

    screen = rita.get(f"{QUEUE}{request_id}/change/").content.decode()
    for expected in (
        "Policy checks",
        "lineage tag git_commit",
        "model card complete",
        "Compared with Production",
        'id="compare-metrics"',
        "val_auc",
        "Score card transactions for fraud review.",
        'value="approve"',
    ):
        assert expected in screen, expected

    decided = rita.post(
        f"{QUEUE}{request_id}/decide/", {"decision": "approve", "comment": "ok"}, follow=True
    )
    assert "Approved. Version 1 is now Production." in decided.content.decode()
    assert ModelVersion.objects.get(version=1).current_stage == "Production"
    assert TransitionRequest.objects.get(pk=request_id).status == "applied"


def test_reject_in_the_admin_needs_a_reason(people, fraud):
    request_id = to_production_request(people)
    rita = browser_for(people["rita"])
    page = rita.post(f"{QUEUE}{request_id}/decide/", {"decision": "reject"}, follow=True)
    assert "A reason for the rejection is required." in page.content.decode()
    assert TransitionRequest.objects.get(pk=request_id).status == "open"
    rita.post(f"{QUEUE}{request_id}/decide/", {"decision": "reject", "reason": "no"})
    assert TransitionRequest.objects.get(pk=request_id).status == "rejected"


def test_who_sees_the_console(people, fraud):
    request_id = to_production_request(people)
    # Data scientists are not staff: the admin sends them to sign in.
    assert browser_for(people["alice"]).get(QUEUE).status_code == 302
    # Compliance sees the request but cannot decide; the refusal is explained.
    carl = browser_for(people["carl"])
    page = carl.get(f"{QUEUE}{request_id}/change/").content.decode()
    assert "You cannot review this request" in page and 'value="approve"' not in page
    answer = carl.post(f"{QUEUE}{request_id}/decide/", {"decision": "approve"}, follow=True)
    assert "reviewer or admin role" in answer.content.decode()
    assert ModelVersion.objects.get(version=1).current_stage == "Staging"
    # Designated reviewers: the others no longer see the model's requests.
    people["admin"].put("models/fraud/policy", {"reviewers": ["rob"]})
    assert (
        f"{QUEUE}{request_id}/change/"
        not in browser_for(people["rita"]).get(QUEUE).content.decode()
    )
    assert f"{QUEUE}{request_id}/change/" in browser_for(people["rob"]).get(QUEUE).content.decode()
    assert (
        f"{QUEUE}{request_id}/change/" in browser_for(people["admin"]).get(QUEUE).content.decode()
    )


def test_reviewers_see_only_the_cards_and_policies_of_the_models_they_review(people, fraud):
    people["alice"].put("models/fraud/versions/1/card", {"intended_use": "x"})
    people["admin"].put("models/fraud/policy", {"reviewers": ["rob"]})
    card = ModelVersion.objects.get(version=1).card
    cards, policies = "/admin/governance/modelcard/", "/admin/governance/modelpolicy/"
    rita, rob = browser_for(people["rita"]), browser_for(people["rob"])
    assert f"{cards}{card.pk}/change/" not in rita.get(cards).content.decode()
    assert rita.get(f"{cards}{card.pk}/change/").status_code == 302  # not found for her
    from governance.models import ModelPolicy

    policy_link = f"{policies}{ModelPolicy.objects.get(model__name='fraud').pk}/change/"
    assert policy_link not in rita.get(policies).content.decode()
    assert f"{cards}{card.pk}/change/" in rob.get(cards).content.decode()
    assert policy_link in rob.get(policies).content.decode()
    carl = browser_for(people["carl"])
    assert f"{cards}{card.pk}/change/" in carl.get(cards).content.decode()


def test_the_stage_cannot_be_edited_in_the_admin(people, fraud):
    admin = browser_for(people["admin"])
    version = ModelVersion.objects.get(version=1)
    url = f"/admin/registry/modelversion/{version.pk}/change/"
    page = admin.get(url)
    assert page.status_code == 200 and 'name="current_stage"' not in page.content.decode()
    admin.post(url, {"current_stage": "Production"})
    assert ModelVersion.objects.get(version=1).current_stage == "None"


def test_model_cards_are_edited_in_the_admin_through_the_service(people, fraud):
    from audit.models import AuditEvent

    people["alice"].put("models/fraud/versions/1/card", {"intended_use": "x"})
    card = ModelVersion.objects.get(version=1).card
    admin = browser_for(people["admin"])
    url = f"/admin/governance/modelcard/{card.pk}/change/"
    assert admin.get(url).status_code == 200
    answer = admin.post(url, {**FULL_CARD})
    assert answer.status_code == 302
    card.refresh_from_db()
    assert card.limitations == FULL_CARD["limitations"] and card.updated_by == "boss"
    assert AuditEvent.objects.filter(action="model_card.update", actor_username="boss").exists()


def test_each_models_page_in_the_admin_shows_its_timeline(people, fraud):
    from registry.models import RegisteredModel

    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    people["rita"].post(f"transition-requests/{request_id}/approve")
    model = RegisteredModel.objects.get(name="fraud")
    url = f"/admin/registry/registeredmodel/{model.pk}/change/"
    carl = browser_for(people["carl"])
    page = carl.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="timeline"' in text
    production = text.split("<h3>Production</h3>")[1].split("</table>")[0]
    assert "v1" in production and "rita" in production and f"request #{request_id}" in production
    assert carl.post(url, {"name": "renamed"}).status_code == 403  # a view, not an editor
    # A reviewer not designated for the model does not see it.
    people["admin"].put("models/fraud/policy", {"reviewers": ["rob"]})
    assert browser_for(people["rita"]).get(url).status_code == 302
    assert browser_for(people["rob"]).get(url).status_code == 200


POLICY_FORM = {
    "staging_approvals": "0",
    "production_approvals": "1",
    "rollback_approvals": "1",
    "exclude_run_author": "on",
    "require_model_card": "on",
    "required_tags_text": "dataset_version, git_commit",
    "metric_gates_text": "val_auc >= 0.9",
    "protected_aliases_text": "",
}


def test_policies_are_edited_in_the_admin_managers_only_stricter(people, fraud):
    from audit.models import AuditEvent
    from governance.models import ModelPolicy

    admin_browser = Client()
    admin_browser.force_login(people["admin"].user)
    add = admin_browser.get("/admin/governance/modelpolicy/add/").content.decode()
    assert "only make its policy stricter" in add
    created = admin_browser.post(
        "/admin/governance/modelpolicy/add/",
        {
            **POLICY_FORM,
            "model": str(ModelPolicy._meta.get_field("model").related_model.objects.get().pk),
        },
    )
    assert created.status_code == 302, created.content.decode().split("errorlist")[1:3]
    policy = ModelPolicy.objects.get(model__name="fraud")
    assert policy.metric_gates == [{"metric": "val_auc", "op": ">=", "value": 0.9}]
    assert policy.required_tags == ["dataset_version", "git_commit"]
    assert AuditEvent.objects.filter(action="policy.update", actor_username="boss").exists()

    # rita (a reviewer) manages the model: she may tighten it, never loosen it.
    people["alice"].post("models/fraud/permissions", {"user": "rita", "level": "MANAGE"})
    rita = Client()
    rita.force_login(people["rita"].user)
    url = f"/admin/governance/modelpolicy/{policy.pk}/change/"
    form = {**POLICY_FORM, "metric_gates_text": "val_auc >= 0.8"}
    loosened = rita.post(url, form)
    assert loosened.status_code == 200
    assert "metric gate val_auc &gt;= 0.9 loosened" in loosened.content.decode()
    policy.refresh_from_db()
    assert policy.metric_gates[0]["value"] == 0.9
    tightened = rita.post(
        url, {**form, "metric_gates_text": "val_auc >= 0.92", "production_approvals": "2"}
    )
    assert tightened.status_code == 302, tightened.content.decode()[:3000]
    policy.refresh_from_db()
    assert policy.metric_gates[0]["value"] == 0.92 and policy.production_approvals == 2
    bad = rita.post(url, {**form, "metric_gates_text": "val_auc at least 0.9"})
    assert "write it as metric operator number" in bad.content.decode()
    # A compliance officer sees the policy and cannot change it.
    carl = Client()
    carl.force_login(people["carl"].user)
    assert carl.post(url, form).status_code == 403

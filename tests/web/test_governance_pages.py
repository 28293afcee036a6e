"""The promotion workflow in the web UI through Django's test client: request a promotion,
the queue, the review page, one-click approve/reject, the model card form; what each role
is offered, and that the server refuses what is not offered."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from governance.models import ModelCard, TransitionRequest
from registry.models import ModelVersion
from tests.personas import FULL_CARD

pytestmark = pytest.mark.django_db


def signed_in(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_request_review_and_approve_in_the_browser_pages(people, fraud):
    alice, rita = signed_in(people["alice"]), signed_in(people["rita"])
    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    staged = alice.post("/models/fraud/versions/1/request", {"stage": "Staging"}, follow=True)
    assert "Version 1 is now Staging." in staged.content.decode()
    asked = alice.post(
        "/models/fraud/versions/1/request", {"stage": "Production", "comment": "AUC up"}
    )
    request_id = TransitionRequest.objects.get(status="open").pk
    assert asked.status_code == 302 and asked["Location"] == f"/reviews/{request_id}/"
    own = alice.get(f"/reviews/{request_id}/").content.decode()
    assert "separation of duties" in own and 'value="approve"' not in own
    assert 'value="cancel"' in own

    queue = rita.get("/reviews/").content.decode()
    assert f'href="/reviews/{request_id}/"' in queue
    page = rita.get(f"/reviews/{request_id}/").content.decode()
    for expected in (
        "Policy checks",
        'id="compare-metrics"',
        "val_auc",
        'value="approve"',
        "Score card transactions",
    ):
        assert expected in page, expected
    done = rita.post(
        f"/reviews/{request_id}/act", {"action": "approve", "comment": "ok"}, follow=True
    )
    assert "Approved. Version 1 is now Production." in done.content.decode()
    assert ModelVersion.objects.get(version=1).current_stage == "Production"


def test_what_is_not_offered_is_refused(people, fraud):
    bob, carl = signed_in(people["bob"]), signed_in(people["carl"])
    # Bob may read alice's model but not change it: the form is refused.
    refused = bob.post("/models/fraud/versions/1/request", {"stage": "Staging"})
    assert refused.status_code == 403
    assert ModelVersion.objects.get(version=1).current_stage == "None"
    people["alice"].transition(1, "Staging")
    people["alice"].transition(1, "Production")
    request_id = TransitionRequest.objects.get(status="open").pk
    page = carl.get(f"/reviews/{request_id}/").content.decode()
    assert "You cannot review this request" in page
    answer = carl.post(f"/reviews/{request_id}/act", {"action": "approve"}, follow=True)
    assert "reviewer or admin role" in answer.content.decode()
    assert ModelVersion.objects.get(version=1).current_stage == "Staging"
    reject = signed_in(people["rita"]).post(
        f"/reviews/{request_id}/act", {"action": "reject"}, follow=True
    )
    assert "A reason for the rejection is required." in reject.content.decode()
    assert carl.post("/models/fraud/versions/1/card/", FULL_CARD).status_code == 403


def test_the_model_card_form(people, fraud):
    alice = signed_in(people["alice"])
    form = alice.get("/models/fraud/versions/1/card/").content.decode()
    assert "pre-filled from the version" in form and "val_auc: 0.95" in form
    saved = alice.post("/models/fraud/versions/1/card/", FULL_CARD, follow=True)
    assert "Model card saved." in saved.content.decode()
    assert ModelCard.objects.get().missing_fields() == []
    assert "complete" in saved.content.decode()


def test_the_queue_costs_the_same_for_many_requests(people):
    alice = people["alice"]
    from tests.personas import LINEAGE, new_run

    run_id = new_run(alice, LINEAGE)
    rita = signed_in(people["rita"])

    def add_models(count: int, start: int) -> None:
        for i in range(start, start + count):
            name = f"m{i}"
            alice.mlflow("registered-models/create", {"name": name})
            alice.mlflow("model-versions/create", {"name": name, "source": f"runs:/{run_id}/m"})
            alice.transition(1, "Staging", name=name)
            alice.transition(1, "Production", name=name)

    add_models(2, 0)
    with CaptureQueriesContext(connection) as few:
        assert rita.get("/reviews/").status_code == 200
    add_models(8, 2)
    with CaptureQueriesContext(connection) as many:
        page = rita.get("/reviews/").content.decode()
    assert page.count('href="/reviews/') >= 10
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]

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


def test_queue_counts_n_of_m_separates_blocked_and_badges_the_nav(people, fraud):
    from tests.personas import to_production_request

    blocked_id = to_production_request(people)  # no model card yet: blocked
    people["alice"].put("models/fraud/versions/2/card", FULL_CARD)
    ready_id = to_production_request(people, version=2)
    rita = signed_in(people["rita"])
    page = rita.get("/reviews/").content.decode()
    ready_table = page.split('id="queue"')[1].split("</table>")[0]
    blocked_table = page.split('id="queue-blocked"')[1].split("</table>")[0]
    assert f'href="/reviews/{ready_id}/"' in ready_table and "0 of 1" in ready_table
    assert f'href="/reviews/{blocked_id}/"' in blocked_table
    assert "model card incomplete" in blocked_table
    assert 'id="pending-badge"' in page and ">2<" in page.split('id="pending-badge"')[1][:80]
    review = rita.get(f"/reviews/{ready_id}/").content.decode()
    assert 'data-state="ready"' in review and "/api/v1/" not in review.split('id="state"')[1][:400]
    # Data scientists get no badge; compliance officers see every request, read-only.
    assert 'id="pending-badge"' not in signed_in(people["alice"]).get("/reviews/").content.decode()
    carl = signed_in(people["carl"]).get("/reviews/").content.decode()
    everything = carl.split('id="all-requests"')[1].split("</table>")[0]
    assert f'href="/reviews/{ready_id}/"' in everything
    assert f'href="/reviews/{blocked_id}/"' in everything
    assert (
        'value="approve"'
        not in signed_in(people["carl"]).get(f"/reviews/{ready_id}/").content.decode()
    )


def test_reviewers_land_on_their_queue(people):
    landed = Client().post("/login/", {"username": "rita", "password": "rita-pw"})
    assert landed.status_code == 302 and landed["Location"] == "/reviews/"
    other = Client().post("/login/", {"username": "alice", "password": "alice-pw"})
    assert other["Location"] != "/reviews/"


def test_access_page_adds_changes_and_removes_a_grant(people, fraud):
    alice, bob = signed_in(people["alice"]), signed_in(people["bob"])
    page = alice.get("/models/fraud/access/").content.decode()
    assert 'id="add-grant"' in page
    shown = bob.get("/models/fraud/access/").content.decode()
    assert 'id="add-grant"' not in shown and 'id="cannot-manage"' in shown
    refused = bob.post(
        "/models/fraud/access/", {"kind": "user", "principal": "bob", "level": "EDIT"}
    )
    assert refused.status_code == 403
    done = alice.post(
        "/models/fraud/access/",
        {"kind": "user", "principal": "bob", "level": "EDIT", "action": "put"},
        follow=True,
    ).content.decode()
    assert "User bob: EDIT (added)." in done and 'data-principal="user:bob"' in done
    unknown = alice.post(
        "/models/fraud/access/",
        {"kind": "group", "principal": "nobody-team", "level": "READ", "action": "put"},
        follow=True,
    ).content.decode()
    assert "No role or group named" in unknown
    removed = alice.post(
        "/models/fraud/access/",
        {"kind": "user", "principal": "bob", "action": "remove"},
        follow=True,
    ).content.decode()
    assert 'data-principal="user:bob"' not in removed
    index = alice.get("/access/").content.decode()
    assert 'href="/models/fraud/access/"' in index

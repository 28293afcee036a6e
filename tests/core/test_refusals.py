"""One refusal path: a security denial or a rule refusal is answered in the surface's own
shape (MLflow JSON, /api/v1 JSON, an HTML page or message) and recorded exactly once, as
`denied` or `refused`, in a transaction that survives the refused call's rollback; an input
mistake is a plain 400 and leaves no audit event."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from tests.personas import to_production_request

pytestmark = pytest.mark.django_db


def events_since(seq: int):
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def head() -> int:
    last = AuditEvent.objects.order_by("-seq").first()
    return last.seq if last else 0


@pytest.fixture
def read_only_bob(people, fraud):
    """bob may read alice's model and nothing more."""
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "READ"}]}
    assert people["alice"].put("models/fraud/permissions", grants).status_code == 200
    return people["bob"]


def session(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_a_denied_write_is_recorded_once_on_every_surface(people, read_only_bob):
    bob = read_only_bob
    cases = [
        (
            lambda: bob.mlflow(
                "registered-models/set-tag", {"name": "fraud", "key": "k", "value": "v"}
            ),
            "model.edit.denied",
        ),
        (
            lambda: bob.put("models/fraud/policy", {"production_approvals": 0}),
            "model.manage.denied",
        ),
        (
            lambda: session(bob).post("/models/fraud/versions/1/request", {"stage": "Staging"}),
            "model.edit.denied",
        ),
    ]
    for call, action in cases:
        before = head()
        response = call()
        assert response.status_code == 403, response.content
        events = events_since(before)
        assert [(e.action, e.outcome, e.actor_username) for e in events] == [
            (action, "denied", "bob")
        ]
        assert events[0].model_name == "fraud"
    page = session(bob).post("/models/fraud/versions/1/request", {"stage": "Staging"})
    assert b"Not allowed" in page.content
    assert b"error-denied" in page.content


def test_separation_of_duties_is_a_denial_and_a_missing_card_a_rule_refusal(people, fraud):
    alice, rita = people["alice"], people["rita"]
    request_id = to_production_request(people)

    before = head()
    own = alice.post(f"transition-requests/{request_id}/approve")
    assert own.status_code == 403
    assert [(e.action, e.outcome) for e in events_since(before)] == [
        ("transition_request.approve.denied", "denied")
    ]

    before = head()
    early = rita.post(f"transition-requests/{request_id}/approve")
    assert early.status_code == 400
    assert [(e.action, e.outcome, e.actor_username) for e in events_since(before)] == [
        ("transition_request.approve.refused", "refused", "rita")
    ]

    # The same refusal from the web UI: recorded once, shown as a policy matter.
    before = head()
    response = session(rita).post(f"/reviews/{request_id}/act", {"action": "approve"}, follow=True)
    assert response.status_code == 200
    assert [(e.action, e.outcome) for e in events_since(before)] == [
        ("transition_request.approve.refused", "refused")
    ]
    assert b"Not yet: the model&#x27;s policy is not met" in response.content


def test_an_input_mistake_is_not_a_refusal(people, fraud):
    request_id = to_production_request(people)
    before = head()
    response = people["rita"].post(f"transition-requests/{request_id}/reject", {"reason": ""})
    assert response.status_code == 400
    assert events_since(before) == []
    bad_stage = people["alice"].mlflow(
        "model-versions/transition-stage", {"name": "fraud", "version": "1", "stage": "Live"}
    )
    assert bad_stage.status_code == 400
    assert events_since(before) == []


def test_an_unreadable_object_leaves_no_trace_of_its_name(people, fraud):
    """A write to a model the caller may not read is a 404 like a missing model: recording
    it as a denial of 'fraud' would tell the trail's readers nothing new, but answering it
    differently would tell the caller the model exists."""
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "NONE"}]}
    assert people["alice"].put("models/fraud/permissions", grants).status_code == 200
    before = head()
    hidden = people["bob"].mlflow(
        "registered-models/set-tag", {"name": "fraud", "key": "k", "value": "v"}
    )
    missing = people["bob"].mlflow(
        "registered-models/set-tag", {"name": "nothing-here", "key": "k", "value": "v"}
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error_code"] == missing.json()["error_code"]
    assert events_since(before) == []

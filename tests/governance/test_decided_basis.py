"""What a decision rested on is frozen with it: after an approval applies a promotion (which
archives the Production version it replaced) or a rejection, the review screen shows the
comparison as it was at decision time, through the API and the page, not a recomputation
against whatever is in Production now."""

from __future__ import annotations

import pytest
from django.test import Client

from governance.models import TransitionRequest
from tests.personas import FULL_CARD, LINEAGE, new_run, stage, to_production_request

pytestmark = pytest.mark.django_db


def page_of(persona, path: str) -> str:
    client = Client()
    client.force_login(persona.user)
    return client.get(path).content.decode()


def second_version_request(people, auc: float, card: bool = True) -> int:
    """fraud v1 approved into Production; v3 (from a new run with val_auc `auc`, a new
    commit) asks for Production with a complete card."""
    alice, rita = people["alice"], people["rita"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    assert rita.post(f"transition-requests/{to_production_request(people)}/approve").status_code
    assert stage(1) == "Production"
    alice.put(
        "models/fraud/policy", {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.9}]}
    )
    other = new_run(alice, {**LINEAGE, "git_commit": "c0ffee1"}, {"val_auc": auc})
    alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{other}/model"})
    if card:
        alice.put("models/fraud/versions/3/card", FULL_CARD)
    return to_production_request(people, version=3)


def test_an_applied_request_keeps_the_comparison_it_was_approved_on(people, fraud):
    request_id = second_version_request(people, auc=0.97)
    rita, rob = people["rita"], people["rob"]
    live = rita.get(f"transition-requests/{request_id}/review").json()
    assert live["frozen"] is False
    auc = next(r for r in live["compare"]["metrics"] if r["key"] == "val_auc")
    assert auc["delta"] == pytest.approx(0.02) and auc["verdict"] == "better"
    assert auc["goal"] == "higher"
    assert live["lineage"]["commit"] == {
        "candidate": "c0ffee1",
        "production": "b7d9e4a",
        "changed": True,
    }
    assert "v1: Production → Archived" in live["effects"]

    approved = rob.post(f"transition-requests/{request_id}/approve", {"basis": live["basis"]})
    assert approved.json()["applied"] is True
    assert stage(3) == "Production" and stage(1) == "Archived"

    after = rita.get(f"transition-requests/{request_id}/review").json()
    assert after["frozen"] is True
    # Production is v3 itself now; the record still compares with v1, as the approver saw it.
    assert after["production"]["version"] == 1
    for key in ("compare", "checks", "lineage", "effects", "card", "basis"):
        assert after[key] == live[key], key
    stored = TransitionRequest.objects.get(pk=request_id).decided_basis
    assert stored["production"]["version"] == 1

    html = page_of(rita, f"/reviews/{request_id}/")
    assert 'id="frozen"' in html and "nothing was in Production" not in html
    assert 'href="/models/fraud/versions/1/"' in html
    assert "▲ better" in html and "+0.02" in html
    assert 'href="/models/fraud/versions/1/diff/3/"' in html


def test_a_later_change_does_not_alter_a_decided_request(people, fraud):
    request_id = second_version_request(people, auc=0.93, card=False)  # blocked on the card
    rita = people["rita"]
    html = page_of(rita, f"/reviews/{request_id}/")
    assert 'data-state="blocked"' in html and "the model card is missing" in html
    rejected = rita.post(
        f"transition-requests/{request_id}/reject", {"reason": "AUC worse than Production"}
    )
    assert rejected.status_code == 200
    before = rita.get(f"transition-requests/{request_id}/review").json()
    # Production changes after the decision: v1 leaves it (an admin moves it at once).
    people["admin"].put("models/fraud/policy", {"demotion_approvals": 0})
    assert people["alice"].transition(1, "Archived").status_code == 200
    after = rita.get(f"transition-requests/{request_id}/review").json()
    assert after["frozen"] is True and after["production"]["version"] == 1
    assert after["compare"] == before["compare"]
    auc = next(r for r in after["compare"]["metrics"] if r["key"] == "val_auc")
    assert auc["verdict"] == "worse"

    # Who rejected it and why: on the page, and in the requester's list.
    html = page_of(rita, f"/reviews/{request_id}/")
    assert '<span id="decided-by">rita</span>' in html
    assert "AUC worse than Production" in html
    mine = page_of(people["alice"], "/reviews/")
    assert "AUC worse than Production" in mine and ">rita<" in mine


def test_an_open_request_is_not_frozen(people, fraud):
    request_id = to_production_request(people)
    screen = people["rita"].get(f"transition-requests/{request_id}/review").json()
    assert screen["frozen"] is False
    assert TransitionRequest.objects.get(pk=request_id).decided_basis is None


def test_an_infinite_metric_is_recorded_and_shown_as_text(people, fraud):
    """1e999 in a JSON body is infinity; strict JSON (the API, jsonb) has no number for it."""
    alice = people["alice"]
    body = (
        f'{{"run_id": "{fraud}", "metrics": '
        '[{"key": "loss", "value": 1e999, "timestamp": 2, "step": 1}]}'
    )
    logged = alice.client.post(
        "/api/2.0/mlflow/runs/log-batch", body, content_type="application/json"
    )
    assert logged.status_code == 200, logged.content
    request_id = to_production_request(people)
    screen = people["rita"].get(f"transition-requests/{request_id}/review")
    assert screen.status_code == 200
    loss = next(r for r in screen.json()["compare"]["metrics"] if r["key"] == "loss")
    assert loss["candidate"] == "inf"
    rejected = people["rita"].post(f"transition-requests/{request_id}/reject", {"reason": "inf"})
    assert rejected.status_code == 200
    assert TransitionRequest.objects.get(pk=request_id).decided_basis["compare"]["metrics"]
    assert "inf" in page_of(people["rita"], f"/reviews/{request_id}/")

"""What an approval is worth: it counts only for the request, version, stage and content it was
given for; every requester is kept from reviewing; requests go stale whatever moved the
version; protected aliases never outlive Production. All over HTTP, as users act."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from governance.models import Review, TransitionRequest
from registry import services as registry_services
from tests.personas import FULL_CARD, stage, to_production_request

pytestmark = pytest.mark.django_db


def test_an_approval_stops_counting_when_what_it_approved_changes(people, fraud):
    admin, alice, rita, rob = (people[k] for k in ("admin", "alice", "rita", "rob"))
    admin.put("models/fraud/policy", {"production_approvals": 2})
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    assert rita.post(f"transition-requests/{request_id}/approve").json()["applied"] is False

    # The requester rewrites the card after rita's approval: rita approved another card.
    changed = {**FULL_CARD, "limitations": "None worth mentioning."}
    assert alice.put("models/fraud/versions/1/card", changed).status_code == 200
    answer = rob.post(f"transition-requests/{request_id}/approve").json()
    assert answer["applied"] is False and stage(1) == "Staging"
    message = answer["missing"][0]["message"]
    assert "1 more approval needed (1 of 2)" in message
    assert "rita approved before the source run or the model card changed" in message

    # A new metric on the source run also changes what was approved.
    alice.mlflow(
        "runs/log-metric",
        {"run_id": fraud, "key": "val_auc", "value": 0.96, "timestamp": 3, "step": 2},
    )
    again = rita.post(f"transition-requests/{request_id}/approve").json()
    assert again["applied"] is False, "rob's approval predates the new metric"
    final = rob.post(f"transition-requests/{request_id}/approve").json()
    assert final["applied"] is True and stage(1) == "Production"
    event = AuditEvent.objects.filter(action="model_version.transition").latest("seq")
    assert sorted(event.after["approved_by"]) == ["rita", "rob"]


def test_whoever_asks_for_an_open_request_is_a_requester_too(people, fraud):
    admin, rob = people["admin"], people["rob"]
    admin.put("models/fraud/policy", {"reviewers": ["rita", "rob"]})
    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    # rob may edit the model, so he can ask for the move himself.
    grants = [{"user": "alice", "level": "MANAGE"}, {"user": "rob", "level": "EDIT"}]
    grant = admin.put("models/fraud/permissions", {"grants": grants})
    assert grant.status_code in (200, 201), grant.content
    request_id = to_production_request(people)
    reused = rob.transition(1, "Production")
    assert (
        reused.status_code == 400 and f"transition request {request_id}" in reused.json()["message"]
    )
    assert TransitionRequest.objects.filter(status="open").count() == 1
    joined = AuditEvent.objects.get(action="transition_request.join")
    assert joined.actor_username == "rob" and joined.after["also_requested_by"] == "rob"

    for route in ("api", "databricks"):
        if route == "api":
            refused = rob.post(f"transition-requests/{request_id}/approve")
            text = refused.json()["error"]["message"]
        else:
            refused = rob.mlflow(
                "transition-requests/approve",
                {"name": "fraud", "version": "1", "stage": "Production", "comment": "ok"},
            )
            text = refused.json()["message"]
        assert refused.status_code == 403, (route, refused.content)
        assert "separation of duties" in text
    assert stage(1) == "Staging"
    assert people["rita"].post(f"transition-requests/{request_id}/approve").json()["applied"]


def test_the_run_author_cannot_approve_through_the_databricks_route(people, fraud):
    from tracking.models import Run

    Run.objects.filter(run_id=fraud).update(user_id="rita")
    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    to_production_request(people)
    refused = people["rita"].mlflow(
        "transition-requests/approve", {"name": "fraud", "version": "1", "stage": "Production"}
    )
    assert refused.status_code == 403 and "author of run" in refused.json()["message"]


def test_requests_go_stale_when_the_archiving_task_or_a_delete_moves_the_version(people, fraud):
    alice, carl = people["alice"], people["carl"]
    first = to_production_request(people, version=1)
    # Version 1 is archived by the registry's archiving task (no workflow involved).
    from registry.models import ModelVersion, RegisteredModel

    model = RegisteredModel.objects.get(name="fraud")
    alice.put("models/fraud/versions/2/card", FULL_CARD)
    people["admin"].put("models/fraud/policy", {"production_approvals": 0})
    assert alice.transition(2, "Staging").status_code == 200
    assert alice.transition(2, "Production").status_code == 200
    production = ModelVersion.objects.get(registered_model=model, version=2)
    archived = registry_services.archive_superseded(
        registered_model_id=model.pk, production_version_id=production.pk
    )
    assert archived == [1]
    listed = carl.get("transition-requests", {"status": "stale", "model": "fraud"}).json()
    assert [r["id"] for r in listed["requests"]] == [first]
    assert "now Archived, not Staging" in listed["requests"][0]["status_reason"]
    assert TransitionRequest.objects.get(pk=first).status == "stale"  # stored, not just shown

    # A deleted version's open request goes stale too.
    created = alice.mlflow(
        "model-versions/create", {"name": "fraud", "source": f"runs:/{fraud}/model"}
    )
    assert created.status_code == 200
    people["admin"].put("models/fraud/policy", {"staging_approvals": 1})
    assert alice.transition(3, "Staging").status_code == 400
    open_one = TransitionRequest.objects.get(status="open")
    deleted = alice.mlflow("model-versions/delete", {"name": "fraud", "version": "3"}, "DELETE")
    assert deleted.status_code == 200, deleted.content
    open_one.refresh_from_db()
    assert open_one.status == "stale" and "deleted" in open_one.status_reason


def test_a_protected_alias_never_outlives_production(people, fraud):
    admin, alice = people["admin"], people["alice"]
    admin.put("models/fraud/policy", {"production_approvals": 0})
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    alice.transition(1, "Staging")
    alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"})
    # Protecting an alias that points at a Staging version is refused, with what to do.
    refused = admin.put("models/fraud/policy", {"protected_aliases": ["champion"]})
    assert refused.status_code == 400
    assert "'champion' points at version 1 (Staging)" in json.dumps(refused.json())
    assert alice.transition(1, "Production").status_code == 200
    assert admin.put("models/fraud/policy", {"protected_aliases": ["champion"]}).status_code == 200
    # Demoting the version takes the protected alias off it, audited.
    assert alice.transition(1, "Staging").status_code == 200
    gone = alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "champion"}, "GET")
    assert gone.status_code == 400 and "not found" in gone.json()["message"]  # as MLflow answers
    event = AuditEvent.objects.filter(action="model_version.alias.delete").latest("seq")
    assert event.before == {"alias": "champion", "version": 1}


@pytest.mark.parametrize(
    "at", ["2026-02-30T00:00:00", "2026-13-01T00:00:00", "0001-01-01T00:00:00+05:00", "soon"]
)
def test_impossible_timeline_instants_are_a_400(people, fraud, at):
    answer = people["carl"].get("models/fraud/timeline", {"at": at})
    assert answer.status_code == 400, answer.content
    assert "ISO 8601" in json.dumps(answer.json())


def test_a_gate_value_too_large_for_a_float_is_a_400(people, fraud):
    gate = {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 10**400}]}
    answer = people["admin"].put("models/fraud/policy", gate)
    assert answer.status_code == 400, answer.content
    assert "finite number" in json.dumps(answer.json())


AT_ONCE, REQUEST, REFUSED = "at once", "opens a request", "refused"
# Archived → Production is a rollback: only for a version that was in Production before.
NEVER_IN_PRODUCTION = "refused: never in Production"
DEFAULT_POLICY_TABLE = [
    ("None", "Staging", AT_ONCE),
    ("None", "Production", REFUSED),
    ("None", "Archived", AT_ONCE),
    ("Staging", "None", AT_ONCE),
    ("Staging", "Production", REQUEST),
    ("Staging", "Archived", AT_ONCE),
    # Leaving Production takes the version out of serving: reviewed like entering it.
    ("Production", "Staging", REQUEST),
    ("Production", "None", REFUSED),
    ("Production", "Archived", REQUEST),
    ("Archived", "None", AT_ONCE),
    ("Archived", "Staging", REFUSED),
    ("Archived", "Production", NEVER_IN_PRODUCTION),
    ("Archived (was in Production)", "Production", REQUEST),
]


@pytest.mark.parametrize(("source", "target", "expected"), DEFAULT_POLICY_TABLE)
def test_the_transition_table_under_the_default_policy(people, fraud, source, target, expected):
    """Every move, by the model's owner through the MLflow route, with the lineage tags and a
    complete card in place: what happens at once, what waits for a reviewer, what is refused
    and the allowed paths the refusal names."""
    from registry.models import ModelVersion

    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    was_in_production = source.endswith("(was in Production)")
    source = source.split(" ")[0]
    ModelVersion.objects.filter(version=1).update(  # the starting state
        current_stage=source, was_in_production=was_in_production
    )
    answer = people["alice"].transition(1, target)
    body = answer.json()
    if expected == AT_ONCE:
        assert answer.status_code == 200, body
        assert body["model_version"]["current_stage"] == target == stage(1)
    elif expected == REQUEST:
        assert answer.status_code == 400 and body["error_code"] == "INVALID_STATE"
        assert "1 more approval needed" in body["message"] and stage(1) == source
        assert TransitionRequest.objects.filter(status="open", to_stage=target).exists()
    elif expected == NEVER_IN_PRODUCTION:
        assert answer.status_code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert f"from {source} to {target}" in body["message"]
        assert "only a version that has been in Production before" in body["message"]
        assert stage(1) == source
        assert not TransitionRequest.objects.filter(status="open").exists()
    else:
        assert answer.status_code == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert f"from {source} to {target}" in body["message"]
        assert f"From {source} it may move to:" in body["message"] and stage(1) == source
        assert not TransitionRequest.objects.filter(status="open").exists()


@pytest.mark.parametrize(
    ("op", "threshold", "logged", "passes", "says"),
    [
        (">=", 0.95, 0.95, True, ""),
        (">", 0.95, 0.95, False, "val_auc > 0.95 fails: the run has 0.95"),
        ("<=", 0.5, 0.4, True, ""),
        ("<", 0.4, 0.4, False, "val_auc < 0.4 fails: the run has 0.4"),
        ("==", 1.0, 1.0, True, ""),
        (">=", 0.5, "NaN", False, "val_auc >= 0.5 fails: NaN"),
        (">=", 0.5, None, False, "val_auc >= 0.5: the run has no such metric"),
    ],
)
def test_every_metric_gate_operator(people, op, threshold, logged, passes, says):
    from tests.personas import LINEAGE, new_run

    alice, admin = people["alice"], people["admin"]
    run_id = new_run(alice, LINEAGE)
    if logged is not None:
        alice.mlflow(
            "runs/log-metric",
            {"run_id": run_id, "key": "val_auc", "value": logged, "timestamp": 1, "step": 0},
        )
    alice.mlflow("registered-models/create", {"name": "gated"})
    alice.mlflow("model-versions/create", {"name": "gated", "source": f"runs:/{run_id}/model"})
    gate = {"metric_gates": [{"metric": "val_auc", "op": op, "value": threshold}]}
    assert admin.put("models/gated/policy", gate).status_code == 200
    answer = alice.transition(1, "Staging", name="gated")
    if passes:
        assert answer.status_code == 200, answer.content
    else:
        assert answer.status_code == 400 and says in answer.json()["message"]
        assert stage(1, "gated") == "None"


def test_approve_is_not_offered_until_everything_else_is_in_place(people, fraud):
    from django.test import Client

    request_id = to_production_request(people)  # the card is still missing
    pages = (f"/reviews/{request_id}/", f"/admin/governance/transitionrequest/{request_id}/change/")
    rita = Client()
    rita.force_login(people["rita"].user)
    for url in pages:
        page = rita.get(url).content.decode()
        assert "Approval opens once these are in place: the model card is missing" in page, url
        assert 'value="approve"' not in page and 'value="reject"' in page, url
    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    for url in pages:
        page = rita.get(url).content.decode()
        assert 'value="approve"' in page and "Approval opens once" not in page, url


def test_attempts_the_policy_refuses_are_in_the_trail(people, fraud):
    from tests.personas import new_run

    admin, alice = people["admin"], people["alice"]
    admin.put(
        "models/fraud/policy",
        {"protected_aliases": ["champion"], "require_tags_at_registration": True},
    )
    alias = {"name": "fraud", "alias": "champion", "version": "1"}
    assert alice.mlflow("registered-models/alias", alias).status_code == 403
    untagged = new_run(alice)
    refused = alice.mlflow(
        "model-versions/create", {"name": "fraud", "source": f"runs:/{untagged}/model"}
    )
    assert refused.status_code == 400
    events = people["carl"].get("audit/events", {"model": "fraud", "outcome": "refused"}).json()
    by_action = {e["action"]: e for e in events["events"]}
    alias_event = by_action["model_version.alias.set.refused"]
    assert alias_event["actor"]["username"] == "alice"
    assert alias_event["object"]["model_version"] == 1
    assert alias_event["after"] == {"alias": "champion"} and "protected" in alias_event["reason"]
    created = by_action["model_version.create.refused"]
    assert created["after"] == {"run_id": untagged} and "lineage tag" in created["reason"]
    # Nothing else happened: no alias, no version 3.
    assert people["carl"].get("audit/verify").json()["ok"] is True
    from registry.models import ModelVersion, RegisteredModelAlias

    assert not RegisteredModelAlias.objects.exists()
    assert ModelVersion.objects.filter(registered_model__name="fraud").count() == 2


def test_the_queue_is_for_reviewers_and_leaves_out_what_they_asked_for(people, fraud):
    admin, rob = people["admin"], people["rob"]
    grants = [{"user": "alice", "level": "MANAGE"}, {"user": "rob", "level": "EDIT"}]
    admin.put("models/fraud/permissions", {"grants": grants})
    request_id = to_production_request(people)
    assert [r["id"] for r in people["rita"].get("transition-requests").json()["requests"]] == [
        request_id
    ]
    assert people["bob"].get("transition-requests").json()["requests"] == []  # not a reviewer
    assert [r["id"] for r in rob.get("transition-requests").json()["requests"]] == [request_id]
    rob.transition(1, "Production")  # rob asks too: a co-requester does not review it
    assert rob.get("transition-requests").json()["requests"] == []
    by_model = people["carl"].get("transition-requests", {"model": "fraud", "status": "open"})
    assert [r["id"] for r in by_model.json()["requests"]] == [request_id]


def test_a_compliance_officer_who_also_reviews_is_queued_only_what_they_review(people, fraud):
    from django.contrib.auth.models import Group

    carl = people["carl"]
    carl.user.groups.add(Group.objects.get(name="reviewer"))
    request_id = to_production_request(people)
    assert [r["id"] for r in carl.get("transition-requests").json()["requests"]] == [request_id]
    people["admin"].put("models/fraud/policy", {"reviewers": ["rob"]})
    assert carl.get("transition-requests").json()["requests"] == []
    everything = carl.get("transition-requests", {"queue": "false", "status": "open"}).json()
    assert [r["id"] for r in everything["requests"]] == [request_id]  # still reads them all


def test_a_new_commit_or_dataset_on_the_run_also_outdates_an_approval(people, fraud):
    admin, alice, rita, rob = (people[k] for k in ("admin", "alice", "rita", "rob"))
    admin.put("models/fraud/policy", {"production_approvals": 2})
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)

    def approve(who) -> bool:
        return who.post(f"transition-requests/{request_id}/approve").json()["applied"]

    assert approve(rita) is False
    alice.mlflow(
        "runs/set-tag", {"run_id": fraud, "key": "mlflow.source.git.commit", "value": "d00dfeed"}
    )
    assert approve(rob) is False  # rita approved another commit
    late = {"name": "late", "digest": "1234", "source_type": "local", "source": "{}"}
    alice.mlflow("runs/log-inputs", {"run_id": fraud, "datasets": [{"dataset": late}]})
    assert approve(rita) is False  # rob approved without the new dataset
    assert stage(1) == "Staging"
    # A note is not what was reviewed: MLflow's own tags (but the commit) leave approvals be.
    alice.mlflow("runs/set-tag", {"run_id": fraud, "key": "mlflow.note.content", "value": "hi"})
    assert approve(rob) is True and stage(1) == "Production"


def test_an_approval_from_a_screen_that_no_longer_shows_the_truth_is_refused(people, fraud):
    alice, rita = people["alice"], people["rita"]
    alice.put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    seen = rita.get(f"transition-requests/{request_id}/review").json()["basis"]
    alice.put("models/fraud/versions/1/card", {**FULL_CARD, "caveats": "Never retrain."})
    stale = rita.post(f"transition-requests/{request_id}/approve", {"basis": seen})
    assert stale.status_code == 409 and "reload it" in stale.json()["error"]["message"]
    assert stage(1) == "Staging"
    fresh = rita.get(f"transition-requests/{request_id}/review").json()["basis"]
    ok = rita.post(f"transition-requests/{request_id}/approve", {"basis": fresh})
    assert ok.status_code == 200 and ok.json()["applied"] is True


def test_the_review_forms_carry_what_the_reviewer_saw(people, fraud):
    from django.test import Client

    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    rita = Client()
    rita.force_login(people["rita"].user)
    page = rita.get(f"/reviews/{request_id}/").content.decode()
    basis = page.split('name="basis" value="')[1].split('"')[0]
    assert len(basis) == 64
    people["alice"].put("models/fraud/versions/1/card", {**FULL_CARD, "caveats": "Changed."})
    answer = rita.post(
        f"/reviews/{request_id}/act", {"action": "approve", "basis": basis}, follow=True
    )
    assert "changed after you opened" in answer.content.decode() and stage(1) == "Staging"


def test_a_replayed_approval_reports_what_is_still_missing(people, fraud):
    """The same reviewer approving twice a request that needs two approvals: the second
    answer says, as the first did, that one approval is still missing, and counts nothing."""
    people["admin"].put("models/fraud/policy", {"production_approvals": 2})
    people["alice"].put("models/fraud/versions/1/card", FULL_CARD)
    request_id = to_production_request(people)
    first = people["rita"].post(f"transition-requests/{request_id}/approve")
    again = people["rita"].post(f"transition-requests/{request_id}/approve")
    assert first.status_code == again.status_code == 200
    for answer in (first.json(), again.json()):
        assert answer["applied"] is False and answer["status"] == "open"
        assert [m["code"] for m in answer["missing"]] == ["approvals"]
        assert "1 more approval needed (1 of 2)" in answer["missing"][0]["message"]
    assert Review.objects.filter(request_id=request_id).count() == 1
    assert AuditEvent.objects.filter(action="transition_request.approve").count() == 1
    assert stage(1) == "Staging"
    assert people["rob"].post(f"transition-requests/{request_id}/approve").json()["applied"]

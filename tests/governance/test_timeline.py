"""The model timeline read back from the audit trail, over HTTP: Production and Staging
intervals with who moved each version and on whose approval, aliases, and "what was in
Production at time t"."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.personas import FULL_CARD, to_production_request

pytestmark = pytest.mark.django_db


def test_timeline_shows_who_moved_what_and_on_whose_approval(people, fraud):
    alice, rita, carl = people["alice"], people["rita"], people["carl"]
    for version in (1, 2):
        alice.put(f"models/fraud/versions/{version}/card", FULL_CARD)
    first = to_production_request(people, version=1)
    rita.post(f"transition-requests/{first}/approve")
    alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "canary", "version": "1"})
    between = datetime.now(tz=UTC)
    second = to_production_request(people, version=2)
    people["rob"].post(f"transition-requests/{second}/approve")
    alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "canary", "version": "2"})

    with CaptureQueriesContext(connection) as queries:
        timeline = carl.get("models/fraud/timeline").json()
    assert len(queries) <= 8
    production = timeline["stages"]["Production"]
    assert [i["version"] for i in production] == [1, 2]
    assert production[0]["approved_by"] == ["rita"] and production[0]["requested_by"] == "alice"
    assert production[0]["moved_in_by"] == "rita"  # the approval applied the move
    assert production[0]["transition_request"] == first
    assert production[0]["until"] is not None
    assert "superseded in Production by version 2" in production[0]["moved_out_reason"]
    assert production[1]["approved_by"] == ["rob"] and production[1]["until"] is None
    staging = timeline["stages"]["Staging"]
    assert [i["version"] for i in staging] == [1, 2]
    assert staging[0]["moved_out_reason"] == "moved to Production"  # says where it went
    canary = timeline["aliases"]["canary"]
    assert [i["version"] for i in canary] == [1, 2] and canary[0]["until"] is not None

    then = carl.get("models/fraud/timeline", {"at": between.isoformat()}).json()["at"]
    assert [i["version"] for i in then["stages"]["Production"]] == [1]
    assert [i["version"] for i in then["aliases"]["canary"]] == [1]
    before_anything = carl.get("models/fraud/timeline", {"at": "2000-01-01T00:00:00Z"}).json()
    assert before_anything["at"]["stages"]["Production"] == []
    bad = carl.get("models/fraud/timeline", {"at": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]["message"]


def test_timeline_survives_a_rename_and_respects_permissions(people, fraud):
    alice, admin = people["alice"], people["admin"]
    admin.put(
        "models/fraud/policy",
        {"required_tags": [], "production_approvals": 0, "require_model_card": False},
    )
    alice.transition(1, "Staging")
    assert (
        alice.mlflow(
            "registered-models/rename", {"name": "fraud", "new_name": "fraud-v2"}
        ).status_code
        == 200
    )
    alice.transition(1, "Production", name="fraud-v2")
    timeline = alice.get("models/fraud-v2/timeline").json()
    assert [i["version"] for i in timeline["stages"]["Staging"]] == [1]
    assert [i["version"] for i in timeline["stages"]["Production"]] == [1]
    grants = {
        "grants": [
            {"user": "alice", "level": "MANAGE"},
            {"group": "data-scientist", "level": "NONE"},
        ]
    }
    admin.put("models/fraud-v2/permissions", grants)
    assert people["bob"].get("models/fraud-v2/timeline").status_code == 404

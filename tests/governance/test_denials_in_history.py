"""Refused writes name the model and version the request named, so they appear in that
model's audit history and its exports."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_refused_writes_appear_in_the_models_history(people, fraud):
    bob, carl = people["bob"], people["carl"]
    refused = bob.transition(1, "Staging")
    assert refused.status_code == 403
    edit = bob.mlflow(
        "registered-models/update", {"name": "fraud", "description": "mine now"}, "PATCH"
    )
    assert edit.status_code == 403
    tag = bob.mlflow(
        "model-versions/set-tag", {"name": "fraud", "version": "2", "key": "k", "value": "v"}
    )
    assert tag.status_code == 403
    assert carl.transition(2, "Production").status_code == 403  # compliance changes nothing

    history = carl.get("audit/events", {"model": "fraud", "outcome": "denied"}).json()["events"]
    seen = {
        (e["actor"]["username"], e["object"]["model_name"], e["object"]["model_version"])
        for e in history
    }
    assert {("bob", "fraud", 1), ("bob", "fraud", None), ("bob", "fraud", 2)} <= seen
    assert ("carl", "fraud", 2) in seen
    assert all(e["action"] == "model.edit.denied" for e in history)
    csv = b"".join(
        carl.client.get(
            "/api/v1/audit/events", {"model": "fraud", "version": "1", "export": "csv"}
        ).streaming_content
    ).decode()
    assert "model.edit.denied" in csv and "bob" in csv

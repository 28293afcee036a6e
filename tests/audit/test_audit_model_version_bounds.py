"""A model version the request names but the column cannot hold (out of its 32-bit range)
is recorded as no version: the refusal stays a 4xx and the chain verifies."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.selectors import verify_live_chain

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("version", ["99999999999", "2147483648", "9" * 30, "-1"])
def test_an_out_of_range_version_in_a_refused_transition_is_a_4xx(people, fraud, version):
    before = AuditEvent.objects.count()
    response = people["alice"].mlflow(
        "model-versions/transition-stage",
        {"name": "fraud", "version": version, "stage": "Bogus"},
    )
    assert 400 <= response.status_code < 500, response.content
    result = verify_live_chain()
    assert result.ok, result.reason
    recorded = AuditEvent.objects.order_by("seq")[before:]
    assert all(e.model_version is None for e in recorded if e.model_name == "fraud")


def test_an_in_range_version_is_still_recorded(people, fraud):
    response = people["alice"].transition(2, "Bogus")
    assert 400 <= response.status_code < 500, response.content
    assert verify_live_chain().ok
    assert AuditEvent.objects.filter(model_version=2).exists()


@pytest.mark.parametrize("version", ["1" * 30, "-1", "2147483648", "x"])
def test_an_impossible_version_filter_is_a_400(version):
    from django.test import Client

    from accounts import services as accounts

    accounts.user_create(username="carl-v", role="compliance", password="carl-v-pw-1")
    client = Client()
    client.login(username="carl-v", password="carl-v-pw-1")
    for export in ("", "csv"):
        answer = client.get("/api/v1/audit/events", {"version": version, "export": export})
        assert answer.status_code == 400, (version, export, answer.content[:200])
        assert "whole number" in answer.content.decode()

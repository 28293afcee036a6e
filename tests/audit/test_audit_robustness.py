"""Bad or unusual input never turns into a 5xx on the audit path: over-long names, non-finite
floats, odd page parameters and text PostgreSQL cannot store. Run on PostgreSQL
(DATABASE_URL=postgres://...) to see the database's own refusals."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client

from accounts import services as accounts
from audit import services as audit_services
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer():
    user = accounts.user_create(username="cora", role="compliance", password="cora-pw-1")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=user, name='t')[1]}")
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    return api, browser


def verified(api: Client) -> dict:
    body = api.get("/api/v1/audit/verify").json()
    assert body["ok"], body
    return body


def test_long_lineage_ends_are_cut_to_the_column_and_still_verify(auth_client, officer):
    api, _ = officer
    source, target = "dataset:" + "s" * 592, "dataset:" + "t" * 592
    response = auth_client.post(
        "/api/v1/lineage/links",
        {"source": source, "target": target, "kind": "derived_from"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    (event,) = api.get("/api/v1/audit/events", {"action": "lineage.link.create"}).json()["events"]
    name = event["object"]["name"]
    assert len(name) == 500 and name.startswith(source[:400]) and name.endswith("\u2026")
    assert event["after"]["source"] == source  # the snapshot keeps the whole value
    verified(api)


def test_non_finite_floats_and_unstorable_text_in_snapshots_are_recorded(officer):
    api, _ = officer
    with transaction.atomic():
        audit_services.record(
            action="test.odd_values",
            object_type="test",
            object_id="x" * 300,
            object_name="a\x00b",
            before={"inf": float("inf"), "nested": [float("-inf"), float("nan")], "z": -0.0},
            after={"text": "nul\x00here", "lone": "\ud800", "k\x00": 1},
        )
    event = AuditEvent.objects.get(action="test.odd_values")
    assert event.before == {"inf": "inf", "nested": ["-inf", "nan"], "z": 0.0}
    assert event.after == {"text": "nul\ufffdhere", "lone": "\ufffd", "k\ufffd": 1}
    assert len(event.object_id) == 255 and event.object_name == "a\ufffdb"
    verified(api)


def test_audit_page_ignores_a_non_ascii_page_cursor(officer):
    _, browser = officer
    accounts.user_create(username="someone", role="data-scientist")
    for value in ("\u00b2", "\u0661\u0662", "9" * 40, "-3", ""):
        response = browser.get("/audit/", {"before_seq": value})
        assert response.status_code == 200, (value, response.status_code)


def test_unstorable_text_in_pages_and_forms_is_a_clear_400(officer):
    api, browser = officer
    page = browser.get("/audit/", {"model": "\x00"})
    assert page.status_code == 400
    assert b"NUL characters" in page.content
    exported = browser.post("/audit/", {"format": "csv", "model": "a\x00b"})
    assert exported.status_code == 400 and b"NUL characters" in exported.content
    assert api.get("/api/v1/audit/events", {"actor": "\x00"}).status_code == 400
    assert browser.get("/models/", {"q": "\x00"}).status_code == 400
    assert browser.get("/audit/", {"model": "fine"}).status_code == 200
    assert not AuditEvent.objects.filter(action="audit.export.create").exists()


def test_large_floats_hash_as_the_database_returns_them(officer):
    # jsonb gives 1e16 back as the integer 10000000000000000 (Python wrote "1e+16").
    api, _ = officer
    with transaction.atomic():
        audit_services.record(
            action="test.floats",
            object_type="test",
            object_id="1",
            after={"v": 1e16, "w": 1e300, "x": 1.5, "y": 1e-7, "z": -1e20, "n": [2.5e17]},
        )
    event = AuditEvent.objects.get(action="test.floats")
    assert event.after == {
        "v": 10**16,
        "w": int(1e300),
        "x": 1.5,
        "y": 1e-7,
        "z": -(10**20),
        "n": [250000000000000000],
    }
    verified(api)


def test_a_policy_gate_of_1e16_keeps_the_chain_verifiable(people, fraud):
    admin, carl = people["admin"], people["carl"]
    gate = {"metric_gates": [{"metric": "val_auc", "op": "<=", "value": 1e16}]}
    assert admin.put("models/fraud/policy", gate).status_code == 200
    verified(carl.client)

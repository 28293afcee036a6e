"""Registry pages through Django's test client: the models list, a model's page with its
versions, deployments and timeline, a version's page with its governance section; what a
user may not read does not appear; lists cost a fixed number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core import process_cache
from governance.models import TransitionRequest
from registry.models import ModelVersion
from tests.personas import FULL_CARD, LINEAGE, new_run

pytestmark = pytest.mark.django_db


def signed_in(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def test_models_list_model_and_version_pages(people, fraud):
    alice = people["alice"]
    people["admin"].put(
        "models/fraud/policy", {"production_approvals": 0, "require_model_card": False}
    )
    alice.transition(1, "Staging")
    alice.transition(1, "Production")
    alice.transition(2, "Staging")
    alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"})
    alice.post("deployments", {"endpoint": "/predict", "model_uri": "models:/fraud/Production"})
    browser = signed_in(alice)
    listing = browser.get("/models/").content.decode()
    assert 'href="/models/fraud/versions/1/"' in listing and "stage-production" in listing
    assert "@champion → v1" in listing
    page = browser.get("/models/fraud/").content.decode()
    for expected in ('id="versions"', "/predict", 'id="timeline"', "Production", "v2"):
        assert expected in page, expected
    # Each version row links its version page and its source run.
    run_id = ModelVersion.objects.get(registered_model__name="fraud", version=2).run_id
    assert '<td><a href="/models/fraud/versions/2/">v2</a></td>' in page
    assert f'<a href="/runs/{run_id}/">{run_id[:8]}…</a>' in page
    version = browser.get("/models/fraud/versions/1/").content.decode()
    for expected in (
        'id="version-stage">Production',
        'id="review-chain"',
        "@champion",
        'id="lineage-link"',
        "/predict",
        "Edit the model card",
    ):
        assert expected in version, expected
    assert browser.get("/models/fraud/versions/9/").status_code == 404


def test_unreadable_models_do_not_appear(people, fraud):
    grants = {
        "grants": [
            {"user": "alice", "level": "MANAGE"},
            {"group": "data-scientist", "level": "NONE"},
        ]
    }
    people["admin"].put("models/fraud/permissions", grants)
    bob = signed_in(people["bob"])
    assert "/models/fraud/" not in bob.get("/models/").content.decode()
    assert bob.get("/models/fraud/").status_code == 404
    assert bob.get("/models/fraud/versions/1/").status_code == 404
    assert bob.get("/models/fraud/versions/1/card/").status_code == 404


def test_read_only_users_are_not_offered_actions(people, fraud):
    page = signed_in(people["bob"]).get("/models/fraud/versions/1/").content.decode()
    assert 'id="request-form"' not in page and "Read the model card" in page
    mine = signed_in(people["alice"]).get("/models/fraud/versions/1/").content.decode()
    assert 'id="request-form"' in mine and '<option value="Staging">' in mine


def test_registry_lists_cost_the_same_for_many_rows(people, fraud):
    alice = people["alice"]
    browser = signed_in(alice)
    run_id = new_run(alice, LINEAGE)

    def grow(start: int, count: int) -> None:
        for i in range(start, start + count):
            alice.mlflow("registered-models/create", {"name": f"m{i}"})
            alice.mlflow("model-versions/create", {"name": f"m{i}", "source": f"runs:/{run_id}/m"})
            alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{run_id}/m"})
            alice.mlflow("registered-models/alias", {"name": f"m{i}", "alias": "a", "version": "1"})

    def measured(path: str):
        # From cold per-process caches (identity, roles, grants, resolutions) and a fresh
        # version poll, so both measurements count the page's own queries, not what an
        # earlier request left cached or how long ago the versions were read.
        process_cache.clear_all()
        with CaptureQueriesContext(connection) as queries:
            response = browser.get(path)
        assert response.status_code == 200
        return queries, response.content.decode()

    grow(0, 2)
    few_list, _ = measured("/models/")
    few_model, _ = measured("/models/fraud/")
    few_version, _ = measured("/models/fraud/versions/2/")
    grow(2, 6)
    many_list, listing = measured("/models/")
    many_model, _ = measured("/models/fraud/")
    many_version, _ = measured("/models/fraud/versions/2/")
    assert listing.count('href="/models/m') >= 8
    assert len(many_list) == len(few_list)
    assert len(many_model) == len(few_model)
    assert len(many_version) == len(few_version)


def test_version_diff_tags_and_audit_exports_have_header_cells(people, fraud):
    import re

    alice = people["alice"]
    alice.mlflow(
        "model-versions/set-tag", {"name": "fraud", "version": "2", "key": "k", "value": "v"}
    )
    page = signed_in(alice).get("/models/fraud/versions/1/diff/2/")
    html = page.content.decode()
    assert page.status_code == 200, html[:300]
    tags = re.search(r'<table class="grid" id="diff-tags">(.*?)</table>', html, re.S).group(1)
    assert (
        '<thead><tr><th scope="col">Tag</th>' in tags and '<th scope="row">version.k</th>' in tags
    )
    audit = signed_in(people["carl"]).get("/audit/").content.decode()
    assert '<th scope="col"></th>' not in audit and 'class="sr-only">Download' in audit


def test_roll_back_button_opens_a_rollback_request(people, fraud):
    from governance.models import TransitionRequest
    from tests.personas import FULL_CARD, stage

    alice, rita = people["alice"], people["rita"]
    people["admin"].put("models/fraud/policy", {"production_approvals": 0})
    for version in (1, 2):
        alice.put(f"models/fraud/versions/{version}/card", FULL_CARD)
        alice.transition(version, "Staging")
        assert alice.transition(version, "Production").status_code == 200
    alice.mlflow("model-versions/create", {"name": "fraud", "source": f"runs:/{fraud}/model"})
    alice.transition(3, "Archived")  # archived, never in Production: no button
    browser = signed_in(alice)
    page = browser.get("/models/fraud/").content.decode()
    assert "Roll back to v1" in page and "Roll back to v3" not in page
    assert "replacing v2" in page
    # Compliance officers and readers see no button.
    assert "Roll back to v1" not in signed_in(people["carl"]).get("/models/fraud/").content.decode()
    version3 = browser.get("/models/fraud/versions/3/").content.decode()
    assert '<option value="Production">' not in version3
    assert (
        '<option value="Production">' in browser.get("/models/fraud/versions/1/").content.decode()
    )

    answer = browser.post(
        "/models/fraud/versions/1/request", {"stage": "Production", "comment": "Roll back to v1"}
    )
    req = TransitionRequest.objects.get(status="open")
    assert answer.status_code == 302 and answer["Location"] == f"/reviews/{req.pk}/"
    assert (req.from_stage, req.to_stage) == ("Archived", "Production")
    review = signed_in(rita).get(f"/reviews/{req.pk}/")
    assert review.status_code == 200
    assert rita.post(f"transition-requests/{req.pk}/approve").json()["applied"] is True
    assert (stage(1), stage(2)) == ("Production", "Archived")
    timeline = browser.get("/models/fraud/").content.decode()
    assert 'class="badge rollback">rollback' in timeline


def test_model_page_shows_where_each_deployment_resolves_now(people, fraud):
    alice = people["alice"]
    people["admin"].put(
        "models/fraud/policy", {"production_approvals": 0, "require_model_card": False}
    )
    alice.transition(1, "Staging")
    alice.transition(1, "Production")
    alice.post("deployments", {"endpoint": "/predict", "model_uri": "models:/fraud/Production"})
    browser = signed_in(alice)
    page = browser.get("/models/fraud/").content.decode()
    assert "models:/fraud/Production" in page and "changed since recorded" not in page
    alice.transition(2, "Staging")
    alice.transition(2, "Production")
    with CaptureQueriesContext(connection) as queries:
        page = browser.get("/models/fraud/").content.decode()
    assert "changed since recorded" in page and 'class="drifted"' in page
    assert 'href="/models/fraud/versions/2/">v2</a> <span class="badge drift"' in page
    count = len(queries)
    for i in range(5):
        alice.post("deployments", {"endpoint": f"/e{i}", "model_uri": "models:/fraud/latest"})
    with CaptureQueriesContext(connection) as queries:
        browser.get("/models/fraud/")
    assert len(queries) == count


def test_model_page_serving_table(people, fraud):
    alice = people["alice"]
    people["admin"].put(
        "models/fraud/policy",
        {"production_approvals": 0, "require_model_card": False, "demotion_approvals": 0},
    )
    for version in (1, 2):
        alice.transition(version, "Staging")
        alice.transition(version, "Production")  # v1 archived by v2
    alice.mlflow("registered-models/alias", {"name": "fraud", "alias": "champion", "version": "1"})
    page = signed_in(alice).get("/models/fraud/")
    html = page.content.decode()
    import re

    table = html.split('id="serving"')[1].split("</table>")[0]
    rows = re.findall(r"<code>(models:/[^<]+)</code></td>\s*<td>(.*?)</td>", table, re.S)
    answers = {
        uri: re.search(r">v(\d+)</a>", cell).group(1) if "v" in cell and "</a>" in cell else None
        for uri, cell in rows
    }
    assert answers == {
        "models:/fraud/Production": "2",
        "models:/fraud/Staging": None,
        "models:/fraud/latest": "2",
        "models:/fraud@champion": "1",  # archived, as in MLflow
    }
    assert 'data-copy="mlflow.pyfunc.load_model(&quot;models:/fraud@champion&quot;)"' in table
    assert "/api/v1/resolve?uri=models:/fraud/Production" in table
    assert "web/copy.js" in html


def test_aliases_are_set_and_removed_from_the_model_page(people, fraud):
    from audit.models import AuditEvent
    from registry.models import RegisteredModelAlias

    alice = signed_in(people["alice"])
    page = alice.get("/models/fraud/").content.decode()
    assert 'id="alias-form"' in page
    moved = alice.post(
        "/models/fraud/aliases", {"action": "set", "alias": "canary", "version": "2"}, follow=True
    )
    assert moved.status_code == 200
    assert "@canary now points at version 2" in moved.content.decode()
    assert RegisteredModelAlias.objects.get(alias="canary").version.version == 2
    assert AuditEvent.objects.filter(action="model_version.alias.set", actor_username="alice")
    removed = alice.post(
        "/models/fraud/aliases", {"action": "delete", "alias": "canary"}, follow=True
    )
    assert "Alias @canary removed." in removed.content.decode()
    assert not RegisteredModelAlias.objects.filter(alias="canary").exists()

    # A protected alias moves with Production only: refused as a policy matter, and recorded.
    people["admin"].put("models/fraud/policy", {"protected_aliases": ["champion"]})
    refused = alice.post(
        "/models/fraud/aliases", {"action": "set", "alias": "champion", "version": "1"}, follow=True
    )
    body = refused.content.decode()
    assert "Not yet: the model&#x27;s policy is not met" in body and "protected" in body
    assert not RegisteredModelAlias.objects.filter(alias="champion").exists()
    assert AuditEvent.objects.filter(action="model_version.alias.set.refused").count() == 1

    # Someone who may only read the model sees no form and cannot post one.
    grants = {"grants": [{"user": "alice", "level": "MANAGE"}, {"user": "bob", "level": "READ"}]}
    assert people["alice"].put("models/fraud/permissions", grants).status_code == 200
    bob = signed_in(people["bob"])
    assert 'id="alias-form"' not in bob.get("/models/fraud/").content.decode()
    denied = bob.post("/models/fraud/aliases", {"action": "set", "alias": "x", "version": "1"})
    assert denied.status_code == 403
    assert not RegisteredModelAlias.objects.filter(alias="x").exists()


def test_the_diff_picker_reads_from_production_or_the_older_version(people, fraud):
    """From v2's page, comparing with v1 reads "from v1 to v2"; with v2 in Production,
    comparing from v1's page reads "from v2 (Production) to v1"."""
    alice = signed_in(people["alice"])
    picked = alice.get("/models/fraud/versions/2/diff/", {"other": "1"})
    assert picked["Location"] == "/models/fraud/versions/1/diff/2/"
    picked = alice.get("/models/fraud/versions/1/diff/", {"other": "2"})
    assert picked["Location"] == "/models/fraud/versions/1/diff/2/"
    people["alice"].put("models/fraud/versions/2/card", FULL_CARD)
    people["alice"].transition(2, "Staging")
    people["alice"].transition(2, "Production")
    request_id = TransitionRequest.objects.get(status="open").pk
    assert people["rita"].post(f"transition-requests/{request_id}/approve").json()["applied"]
    picked = alice.get("/models/fraud/versions/1/diff/", {"other": "2"})
    assert picked["Location"] == "/models/fraud/versions/2/diff/1/"

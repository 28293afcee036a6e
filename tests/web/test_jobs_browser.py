"""The reviewer's, the compliance officer's and the admin's jobs in Debian's Chromium against
the live server, end to end: approve on a basis that is frozen with the decision and still
reads the same afterwards; reject and let the requester see who and why; give a second data
scientist EDIT on an experiment from the Access page and see their MLflow client call
succeed; follow the trail as a compliance officer; edit a user's role and a policy in the
admin. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.governance.test_mlflow_client_workflow import CARD
from tests.web.test_browser_flow import seed

pytestmark = pytest.mark.browser


class Http:
    """One user's calls to the live server's APIs (basic auth, as a script would)."""

    def __init__(self, server, username: str, password: str):
        self.server, self.session = server, requests.Session()
        self.session.auth = (username, password)

    def mlflow(self, path: str, body: dict) -> requests.Response:
        return self.session.post(f"{self.server.url}/api/2.0/mlflow/{path}", json=body, timeout=60)

    def v1(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return self.session.request(
            method, f"{self.server.url}/api/v1/{path}", json=body, timeout=60
        )

    def move(self, model: str, version: int, stage: str) -> requests.Response:
        return self.mlflow(
            "model-versions/transition-stage",
            {"name": model, "version": str(version), "stage": stage},
        )


def people(server, unique_name: str) -> dict:
    out = {}
    for who, role in (("sci", "data-scientist"), ("rev", "reviewer")):
        name = f"{who}-{unique_name}"
        out[who] = (name, server.create_user(name, role))
    return out


def open_request_id(http: Http, model: str, version: int) -> int:
    listed = http.v1("GET", f"transition-requests?model={model}&version={version}&status=open")
    return listed.json()["requests"][0]["id"]


def test_a_reviewer_approves_on_a_basis_frozen_with_the_decision(
    signed_in, live_server_process, screenshot, unique_name
):
    server = live_server_process
    users = people(server, unique_name)
    scientist = Http(server, *users["sci"])
    admin = Http(server, server.username, server.password)
    data = seed(server, users["sci"], unique_name)
    model = data["model"]
    # The gate gives val_auc a direction: higher is better.
    gate = {"metric_gates": [{"metric": "val_auc", "op": ">=", "value": 0.9}]}
    assert admin.v1("PUT", f"models/{model}/policy", gate).status_code == 200
    # v1 (val_auc 0.95) goes to Production with the admin's approval.
    assert scientist.move(model, 1, "Staging").status_code == 200
    assert scientist.move(model, 1, "Production").status_code == 400
    first = open_request_id(admin, model, 1)
    assert admin.v1("POST", f"transition-requests/{first}/approve", {}).json()["applied"]
    # v2 from the run with val_auc 0.93 asks to replace it.
    scientist.mlflow(
        "model-versions/create", {"name": model, "source": f"runs:/{data['runs'][1]}/model"}
    ).raise_for_status()
    assert scientist.v1("PUT", f"models/{model}/versions/2/card", CARD).status_code == 200
    assert scientist.move(model, 2, "Staging").status_code == 200
    assert scientist.move(model, 2, "Production").status_code == 400
    request_id = open_request_id(admin, model, 2)

    page = signed_in(*users["rev"])
    expect(page).to_have_url(re.compile(r"/reviews/$"))  # reviewers land on their queue
    expect(page.locator("#pending-badge")).to_have_text(re.compile(r"^1"))
    row = page.locator("#queue tbody tr", has_text=model)
    expect(row.locator(".approvals")).to_have_text("0 of 1")
    screenshot(page, "review-queue")
    row.get_by_role("link").first.click()
    expect(page.locator("#state")).to_have_attribute("data-state", "ready")
    expect(page.locator("#compare-h")).to_contain_text("v1")
    auc = page.locator('#compare-metrics tr[data-metric="val_auc"]')
    expect(auc.locator(".delta")).to_have_text("−0.02")
    expect(auc.locator(".verdict")).to_contain_text("worse")
    expect(page.locator("#lineage-changes")).to_contain_text("abc2")
    expect(page.locator("#charts")).to_have_attribute("data-ready", "true")
    expect(page.locator('figure.chart[data-metric="loss"]')).to_have_attribute("data-series", "2")
    expect(page.locator("#diff-link")).to_have_attribute(
        "href", f"/models/{model}/versions/1/diff/2/"
    )
    before = page.locator("#compare-metrics").inner_text()
    checks = page.locator("#checks").inner_text()
    screenshot(page, "review-ready")

    page.get_by_label("Comment", exact=True).fill("Slightly lower AUC; accepted for the new data.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text("Version 2 is now Production.")
    expect(page.locator("#request-status")).to_have_text("applied")
    expect(page.locator("#frozen")).to_be_visible()
    # Production is v2 now; the record still reads as the reviewer saw it.
    expect(page.locator("#compare-h")).to_contain_text("v1")
    assert page.locator("#compare-metrics").inner_text() == before
    assert page.locator("#checks").inner_text() == checks
    expect(page.locator("#effects")).to_contain_text("v1: Production → Archived")
    screenshot(page, "review-decided-frozen")
    screen = admin.v1("GET", f"transition-requests/{request_id}/review").json()
    assert screen["frozen"] is True and screen["production"]["version"] == 1


def test_a_rejection_says_who_and_why_to_the_requester(
    signed_in, live_server_process, screenshot, unique_name
):
    server = live_server_process
    users = people(server, unique_name)
    scientist = Http(server, *users["sci"])
    data = seed(server, users["sci"], unique_name)
    model = data["model"]
    assert scientist.move(model, 1, "Staging").status_code == 200
    assert scientist.move(model, 1, "Production").status_code == 400

    review = signed_in(*users["rev"])
    review.locator("#queue tbody tr", has_text=model).get_by_role("link").first.click()
    review.get_by_label("Reason (required to reject)").fill("The card omits the EU merchants")
    review.get_by_role("button", name="Reject").click()
    expect(review.locator("#decided-by")).to_have_text(users["rev"][0])
    expect(review.locator("#decision-reason")).to_have_text("The card omits the EU merchants")

    mine = signed_in(*users["sci"])
    mine.get_by_role("link", name="Reviews").click()
    row = mine.locator("#mine tbody tr", has_text=model).filter(has_text="Staging → Production")
    expect(row).to_contain_text("rejected")
    expect(row).to_contain_text(users["rev"][0])
    expect(row).to_contain_text("The card omits the EU merchants")
    screenshot(mine, "requester-sees-rejection")
    row.get_by_role("link").first.click()
    expect(mine.locator("#state")).to_contain_text(f"Rejected by {users['rev'][0]}")
    screenshot(mine, "review-rejected")


def test_a_second_data_scientist_gets_edit_from_the_access_page(
    signed_in, live_server_process, screenshot, unique_name, monkeypatch
):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    server = live_server_process
    owner = (f"owner-{unique_name}", server.create_user(f"owner-{unique_name}", "data-scientist"))
    second = (
        f"second-{unique_name}",
        server.create_user(f"second-{unique_name}", "data-scientist"),
    )
    created = Http(server, *owner).mlflow("experiments/create", {"name": f"team-{unique_name}"})
    experiment_id = created.json()["experiment_id"]

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", second[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", second[1])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(tracking_uri=server.url)
    with pytest.raises(MlflowException, match="EDIT"):
        client.create_run(experiment_id)

    page = signed_in(*owner)
    page.get_by_role("link", name="Access").click()
    page.locator("#managed-experiments").get_by_role("link", name=f"team-{unique_name}").click()
    page.get_by_label("To a").select_option("user")
    page.get_by_label("Name").fill(second[0])
    page.get_by_label("Level", exact=True).select_option("EDIT")
    page.get_by_role("button", name="Grant").click()
    expect(page.locator(".messages")).to_contain_text(f"User {second[0]}: EDIT (added).")
    expect(page.locator(f'#grants tr[data-principal="user:{second[0]}"]')).to_contain_text("EDIT")
    screenshot(page, "access-grant")

    run = client.create_run(experiment_id)  # the client call that was refused now succeeds
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    events = Http(server, server.username, server.password).v1(
        "GET", "audit/events?action=experiment.permissions.grant"
    )
    assert any(e["actor"]["username"] == owner[0] for e in events.json()["events"])


def test_the_compliance_officers_job(signed_in, live_server_process, screenshot, unique_name):
    server = live_server_process
    users = people(server, unique_name)
    carl = (f"carl-{unique_name}", server.create_user(f"carl-{unique_name}", "compliance"))
    data = seed(server, users["sci"], unique_name)
    scientist = Http(server, *users["sci"])
    assert scientist.move(data["model"], 1, "Staging").status_code == 200
    assert scientist.move(data["model"], 1, "Production").status_code == 400
    admin = Http(server, server.username, server.password)
    policy = {"production_approvals": 2}
    assert admin.v1("PUT", f"models/{data['model']}/policy", policy).status_code == 200

    page = signed_in(*carl)
    page.get_by_role("link", name="Reviews").click()
    row = page.locator("#all-requests tbody tr", has_text=data["model"]).filter(
        has_text="Staging → Production"
    )
    expect(row).to_contain_text("open")
    row.get_by_role("link").first.click()
    expect(page.locator("#decide")).to_have_count(0)  # read-only
    screenshot(page, "compliance-request")

    page.get_by_role("link", name="Audit").click()
    expect(page.locator("#checkpoints")).to_contain_text("checkpoint")
    page.get_by_label("Model").fill(data["model"])
    page.get_by_label("Action").fill("policy.update")
    page.get_by_label("From (UTC)").fill("2020-01-01T00:00:00")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page.locator("#audit-events tbody tr")).to_have_count(1)
    page.get_by_label("Name", exact=True).fill("policy changes")
    page.get_by_role("button", name="Save these filters").click()
    page.goto("/audit/")
    saved = page.locator("#saved-filter-list").get_by_role("link", name="policy changes")
    expect(saved).to_be_visible()
    screenshot(page, "audit-saved-filters")
    saved.click()
    expect(page.get_by_label("From (UTC)")).to_have_value(re.compile(r"^2020-01-01T00:00(:00)?$"))
    page.locator("#audit-events tbody tr").first.get_by_role("link").first.click()
    field = page.locator('#before-after tr[data-field="production_approvals"]')
    expect(field).to_have_class(re.compile("differs"))
    expect(field.locator("td").nth(0)).to_have_text("1")
    expect(field.locator("td").nth(1)).to_have_text("2")
    screenshot(page, "audit-event-before-after")


def test_the_admins_job(signed_in, live_server_process, screenshot, unique_name):
    server = live_server_process
    users = people(server, unique_name)
    data = seed(server, users["sci"], unique_name)
    page = signed_in(server.username, server.password)

    # A user's role, not Django's permission list.
    page.goto(f"/admin/auth/user/?q={users['sci'][0]}")
    page.get_by_role("link", name=users["sci"][0], exact=True).click()
    expect(page.locator('input[name="user_permissions"]')).to_have_count(0)
    page.locator('input[name="roles"][value="reviewer"]').check()
    screenshot(page, "admin-user-roles")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    me = Http(server, *users["sci"]).v1("GET", "me").json()
    assert me["roles"] == ["data-scientist", "reviewer"]

    # A model's policy, with the "only stricter" rule on the form.
    page.goto("/admin/governance/modelpolicy/add/")
    expect(page.locator("body")).to_contain_text("only make its policy stricter")
    page.get_by_label("Model:").select_option(label=data["model"])
    page.get_by_label("Production approvals").fill("2")
    page.get_by_label("Metric gates").fill("val_auc >= 0.9")
    screenshot(page, "admin-policy")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    policy = Http(server, *users["sci"]).v1("GET", f"models/{data['model']}/policy").json()
    assert policy["production_approvals"] == 2
    assert policy["metric_gates"] == [{"metric": "val_auc", "op": ">=", "value": 0.9}]

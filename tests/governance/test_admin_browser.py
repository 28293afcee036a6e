"""The reviewers' console in a real browser (Playwright driving Debian's Chromium): a data
scientist's promotion waits in the queue; a reviewer opens it, sees everything on one
screen, approves, and the version is in Production."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.governance.test_mlflow_client_workflow import CARD

pytestmark = pytest.mark.browser


def test_reviewer_approves_a_promotion_in_the_admin(
    signed_in, live_server_process, screenshot, unique_name
):
    server = live_server_process
    api, v1 = f"{server.url}/api/2.0/mlflow", f"{server.url}/api/v1"
    scientist = (f"ds-{unique_name}", server.create_user(f"ds-{unique_name}", "data-scientist"))
    reviewer = f"rv-{unique_name}"
    reviewer_password = server.create_user(reviewer, "reviewer")
    http = requests.Session()
    http.auth = scientist
    experiment = http.post(f"{api}/experiments/create", json={"name": unique_name}).json()
    run = http.post(
        f"{api}/runs/create", json={"experiment_id": experiment["experiment_id"]}
    ).json()["run"]["info"]["run_id"]
    http.post(
        f"{api}/runs/log-batch",
        json={
            "run_id": run,
            "tags": [
                {"key": "dataset_version", "value": "orders_v2.1"},
                {"key": "git_commit", "value": "b7d9e4a"},
                {"key": "triggered_by", "value": "ci"},
            ],
            "params": [{"key": "max_depth", "value": "6"}],
            "metrics": [{"key": "val_auc", "value": 0.94, "timestamp": 1, "step": 0}],
        },
    ).raise_for_status()
    name = f"fraud-{unique_name}"
    http.post(f"{api}/registered-models/create", json={"name": name}).raise_for_status()
    http.post(
        f"{api}/model-versions/create", json={"name": name, "source": f"runs:/{run}/model"}
    ).raise_for_status()
    http.put(f"{v1}/models/{name}/versions/1/card", json=CARD).raise_for_status()
    staged = http.post(
        f"{api}/model-versions/transition-stage",
        json={"name": name, "version": "1", "stage": "Staging"},
    )
    assert staged.ok, staged.text
    asked = http.post(
        f"{v1}/transition-requests",
        json={"model": name, "version": "1", "stage": "Production", "comment": "AUC up"},
    )
    assert asked.status_code == 201, asked.text

    page = signed_in(reviewer, reviewer_password)
    page.goto("/admin/governance/transitionrequest/")
    row = page.locator("tr", has_text=name)
    expect(row).to_contain_text("Staging → Production")
    row.get_by_role("link", name="Review").click()
    expect(page.get_by_role("heading", name="Policy checks")).to_be_visible()
    expect(page.locator("#compare-metrics")).to_contain_text("val_auc")
    expect(page.locator("#compare-params")).to_contain_text("max_depth")
    expect(page.locator("#model-card")).to_contain_text("complete")
    expect(page.locator("#missing")).to_contain_text("1 more approval needed")
    screenshot(page, "admin-review")
    page.get_by_label("Comment").fill("Checked metrics, card and lineage.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".messagelist")).to_contain_text("Approved. Version 1 is now Production.")
    expect(page.locator("#request-status")).to_have_text("applied")
    screenshot(page, "admin-approved")

    version = http.get(f"{api}/model-versions/get", params={"name": name, "version": "1"})
    assert version.json()["model_version"]["current_stage"] == "Production"

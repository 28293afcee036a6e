"""The whole UI in Debian's Chromium against the live server, as a newcomer would use it:
a data scientist opens an experiment, filters and sorts runs, compares two runs on an
overlaid chart, browses a run's artifacts, opens a model version and requests its promotion;
a reviewer approves it from the queue; the version page then shows Production. Screenshots
of the main pages go to test-artifacts/screenshots/."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect

from tests.governance.test_mlflow_client_workflow import CARD

pytestmark = pytest.mark.browser


def seed(server, auth, name: str) -> dict:
    api = f"{server.url}/api/2.0/mlflow"
    http = requests.Session()
    http.auth = auth
    experiment = http.post(f"{api}/experiments/create", json={"name": name}).json()
    runs, artifact_uris = [], []
    for i, (lr, auc) in enumerate([("0.1", 0.88), ("0.05", 0.93), ("0.01", 0.95)]):
        run = http.post(
            f"{api}/runs/create",
            json={
                "experiment_id": experiment["experiment_id"],
                "run_name": f"run-{i}",
                "start_time": 1_700_000_000_000 + i * 1000,
            },
        ).json()["run"]["info"]
        artifact_uris.append(run["artifact_uri"])
        run = run["run_id"]
        http.post(
            f"{api}/runs/log-batch",
            json={
                "run_id": run,
                "params": [{"key": "lr", "value": lr}, {"key": "depth", "value": "6"}],
                "tags": [
                    {"key": "dataset_version", "value": "orders_v2.1"},
                    {"key": "git_commit", "value": f"abc{i}"},
                    {"key": "triggered_by", "value": "ci"},
                ],
                "metrics": [
                    {"key": "loss", "value": (1 + i) / (s + 1), "timestamp": 1, "step": s}
                    for s in range(5)
                ]
                + [{"key": "val_auc", "value": auc, "timestamp": 1, "step": 0}],
            },
        ).raise_for_status()
        http.post(
            f"{api}/runs/update",
            json={"run_id": run, "status": "FINISHED", "end_time": 1_700_000_060_000},
        )
        runs.append(run)
    prefix = artifact_uris[2].removeprefix("mlflow-artifacts:/")
    for path, body in (
        ("model/MLmodel", b"artifact_path: model\nflavors: {}\n"),
        ("reports/summary.txt", b"val_auc 0.95 on orders_v2.1\n"),
        ("reports/confusion matrix.csv", b"tp,fp\n90,10\n"),
    ):
        http.put(
            f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{prefix}/{quote(path)}", data=body
        ).raise_for_status()
    model = f"model-{name}"
    http.post(f"{api}/registered-models/create", json={"name": model}).raise_for_status()
    http.post(
        f"{api}/model-versions/create", json={"name": model, "source": f"runs:/{runs[2]}/model"}
    ).raise_for_status()
    http.put(f"{server.url}/api/v1/models/{model}/versions/1/card", json=CARD).raise_for_status()
    return {"experiment": experiment["experiment_id"], "runs": runs, "model": model}


def test_browse_compare_request_and_approve_in_the_browser(
    signed_in, live_server_process, screenshot, unique_name
):
    server = live_server_process
    scientist = f"sci-{unique_name}"
    scientist_password = server.create_user(scientist, "data-scientist")
    reviewer = f"rev-{unique_name}"
    reviewer_password = server.create_user(reviewer, "reviewer")
    data = seed(server, (scientist, scientist_password), unique_name)

    page = signed_in(scientist, scientist_password)
    page.goto("/experiments/")
    expect(page.get_by_role("link", name=unique_name)).to_be_visible()
    screenshot(page, "experiments")  # the experiments list
    page.get_by_role("link", name=unique_name).click()
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)

    # Filter with the API's grammar; a mistake is explained in words, on the page.
    page.get_by_label("Filter runs").fill("metrics.val_auc > 0.9")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-table tbody tr")).to_have_count(2)
    page.get_by_label("Filter runs").fill("metrics.val_auc >> 0.9")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#filter-error")).to_be_visible()
    page.get_by_label("Filter runs").fill("")
    page.get_by_role("button", name="Apply").click()

    # Sort by a metric column, both ways.
    page.goto(f"/experiments/{data['experiment']}/?col=metrics.val_auc&col=params.lr")
    page.locator('th a[data-column="metrics.val_auc"]').click()
    names = page.locator("#runs-table tbody tr td:nth-child(2)")
    first = names.first.inner_text()
    page.locator('th a[data-column="metrics.val_auc"]').click()
    expect(names.first).not_to_have_text(first)
    assert {first, names.first.inner_text()} == {"run-0", "run-2"}
    screenshot(page, "runs-table")

    # Compare two runs: differences highlighted, curves overlaid on one chart per metric.
    page.locator('input[name="runs"]').nth(0).check()
    page.locator('input[name="runs"]').nth(1).check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.locator("#charts")).to_have_attribute("data-ready", "true")
    loss = page.locator('figure.chart[data-metric="loss"]')
    expect(loss).to_have_attribute("data-series", "2")
    expect(loss.locator("canvas")).to_be_visible()
    expect(page.locator("#compare-params tr.differs")).to_contain_text("lr")
    screenshot(page, "compare")

    page.goto(f"/runs/{data['runs'][2]}/")
    expect(page.locator("body")).to_contain_text("val_auc")
    expect(page.locator("#artifact-list")).to_contain_text("reports/")
    screenshot(page, "run-page")
    page.locator("#artifact-list").get_by_role("link", name="reports/").click()
    page.locator("#artifact-list").get_by_role("link", name="summary.txt").click()
    expect(page.locator("#artifact-preview")).to_contain_text("val_auc 0.95")
    screenshot(page, "run-artifacts")

    page.get_by_role("link", name="Tokens").click()
    expect(page.get_by_role("link", name="Tokens")).to_have_attribute("aria-current", "page")
    screenshot(page, "tokens")

    # The registry: list, model, version; request Staging (applied), then Production.
    page.get_by_role("link", name="Models", exact=True).click()
    screenshot(page, "models")
    page.get_by_role("link", name=data["model"]).click()
    expect(page.locator("#versions")).to_contain_text("v1")
    page.get_by_role("link", name="v1", exact=True).first.click()
    expect(page.locator("#version-stage")).to_have_text("None")
    page.get_by_label("Move to").select_option("Staging")
    page.get_by_role("button", name="Request").click()
    expect(page.locator(".messages")).to_contain_text("Version 1 is now Staging.")
    expect(page.locator("#version-stage")).to_have_text("Staging")
    page.get_by_label("Move to").select_option("Production")
    page.get_by_label("Comment").fill("AUC 0.95 on orders_v2.1")
    page.get_by_role("button", name="Request").click()
    expect(page.locator("#state")).to_contain_text("0 of 1 approvals")
    request_url = page.url
    page.goto(f"/models/{data['model']}/versions/1/card/")
    expect(page.locator("form")).not_to_have_count(0)
    screenshot(page, "model-card")

    # The reviewer approves from the queue.
    review = signed_in(reviewer, reviewer_password)
    review.get_by_role("link", name="Reviews").click()
    expect(review.locator("#queue")).to_contain_text(data["model"])
    screenshot(review, "reviews")
    # The live server is shared by the session's browser tests: this model's request.
    review.locator("#queue tbody tr", has_text=data["model"]).get_by_role("link").first.click()
    assert review.url == request_url
    expect(review.locator("#compare-metrics")).to_contain_text("val_auc")
    screenshot(review, "review")
    review.get_by_label("Comment", exact=True).fill("Checked.")
    review.get_by_role("button", name="Approve").click()
    expect(review.locator(".messages")).to_contain_text("Approved. Version 1 is now Production.")

    page.goto(f"/models/{data['model']}/versions/1/")
    expect(page.locator("#version-stage")).to_have_text("Production")
    expect(page.locator("#review-chain")).to_contain_text(reviewer)
    screenshot(page, "version")
    page.goto(f"/models/{data['model']}/")
    expect(page.locator("#timeline")).to_contain_text(reviewer)
    screenshot(page, "model")

"""The lineage page in Debian's Chromium: from a model's page, one click on its serving
endpoint shows the full ancestry down to the dataset and the commit; clicking the dataset
shows what else used it."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_from_an_endpoint_to_its_datasets_in_the_browser(
    signed_in, live_server_process, screenshot, unique_name
):
    server = live_server_process
    api, v1 = f"{server.url}/api/2.0/mlflow", f"{server.url}/api/v1"
    admin = requests.Session()
    admin.auth = (server.username, server.password)
    experiment = admin.post(f"{api}/experiments/create", json={"name": unique_name}).json()
    run = admin.post(
        f"{api}/runs/create",
        json={"experiment_id": experiment["experiment_id"], "run_name": "train-fraud"},
    ).json()["run"]["info"]["run_id"]
    admin.post(
        f"{api}/runs/log-batch",
        json={
            "run_id": run,
            "tags": [
                {"key": "dataset_version", "value": f"orders{unique_name[2:6]}_v2.1"},
                {"key": "git_commit", "value": "b7d9e4a1"},
                {"key": "triggered_by", "value": "ci"},
            ],
        },
    ).raise_for_status()
    name = f"fraud-{unique_name}"
    admin.post(f"{api}/registered-models/create", json={"name": name}).raise_for_status()
    admin.post(
        f"{api}/model-versions/create", json={"name": name, "source": f"runs:/{run}/model"}
    ).raise_for_status()
    admin.put(
        f"{v1}/models/{name}/policy",
        json={"production_approvals": 0, "require_model_card": False},
    ).raise_for_status()
    for stage in ("Staging", "Production"):
        admin.post(
            f"{api}/model-versions/transition-stage",
            json={"name": name, "version": "1", "stage": stage},
        ).raise_for_status()
    endpoint = f"/predict-{unique_name}"
    admin.post(
        f"{v1}/deployments", json={"endpoint": endpoint, "model_uri": f"models:/{name}/Production"}
    ).raise_for_status()

    viewer = f"view-{unique_name}"
    page = signed_in(viewer, server.create_user(viewer, "data-scientist"))
    page.goto(f"/models/{name}/")
    page.get_by_role("link", name=endpoint).click()
    graph = page.locator("#lineage-graph svg")
    expect(graph.locator(f'[data-node="version:{name}/1"]')).to_be_visible()
    expect(graph.locator(f'[data-node="run:{run}"]')).to_be_visible()
    dataset = f"dataset:orders{unique_name[2:6]}@v2.1"
    expect(graph.locator(f'[data-node="{dataset}"]')).to_be_visible()
    expect(graph.locator('[data-node="commit:b7d9e4a1"]')).to_be_visible()
    screenshot(page, "lineage-deployment")
    graph.locator(f'a[data-node="{dataset}"]').click()
    expect(page.locator("#lineage-nodes")).to_contain_text("train-fraud")
    expect(page.locator("#lineage-nodes")).to_contain_text(f"{name} v1")
    expect(page.locator("#direction")).to_have_value("down")
    screenshot(page, "lineage-dataset")

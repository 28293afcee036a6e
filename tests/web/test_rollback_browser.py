"""The rollback in Debian's Chromium: production v2 misbehaves; a data scientist clicks
"Roll back to v1" on the model page, which opens the rollback request; a reviewer sees on the
review page what approving will do and approves; the model page then shows v1 in Production,
v2 archived, @champion still on v1 and the rollback in the timeline."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_roll_back_from_the_model_page(live_server_process, signed_in, unique_name, screenshot):
    server = live_server_process
    admin = requests.Session()
    admin.auth = (server.username, server.password)
    api, v1 = f"{server.url}/api/2.0/mlflow", f"{server.url}/api/v1"
    name = f"rb-{unique_name}"
    run = admin.post(f"{api}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    assert admin.post(f"{api}/registered-models/create", json={"name": name}).ok
    for _ in range(2):
        created = admin.post(
            f"{api}/model-versions/create",
            json={"name": name, "source": f"runs:/{run['run_id']}/model"},
        )
        assert created.ok, created.text
    policy = {"required_tags": [], "production_approvals": 0, "require_model_card": False}
    assert admin.put(f"{v1}/models/{name}/policy", json=policy).ok
    for version in ("1", "2"):
        for stage in ("Staging", "Production"):
            moved = admin.post(
                f"{api}/model-versions/transition-stage",
                json={"name": name, "version": version, "stage": stage},
            )
            assert moved.ok, moved.text
    assert admin.post(
        f"{api}/registered-models/alias", json={"name": name, "alias": "champion", "version": "1"}
    ).ok
    scientist = f"ds-{unique_name}"
    scientist_password = server.create_user(scientist, "data-scientist")
    grant = {"grants": [{"user": scientist, "level": "EDIT"}]}
    assert admin.put(f"{v1}/models/{name}/permissions", json=grant).ok
    reviewer = f"rev-{unique_name}"
    reviewer_password = server.create_user(reviewer, "reviewer")

    page = signed_in(scientist, scientist_password)
    page.goto(f"/models/{name}/")
    expect(page.locator("#serving")).to_contain_text(f"models:/{name}@champion")
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.locator(".messages")).to_contain_text("is open")
    request_url = page.url
    assert "/reviews/" in request_url

    review = signed_in(reviewer, reviewer_password)
    review.goto(request_url)
    expect(review.locator("#effects")).to_contain_text("v2: Production → Archived")
    expect(review.locator("#effects")).to_contain_text("v1: Archived → Production")
    screenshot(review, "rollback-review")
    review.get_by_role("button", name="Approve").click()
    expect(review.locator(".messages")).to_contain_text("Approved. Version 1 is now Production.")

    page.goto(f"/models/{name}/")
    versions = page.locator("#versions")
    expect(versions.locator("tr", has_text="v1")).to_contain_text("Production")
    expect(versions.locator("tr", has_text="v1")).to_contain_text("@champion")
    expect(versions.locator("tr", has_text="v2")).to_contain_text("Archived")
    expect(page.locator("#timeline .badge.rollback")).to_have_count(1)
    expect(page.get_by_role("button", name="Roll back to v2")).to_have_count(1)
    screenshot(page, "rollback-model")

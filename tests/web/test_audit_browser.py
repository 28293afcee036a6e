"""A compliance officer in Debian's Chromium: opens the audit page, filters by a model,
downloads the CSV export, and the file verifies on its own with verify_audit."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_compliance_exports_a_models_history_and_verifies_it(
    signed_in, live_server_process, screenshot, unique_name, tmp_path
):
    server = live_server_process
    admin = (server.username, server.password)
    api = f"{server.url}/api/2.0/mlflow"
    name = f"audited-{unique_name}"
    requests.post(f"{api}/registered-models/create", json={"name": name}, auth=admin, timeout=30)
    requests.patch(
        f"{api}/registered-models/update",
        json={"name": name, "description": "fraud scores"},
        auth=admin,
        timeout=30,
    )
    officer = f"co-{unique_name}"
    page = signed_in(officer, server.create_user(officer, "compliance"))
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Model").fill(name)
    page.get_by_role("button", name="Filter", exact=True).click()
    rows = page.locator("#audit-events tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("registered_model.update")
    page.get_by_role("link", name="Verify the chain").click()
    expect(page.locator("#verification")).to_contain_text("The chain verifies")
    screenshot(page, "audit")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    path = tmp_path / "history.csv"
    info.value.save_as(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all(name in line for line in lines[1:])
    assert lines[-1].startswith("# custody-manifest ")  # filtered, and signed as such
    out = server.manage("verify_audit", "--file", str(path))
    assert out.startswith("OK: 2 events verified") and "signed manifest matches" in out, out

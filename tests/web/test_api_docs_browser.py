"""The "API" link opens Swagger UI that renders under the pages' Content-Security-Policy
(script-src 'self'): its start-up script is a static file, so the operations show."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_api_docs_render_under_the_csp(signed_in, live_server_process, screenshot, unique_name):
    password = live_server_process.create_user(f"docs-{unique_name}", "data-scientist")
    page = signed_in(f"docs-{unique_name}", password)
    blocked = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.get_by_role("link", name="API").click()
    expect(page).to_have_url(f"{live_server_process.url}/api/v1/docs")
    csp = page.evaluate(
        "() => fetch(location.href).then(r => r.headers.get('content-security-policy'))"
    )
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Custody API")
    grants = page.locator(".opblock-summary-path", has_text="/api/v1/models/{name}/permissions")
    expect(grants.first).to_be_visible()
    expect(
        page.locator(
            ".opblock-post .opblock-summary-path",
            has_text="/api/v1/transition-requests/{request_id}/approve",
        )
    ).to_be_visible()
    assert page.locator(".opblock").count() > 20
    assert blocked == []
    screenshot(page, "api-docs")

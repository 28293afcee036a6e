"""The browser harness itself: sign in through the form in Debian's Chromium and land on a
page that names the signed-in user and their role."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_sign_in_and_out_in_a_real_browser(signed_in, live_server_process, screenshot):
    password = live_server_process.create_user("browser-smoke", "data-scientist")
    page = signed_in("browser-smoke", password)
    expect(page.locator("body")).to_contain_text("browser-smoke")
    screenshot(page, "home")
    page.goto("/experiments/")
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()

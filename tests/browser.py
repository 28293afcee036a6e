"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium; never a downloaded
browser) against the live gunicorn server. Screenshots land in test-artifacts/screenshots/.

`signed_in(username, password)` answers a page signed in through the login form."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The ORM in the test process runs beside Playwright's event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CUSTODY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(
            f"Browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get install chromium; scripts/test.sh installs it when run as root)."
        )
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 850}}


@pytest.fixture
def screenshot():
    """screenshot(page, "name") writes test-artifacts/screenshots/name.png and answers the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def signed_in(browser, live_server_process):
    """signed_in(username, password) -> a Playwright page signed in on the live server.
    Each call gets its own browser context (its own cookies), so two users can act side by
    side in one test."""
    contexts = []

    def open_page(username: str, password: str):
        context = browser.new_context(
            base_url=live_server_process.url, viewport={"width": 1366, "height": 850}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    yield open_page
    for context in contexts:
        context.close()

"""The rest of the data scientist's UI in Debian's Chromium at 1440x900 and at 390 px: a
logged model's page reached from its run (flavours, signature, input example, requirements,
the version registered from it), an empty experiment's snippet copied and run as it is,
styled 404 and 403 pages with the navigation and the favicon, and timestamps in the reader's
local time. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
import requests
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.mlflow_client]

WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}

# The page itself never scrolls sideways (a wide table or snippet scrolls in its own box).
PAGE_OVERFLOW = "() => document.scrollingElement.scrollWidth - window.innerWidth"
# The text of each cell matching a selector, with how many line tops it has (1: unwrapped).
LINES = """
selector => Array.from(document.querySelectorAll(selector)).map(cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set();
  for (const rect of range.getClientRects()) if (rect.width && rect.height) tops.add(Math.round(rect.top));
  return [cell.innerText.trim(), tops.size];
})
"""


@pytest.fixture
def scientist(live_server_process, signed_in):
    user = f"ds-{uuid.uuid4().hex[:8]}"  # the live server's database outlives one test
    password = live_server_process.create_user(user, "data-scientist")
    return user, password, lambda: signed_in(user, password)


def at(page, size: str):
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    return page


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_a_logged_sklearn_model_is_read_from_its_run(
    live_server_process, mlflow_env, monkeypatch, scientist, screenshot, size
):
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    user, password, open_page = scientist
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    features = pd.DataFrame(
        {"amount": [12.5, 80.0, 3.2, 45.1], "tenure_months": [1.0, 30.0, 2.0, 18.0]}
    )
    model = LogisticRegression().fit(features, np.array([1, 0, 1, 0]))
    mlflow.set_experiment(f"churn {user}")
    with mlflow.start_run(run_name="logreg-baseline") as run:
        mlflow.log_metric("val_auc", 0.91)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=features.head(2),
            registered_model_name=f"churn-{user}",
        )

    page = at(open_page(), size)
    page.goto(f"/runs/{run.info.run_id}/")
    started = page.locator("time.ts").first
    expect(started).to_have_attribute("data-local", "true")
    expect(started).to_have_attribute("title", re.compile(r"UTC[+-]\d\d:\d\d"))
    page.get_by_role("link", name="model", exact=True).first.click()
    expect(page).to_have_url(re.compile(f"/logged-models/{info.model_id}/$"))
    flavours = page.locator(".badge")
    expect(flavours.filter(has_text="sklearn")).to_have_count(1)
    expect(flavours.filter(has_text="python_function")).to_have_count(1)
    expect(page.get_by_role("cell", name="amount", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="tenure_months", exact=True)).to_be_visible()
    expect(page.get_by_text("scikit-learn", exact=False).first).to_be_attached()
    expect(page.get_by_text("12.5", exact=False).first).to_be_attached()  # the input example
    expect(page.locator("#logged-model-facts")).to_contain_text(f"by {user}")
    # sizes and "Download" stay whole in the model's file list, whatever the width
    cells = page.evaluate(LINES, "#artifact-list td.num, #artifact-list td.nowrap")
    assert len(cells) >= 10 and all(lines == 1 for _, lines in cells), cells
    assert page.evaluate(PAGE_OVERFLOW) <= 1
    screenshot(page, f"logged-model-{size}")
    page.get_by_role("link", name=re.compile(f"churn-{user}")).first.click()
    expect(page).to_have_url(re.compile(f"/models/churn-{user}/versions/1/$"))

    # the run's "model" directory is the logged model's, and the run page says where it is
    page.goto(f"/runs/{run.info.run_id}/?artifacts=model")
    hint = page.locator("#artifact-model-hint")
    expect(hint).to_be_visible()
    expect(hint.get_by_role("link")).to_have_attribute(
        "href", re.compile(f"/logged-models/{info.model_id}/")
    )


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_an_empty_experiments_snippet_runs_as_copied(
    live_server_process, scientist, screenshot, size
):
    user, password, open_page = scientist
    name = f'first "steps" {user}'  # quotes survive into the snippet as Python
    api = f"{live_server_process.url}/api/2.0/mlflow"
    experiment = requests.post(
        f"{api}/experiments/create", json={"name": name}, auth=(user, password), timeout=30
    ).json()["experiment_id"]
    page = at(open_page(), size)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/experiments/{experiment}/")
    empty = page.locator("#runs-empty")
    expect(empty).to_contain_text("No runs yet")
    assert page.evaluate(PAGE_OVERFLOW) <= 1
    screenshot(page, f"experiment-empty-{size}")
    copy = empty.locator("button[data-copy]")
    copy.click()
    expect(copy).to_have_text("Copied")
    snippet = page.evaluate("() => navigator.clipboard.readText()")
    assert snippet == empty.locator("pre").inner_text().strip()

    # run what was copied, as a new user would, with their credentials in the environment
    env = {
        **os.environ,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    ran = subprocess.run(
        [sys.executable, "-c", snippet], env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    page.reload()
    expect(page.locator("#runs-table tbody tr[data-run-id]")).to_have_count(1)
    expect(page.locator("#runs-table thead")).to_contain_text("val_auc")


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_error_pages_are_styled_with_the_navigation(
    live_server_process, scientist, screenshot, size
):
    user, _, open_page = scientist
    page = at(open_page(), size)
    missing = page.goto("/experiments/999999999/")
    assert missing.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.locator(".error-box")).to_contain_text("No Experiment with id=999999999")
    expect(page.get_by_role("link", name="Experiments").first).to_be_attached()
    expect(page.get_by_text(user).first).to_be_attached()  # still signed in, and it says so
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    served = requests.get(f"{live_server_process.url}{icon}", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("image/svg")
    assert page.evaluate(PAGE_OVERFLOW) <= 1
    screenshot(page, f"not-found-{size}")
    page.get_by_role("link", name="Experiments").first.click()
    expect(page).to_have_url(re.compile("/experiments/$"))

    forbidden = page.goto("/audit/")  # the audit trail is for compliance officers
    assert forbidden.status == 403
    expect(page.get_by_role("heading", level=1)).to_contain_text("Not allowed")
    expect(page.get_by_role("link", name="Experiments").first).to_be_attached()
    assert page.evaluate(PAGE_OVERFLOW) <= 1
    screenshot(page, f"forbidden-{size}")


# Cells of the tables that scroll in their own box that take more lines than they have words
# (split at spaces and hyphens): a word or a figure broken mid-way.
BROKEN_WORDS = """
() => Array.from(document.querySelectorAll('.table-scroll table.grid th, .table-scroll table.grid td')).map(cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  // a line box: boxes that overlap vertically (a badge beside text is one line); boxes of
  // a pixel or less are visually hidden text
  const rects = Array.from(range.getClientRects()).filter(r => r.width > 1 && r.height > 1)
    .sort((a, b) => a.top - b.top);
  let lines = 0, bottom = -Infinity;
  for (const r of rects) {
    if (r.top >= bottom - 2) { lines += 1; bottom = r.bottom; } else bottom = Math.max(bottom, r.bottom);
  }
  // a line may end at a space or after a hyphen (sci-6e64 / 3569), never inside a word
  const words = cell.innerText.trim().split(/[\\s-]+/).filter(Boolean).length;
  return [cell.innerText.trim().slice(0, 60), words, lines];
}).filter(([, words, lines]) => lines > Math.max(words, 1))
"""
# Moments written outside the one <time> element (which local-time.js shows in the reader's
# local time): text nodes that read like a date and time.
LOOSE_TIMES = """
() => {
  const found = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (/\\d{4}-\\d\\d-\\d\\d[ T]\\d\\d:\\d\\d/.test(node.textContent)
        && !node.parentElement.closest('time.ts, pre, code, input, textarea, script')) {
      found.push(node.textContent.trim().slice(0, 80));
    }
  }
  return found;
}
"""
# What sticks out past the window, for the failure message.
WIDE_DEBUG = """() => Array.from(document.querySelectorAll('main *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 6).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + (e.textContent||'').trim().slice(0,50))"""
# Routes of the web UI that are not pages a person reads: POST targets, redirects and an image.
NOT_PAGES = {
    "home": "redirects to the experiments list",
    "logout": "POST",
    "token-revoke": "POST",
    "experiment-columns": "POST",
    "run-edit": "POST",
    "run-lifecycle": "POST",
    "run-artifact-image": "an image, shown inside the run page",
    "alias-change": "POST",
    "review-act": "POST",
    "request-promotion": "POST",
    "version-diff-pick": "redirects to version-diff",
    "logged-model": "test_a_logged_sklearn_model_is_read_from_its_run (a real logged model)",
}


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_no_page_scrolls_sideways(browser, live_server_process, signed_in, screenshot, size):
    """Every page of the web UI (enumerated from its URL configuration, so a new page cannot
    escape) fits the window: wide tables and code scroll in their own box, ids wrap."""
    from django.urls import get_resolver

    from tests.governance.test_mlflow_client_workflow import CARD
    from tests.web.test_browser_flow import seed

    server = live_server_process
    tag = uuid.uuid4().hex[:8]
    scientist = (f"sci-{tag}", server.create_user(f"sci-{tag}", "data-scientist"))
    officer = (f"co-{tag}", server.create_user(f"co-{tag}", "compliance"))
    data = seed(server, scientist, f"fit {tag} with a long experiment name")
    model, runs = data["model"], data["runs"]
    http = requests.Session()
    http.auth = scientist
    api = f"{server.url}/api/2.0/mlflow"
    http.post(
        f"{api}/model-versions/create", json={"name": model, "source": f"runs:/{runs[1]}/model"}
    ).raise_for_status()
    http.put(f"{server.url}/api/v1/models/{model}/versions/2/card", json=CARD).raise_for_status()
    for stage in ("Staging", "Production"):  # Production waits for a review
        http.post(
            f"{api}/model-versions/transition-stage",
            json={"name": model, "version": "1", "stage": stage},
        )
    request_id = http.get(
        f"{server.url}/api/v1/transition-requests",
        params={"model": model, "version": 1, "status": "open"},
    ).json()["requests"][0]["id"]
    experiment = data["experiment"]
    pages = {
        "login": ("anonymous", "/login/"),
        "tokens": (scientist, "/tokens/"),
        "experiments": (scientist, "/experiments/"),
        "experiment": (scientist, f"/experiments/{experiment}/?group=params.lr"),
        "experiment-charts": (scientist, f"/experiments/{experiment}/charts/"),
        "experiment-access": (scientist, f"/experiments/{experiment}/access/"),
        "run": (scientist, f"/runs/{runs[2]}/?artifacts=reports/summary.txt"),
        "compare": (scientist, "/compare/?" + "&".join(f"runs={r}" for r in runs)),
        "models": (scientist, "/models/"),
        "model": (scientist, f"/models/{model}/"),
        "model-access": (scientist, f"/models/{model}/access/"),
        "version": (scientist, f"/models/{model}/versions/1/"),
        "card": (scientist, f"/models/{model}/versions/1/card/"),
        "version-diff": (scientist, f"/models/{model}/versions/1/diff/2/"),
        "reviews": (scientist, "/reviews/"),
        "review": (scientist, f"/reviews/{request_id}/"),
        "access": (scientist, "/access/"),
        "lineage": (scientist, f"/lineage/?node=version:{model}/1&direction=both"),
        "audit": (officer, "/audit/"),
        "audit-event": (officer, "/audit/events/1/"),
    }
    web_routes = {
        p.name
        for p in get_resolver().url_patterns
        if getattr(p, "namespace", None) == "web"
        for p in p.url_patterns
    }
    assert web_routes == set(pages) | set(NOT_PAGES), "a web route the test does not open"

    opened = {}
    wide, broken, loose = [], [], []
    for name, (who, path) in pages.items():
        if who not in opened:
            opened[who] = (
                browser.new_context(base_url=server.url).new_page()
                if who == "anonymous"
                else signed_in(*who)
            )
        page = at(opened[who], size)
        response = page.goto(path)
        assert response.status == 200, (name, path, response.status)
        page.wait_for_load_state("networkidle")  # charts and plots drawn by script
        overflow = page.evaluate(PAGE_OVERFLOW)
        screenshot(page, f"page-{name}-{size}")
        if overflow > 1:
            wide.append((name, path, overflow, page.evaluate(WIDE_DEBUG)))
        broken += [(name, *cell) for cell in page.evaluate(BROKEN_WORDS)]
        if not name.startswith("audit"):  # the audit trail reads in UTC, as its filters do
            loose += [(name, text) for text in page.evaluate(LOOSE_TIMES)]
    assert not wide, wide
    assert not broken, broken
    assert not loose, loose

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


def test_links_the_mlflow_client_prints_open_custodys_pages(signed_in, live_server_process):
    """The client prints 'View run at http://host/#/experiments/1/runs/<id>' (MLflow's UI
    routes by fragment); those links land on Custody's run and experiment pages."""
    import re

    import requests

    password = live_server_process.create_user("link-follower", "data-scientist")
    auth = ("link-follower", password)
    api = f"{live_server_process.url}/api/2.0/mlflow"
    exp = requests.post(f"{api}/experiments/create", json={"name": "printed"}, auth=auth)
    exp_id = exp.json()["experiment_id"]
    run = requests.post(f"{api}/runs/create", json={"experiment_id": exp_id}, auth=auth)
    run_id = run.json()["run"]["info"]["run_id"]
    page = signed_in("link-follower", password)
    page.goto(f"/#/experiments/{exp_id}/runs/{run_id}")
    expect(page).to_have_url(re.compile(rf"/runs/{run_id}/$"))
    page.goto(f"/#/experiments/{exp_id}")
    expect(page).to_have_url(re.compile(rf"/experiments/{exp_id}/$"))

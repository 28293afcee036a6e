"""Server-rendered pages through Django's test client: content, permissions, query counts."""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache
from django.test import Client

from accounts import services as accounts
from tracking import services as tracking

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


@pytest.fixture
def browser(scientist):
    client = Client()
    client.force_login(scientist)
    return client


def make_run(experiment_id: int, name: str, metric: float, param: str) -> str:
    run = tracking.run_create(
        experiment_id=str(experiment_id), user_id="alice", run_name=name, start_time=TS, tags=[]
    )
    tracking.run_log_batch(
        run_id=run.run_id,
        metrics=[
            {"key": "loss", "value": metric / (s + 1), "timestamp": TS + s, "step": s}
            for s in range(3)
        ],
        params=[{"key": "lr", "value": param}, {"key": "depth", "value": "6"}],
        tags=[{"key": "team", "value": "fraud"}],
    )
    return run.run_id


def test_sign_in_page_and_errors(scientist):
    cache.clear()
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post("/login/", {"username": "alice", "password": "nope"})
    assert bad.status_code == 200 and b"error-box" in bad.content
    good = client.post("/login/", {"username": "alice", "password": "alice-pw-1"})
    assert good.status_code == 302 and good["Location"] == "/experiments/"
    cache.clear()


def test_experiment_list_counts_runs_with_a_fixed_query_count(
    browser, scientist, django_assert_max_num_queries
):
    for i in range(3):
        exp = tracking.experiment_create(name=f"exp-{i}", owner=scientist)
        for j in range(i):
            make_run(exp.experiment_id, f"r{j}", 1.0, "0.1")
    with django_assert_max_num_queries(8):
        page = browser.get("/experiments/")
    html = page.content.decode()
    assert "exp-2" in html and "Default" in html
    row = re.search(r"exp-2</a></td><td>\d+</td><td class=\"num\">(\d+)</td>", html)
    assert row and row.group(1) == "2"
    assert "exp-1" not in browser.get("/experiments/?q=exp-2").content.decode()


def test_experiment_list_counts_runs_up_to_the_runs_tables_cap(browser, scientist, monkeypatch):
    from web import views_tracking

    exp = tracking.experiment_create(name="big-sweep", owner=scientist)
    for j in range(3):
        make_run(exp.experiment_id, f"r{j}", 1.0, "0.1")
    deleted = make_run(exp.experiment_id, "gone", 1.0, "0.1")
    tracking.run_delete(run_id=deleted)
    row = r"big-sweep</a></td><td>\d+</td><td class=\"num\">([^<]+)</td>"
    html = browser.get("/experiments/").content.decode()
    assert re.search(row, html).group(1) == "3"  # active runs only
    monkeypatch.setattr(views_tracking, "MAX_COUNTED", 3)
    assert re.search(row, browser.get("/experiments/").content.decode()).group(1) == "3"
    monkeypatch.setattr(views_tracking, "MAX_COUNTED", 2)
    html = browser.get("/experiments/").content.decode()
    assert re.search(row, html).group(1) == "more than 2"


def test_run_page_shows_everything_logged(browser, scientist):
    exp = tracking.experiment_create(name="runs-page", owner=scientist)
    run_id = make_run(exp.experiment_id, "train", 1.0, "0.1")
    page = browser.get(f"/runs/{run_id}/")
    html = page.content.decode()
    assert page.status_code == 200
    for text in ("train", "lr", "0.1", "loss", "team", "fraud"):
        assert text in html
    data = json.loads(
        re.search(r'id="chart-data" type="application/json">(.*?)</script>', html).group(1)
    )
    assert [p[:2] for p in data["loss"][run_id]] == [[0, 1.0], [1, 0.5], [2, 1 / 3]]
    assert "<script>" not in html.replace("<script src=", "")  # no inline script (CSP)


def test_compare_highlights_differences(browser, scientist):
    exp = tracking.experiment_create(name="compare-page", owner=scientist)
    a = make_run(exp.experiment_id, "a", 1.0, "0.1")
    b = make_run(exp.experiment_id, "b", 2.0, "0.2")
    page = browser.get(f"/compare/?runs={a}&runs={b}")
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'<tr class="differs"><th scope="row" title="lr">lr</th>', html)
    assert re.search(r'<tr class=""><th scope="row" title="depth">depth</th>', html)
    data = json.loads(
        re.search(r'id="chart-data" type="application/json">(.*?)</script>', html).group(1)
    )
    assert set(data["loss"]) == {a, b}
    assert browser.get(f"/compare/?runs={a}").status_code == 400


def test_pages_respect_permissions(scientist):
    exp = tracking.experiment_create(name="secret", owner=scientist)
    run_id = make_run(exp.experiment_id, "hidden-run", 1.0, "0.1")
    from tracking.permissions import experiment_grants_replace

    experiment_grants_replace(
        experiment_id=exp.experiment_id,
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    bob = accounts.user_create(username="bob", role="data-scientist", password="bob-pw-1")
    client = Client()
    client.force_login(bob)
    assert "secret" not in client.get("/experiments/").content.decode()
    assert client.get(f"/experiments/{exp.experiment_id}/").status_code == 404
    assert client.get(f"/runs/{run_id}/").status_code == 404
    other = make_run(0, "visible", 1.0, "0.1")
    assert client.get(f"/compare/?runs={run_id}&runs={other}").status_code == 404


def test_tokens_page_creates_shows_once_and_revokes(browser, scientist):
    created = browser.post("/tokens/", {"name": "laptop", "expires_in_days": "7"}, follow=True)
    # Post/redirect/get: the token is shown on the page after the redirect, so a refresh
    # (a GET) creates no second token.
    assert created.redirect_chain == [("/tokens/", 302)]
    assert scientist.api_tokens.filter(name="laptop").count() == 1
    html = created.content.decode()
    raw = re.search(r'<code class="token">(cust_[^<]+)</code>', html).group(1)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/me").status_code == 200
    assert raw not in browser.get("/tokens/").content.decode()
    token_id = scientist.api_tokens.get(name="laptop").pk
    browser.post(f"/tokens/{token_id}/revoke")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/me").status_code == 401


def test_forms_need_csrf(scientist):
    client = Client(enforce_csrf_checks=True)
    client.force_login(scientist)
    assert client.post("/tokens/", {"name": "x"}).status_code == 403


def test_output_is_escaped(browser, scientist):
    exp = tracking.experiment_create(name="<script>alert(1)</script>", owner=scientist)
    html = browser.get("/experiments/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert exp

"""The runs table in Debian's Chromium at 1440x900 and at 390 px: no cell of a 12-column
table wraps a word or a number, the table scrolls sideways with the run name pinned, child
runs fold under their parent, columns are chosen and kept, a filter mistake offers the fix,
timestamps read in local time, and a run is edited from its page. Screenshots go to
test-artifacts/screenshots/runs-*.png."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

COMMIT = "3f9c2e1d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
# Five fixed columns (select, run, started, status, duration) and seven chosen: twelve.
CHOSEN = [
    "metrics.accuracy",
    "metrics.val_auc",
    "metrics.validation_loss_smoothed",
    "params.learning_rate",
    "params.model_family",
    "tags.mlflow.source.git.commit",
    "tags.dataset_version",
]
RUNS_CELLS = "#runs-table th, #runs-table td"
TS = 1_700_000_000_000
WIDTHS = {"desktop": (1440, 900), "phone": (390, 844)}

# Per cell of the selector: how many distinct line tops its text has (1 = it did not wrap).
LINES_PER_CELL = """
selector => Array.from(document.querySelectorAll(selector)).map(cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = [];
  for (const rect of range.getClientRects()) {
    if (rect.width === 0 || rect.height === 0) continue;
    if (!tops.some(top => Math.abs(top - rect.top) < 4)) tops.push(rect.top);
  }
  return {text: cell.innerText.trim(), lines: tops.length};
})
"""


def seed(server, auth, name: str) -> dict:
    api = f"{server.url}/api/2.0/mlflow"
    http = requests.Session()
    http.auth = auth
    exp = http.post(f"{api}/experiments/create", json={"name": name}).json()
    parent = None
    runs = []
    for i in range(8):
        tags = [{"key": "mlflow.source.git.commit", "value": COMMIT}]
        if parent:
            tags.append({"key": "mlflow.parentRunId", "value": parent})
        run = http.post(
            f"{api}/runs/create",
            json={
                "experiment_id": exp["experiment_id"],
                "run_name": "gradient-boosting-parent" if i == 0 else f"trial-{i:02d}-FINISHED",
                "start_time": 1_700_000_000_000 + i * 1000,
                "tags": tags,
            },
        ).json()["run"]["info"]["run_id"]
        parent = parent or run
        http.post(
            f"{api}/runs/log-batch",
            json={
                "run_id": run,
                "metrics": [
                    {"key": "accuracy", "value": 0.864052 + i / 1000, "timestamp": 1, "step": 0},
                    {"key": "val_auc", "value": 0.91 + i / 100, "timestamp": 1, "step": 0},
                    {
                        "key": "validation_loss_smoothed",
                        "value": 123456.789 * (i + 1),
                        "timestamp": 1,
                        "step": 0,
                    },
                ],
                "params": [
                    {"key": "learning_rate", "value": f"0.00{i + 1}"},
                    {"key": "model_family", "value": "GradientBoostingClassifierWithEarlyStop"},
                ],
                "tags": [{"key": "dataset_version", "value": "customers_2026_11_full_snapshot"}],
            },
        ).raise_for_status()
        http.post(
            f"{api}/runs/update",
            json={"run_id": run, "status": "FINISHED", "end_time": 1_700_000_090_000 + i},
        )
        runs.append(run)
    return {"experiment": exp["experiment_id"], "runs": runs}


@pytest.fixture
def world(live_server_process, signed_in):
    import uuid

    user = f"table-{uuid.uuid4().hex[:8]}"  # the live server's database outlives one test
    password = live_server_process.create_user(user, "data-scientist")
    data = seed(live_server_process, (user, password), f"churn sweep {user}")
    data["auth"] = (user, password)
    return data, lambda: signed_in(user, password)


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_twelve_column_table_never_wraps_and_scrolls_with_the_name_pinned(world, screenshot, size):
    data, open_page = world
    page = open_page()
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    query = "&".join(f"col={c}" for c in CHOSEN)
    page.goto(f"/experiments/{data['experiment']}/?flat=1&{query}")
    table = page.locator("#runs-table")
    expect(table.locator("thead th")).to_have_count(12)
    expect(table.locator("tbody tr")).to_have_count(8)
    cells = page.evaluate(LINES_PER_CELL, RUNS_CELLS)
    wrapped = [c for c in cells if c["lines"] > 1]
    assert len(cells) == 12 * 9 and not wrapped, wrapped
    # the commit is short in the cell, whole on hover
    commit_cell = table.locator("tbody tr").first.locator("td").nth(10)
    expect(commit_cell).to_have_attribute("title", COMMIT)
    assert (
        commit_cell.inner_text().startswith(COMMIT[:8]) and COMMIT not in commit_cell.inner_text()
    )
    screenshot(page, f"runs-table-{size}")
    scroller = page.locator(".table-scroll")
    overflow = scroller.evaluate("el => el.scrollWidth - el.clientWidth")
    if size == "phone":
        assert overflow > 300  # twelve columns do not fit in 390 px: the table scrolls
    if overflow > 0:
        name = table.locator("tbody tr").first.locator("td.pin-name")
        before = name.bounding_box()["x"]
        scroller.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        page.wait_for_function("() => document.querySelector('.table-scroll').scrollLeft > 0")
        assert abs(name.bounding_box()["x"] - before) < 1  # pinned
        screenshot(page, f"runs-table-{size}-scrolled")


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_children_fold_columns_stay_and_a_filter_mistake_offers_the_fix(world, screenshot, size):
    data, open_page = world
    page = open_page()
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    page.goto(f"/experiments/{data['experiment']}/")
    expect(page.locator("#runs-count")).to_contain_text("Runs 1–1 of 1 top-level runs")
    children = page.locator("#runs-table tr.child")
    expect(children).to_have_count(7)
    toggle = page.get_by_role("button", name=re.compile("Hide the 7 child runs"))
    toggle.click()
    expect(children.first).to_be_hidden()
    page.get_by_role("button", name=re.compile("Show the 7 child runs")).click()
    expect(children.first).to_be_visible()
    # defaults: the keys that vary (val_auc among them), not the constant model_family
    headers = page.locator("#runs-table thead th")
    expect(headers.filter(has_text="val_auc")).to_have_count(1)
    expect(headers.filter(has_text="model_family")).to_have_count(0)
    # timestamps in the reader's local time, the UTC offset on hover
    started = page.locator("#runs-table tbody time.ts").first
    expect(started).to_have_attribute("data-local", "true")
    expect(started).to_have_attribute("title", re.compile(r"UTC[+-]\d\d:\d\d"))

    page.get_by_text("Columns", exact=False).first.click()
    page.get_by_label("model_family").check()
    page.get_by_label("accuracy").uncheck()
    page.get_by_role("button", name="Save columns").click()
    page.goto(f"/runs/{data['runs'][1]}/")
    page.locator(".crumbs a").nth(1).click()  # back through the breadcrumb: still chosen
    expect(headers.filter(has_text="model_family")).to_have_count(1)
    expect(headers.filter(has_text="accuracy")).to_have_count(0)

    page.get_by_label("Filter").fill("val_auc > 0.955")
    page.get_by_role("button", name="Apply").click()
    error = page.locator("#filter-error")
    expect(error).to_contain_text("is not a run attribute")
    expect(page.locator("#runs-none")).to_contain_text("until the filter is corrected")
    screenshot(page, f"runs-filter-error-{size}")
    error.get_by_role("link", name="metrics.val_auc").click()
    expect(page.locator("#filter")).to_have_value("metrics.val_auc > 0.955")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)
    page.get_by_label("Run name").fill("trial-0")
    page.get_by_label("Filter").fill("")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#runs-table tbody tr")).to_have_count(7)


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_edit_a_run_from_its_page(world, screenshot, size):
    data, open_page = world
    page = open_page()
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    run = data["runs"][3]
    page.goto(f"/runs/{run}/")
    page.get_by_text("Edit this run").click()
    page.get_by_label("Name", exact=True).fill(f"renamed-{size}")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"renamed-{size}")
    page.get_by_text("Edit this run").click() if not page.locator("#edit").get_attribute(
        "open"
    ) is not None else None
    page.get_by_label("Description").fill("Early stopping at 40 rounds.")
    page.get_by_role("button", name="Save description").click()
    expect(page.locator("#run-description")).to_have_text("Early stopping at 40 rounds.")
    page.get_by_label("Tag", exact=True).fill("reviewed")
    page.get_by_label("Value", exact=True).fill("yes")
    page.get_by_role("button", name="Set tag").click()
    expect(page.locator("#user-tags")).to_contain_text("reviewed")
    expect(page.locator("#user-tags")).not_to_contain_text("mlflow.")
    screenshot(page, f"run-edit-{size}")
    page.get_by_role("button", name="Delete run").click()
    expect(page.get_by_role("button", name="Restore run")).to_be_visible()
    page.get_by_role("button", name="Restore run").click()
    expect(page.get_by_role("button", name="Delete run")).to_be_visible()


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_charts_have_controls_and_compare_plots_params_against_metrics(
    world, live_server_process, screenshot, size
):
    data, open_page = world
    page = open_page()
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    # a curve for two of the trials (the seed logs single values)
    for run in data["runs"][1:3]:
        requests.post(
            f"{live_server_process.url}/api/2.0/mlflow/runs/log-batch",
            auth=data["auth"],
            json={
                "run_id": run,
                "metrics": [
                    {"key": "loss", "value": 1 / (s + 1), "timestamp": TS + s * 1000, "step": s}
                    for s in range(30)
                ],
            },
        ).raise_for_status()
    page.goto(f"/experiments/{data['experiment']}/?flat=1")
    page.locator("#charts-link").click()
    charts = page.locator("#charts")
    expect(charts).to_have_attribute("data-ready", "true")
    loss = page.locator('figure.chart[data-metric="loss"]')
    expect(loss).to_have_attribute("data-series", "2")
    page.get_by_label("X axis").select_option("relative")
    expect(charts).to_have_attribute("data-x", "relative")
    page.get_by_label("Log scale").check()
    expect(charts).to_have_attribute("data-log", "true")
    page.get_by_label("Smoothing").fill("0.6")
    expect(charts).to_have_attribute("data-smoothing", "0.6")
    loss.scroll_into_view_if_needed()
    box = loss.locator("canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] / 2)
    page.mouse.up()
    expect(loss).to_have_attribute("data-zoomed", "true")
    screenshot(page, f"experiment-charts-{size}")
    page.get_by_role("button", name="Reset zoom").click()
    expect(loss).not_to_have_attribute("data-zoomed", "true")

    # compare three runs chosen from the table: colours match the table's swatches
    page.goto(f"/experiments/{data['experiment']}/?flat=1")
    swatch = page.locator(f'#runs-table tr[data-run-id="{data["runs"][2]}"] .run-swatch')
    table_colour = swatch.evaluate("el => getComputedStyle(el).backgroundColor")
    for run in data["runs"][1:4]:
        page.locator(f'input[name="runs"][value="{run}"]').check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.get_by_role("heading", name="Compare 3 runs")).to_be_visible()
    compare_swatch = page.locator(
        f'#compare-params th .run-swatch[data-run-colour="{data["runs"][2]}"]'
    )
    assert compare_swatch.evaluate("el => getComputedStyle(el).backgroundColor") == table_colour
    expect(page.locator("#scatter")).to_have_attribute("data-points", "3")
    expect(page.locator("#parallel")).to_have_attribute("data-lines", "3")
    page.get_by_label("Y", exact=True).select_option(label="metrics.val_auc")
    expect(page.locator("#scatter")).to_have_attribute("data-points", "3")
    expect(page.get_by_role("link", name="Back to the runs table")).to_be_visible()
    # the params and metrics side by side: one line per cell, long values cut, whole on hover
    cells = page.evaluate(LINES_PER_CELL, "table.compare th, table.compare td")
    wrapped = [c for c in cells if c["lines"] > 1]
    assert len(cells) == 4 * (3 + 5) and not wrapped, wrapped  # 3 runs, 2 params, 4 metrics
    family = page.locator('#compare-params td[title^="GradientBoosting"]').first
    expect(family).to_have_attribute("title", "GradientBoostingClassifierWithEarlyStop")
    screenshot(page, f"compare-plots-{size}")


@pytest.mark.parametrize("size", WIDTHS, ids=list(WIDTHS))
def test_grouped_by_a_param_folds_each_group_and_never_wraps(
    world, live_server_process, screenshot, size
):
    data, open_page = world
    for i, run in enumerate(data["runs"]):  # the parent run has no booster: the "(none)" group
        if i:
            requests.post(
                f"{live_server_process.url}/api/2.0/mlflow/runs/log-batch",
                auth=data["auth"],
                json={
                    "run_id": run,
                    "params": [{"key": "booster", "value": "gbtree" if i % 2 else "dart"}],
                },
            ).raise_for_status()
    page = open_page()
    page.set_viewport_size({"width": WIDTHS[size][0], "height": WIDTHS[size][1]})
    query = "&".join(f"col={c}" for c in CHOSEN)
    page.goto(f"/experiments/{data['experiment']}/?{query}")
    page.get_by_label("Group by").select_option("params.booster")
    page.get_by_role("button", name="Apply").click()
    table = page.locator("#runs-table")
    headers = table.locator("tr.group-row")
    expect(headers).to_have_count(3)
    assert [v.strip() for v in headers.locator(".group-value").all_inner_texts()] == [
        "dart",
        "gbtree",
        "(none)",
    ]
    expect(headers.nth(1).locator(".group-count")).to_have_text("4 runs")
    expect(table.locator("tbody tr[data-run-id]")).to_have_count(8)
    # the group's mean val_auc, with the lowest and highest beside it, on one line
    expect(headers.nth(0).locator("td.num").nth(1)).to_contain_text("–")
    cells = page.evaluate(LINES_PER_CELL, RUNS_CELLS)
    wrapped = [c for c in cells if c["lines"] > 1]
    assert len(cells) == 12 * 9 + 10 * 3 and not wrapped, wrapped
    screenshot(page, f"runs-grouped-{size}")
    gbtree = table.locator('tr[data-in-group="group-1"]')
    page.get_by_role("button", name="Hide the runs of params.booster = gbtree").click()
    expect(gbtree.first).to_be_hidden()
    expect(table.locator('tr[data-in-group="group-0"]').first).to_be_visible()
    page.get_by_role("button", name="Show the runs of params.booster = gbtree").click()
    expect(gbtree).to_have_count(4)
    expect(gbtree.first).to_be_visible()
    # the grouping stays through a sort
    table.locator('thead a[data-column="metrics.val_auc"]').click()
    expect(headers).to_have_count(3)
    expect(page.get_by_label("Group by")).to_have_value("params.booster")

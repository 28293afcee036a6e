"""The runs table as a data scientist meets it: default columns that vary, a saved column
choice per user and experiment, nested child runs, name search, totals, short hashes, filter
errors that suggest the fix, an empty state that shows how to start."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from accounts import services as accounts
from tests.web.test_tracking_pages import TS, new_run, parent_tag, signed_in
from tracking import services as tracking

pytestmark = pytest.mark.django_db


def metric(key: str, value: float) -> dict:
    return {"key": key, "value": value, "timestamp": TS, "step": 0}


def sweep(experiment_id, count: int = 3) -> list[str]:
    return [
        new_run(
            experiment_id,
            f"gbm-{i}",
            metrics=[metric("val_auc", 0.8 + i / 100), metric("aaa_constant", 1.0)],
            params=[{"key": "lr", "value": str(i)}, {"key": "seed", "value": "42"}],
        )
        for i in range(count)
    ]


def headers(html: str) -> list[str]:
    return re.findall(r'<th scope="col" class="(?:num|text)"[^>]* title="([^"]+)">', html)


def test_default_columns_are_what_varies_and_the_choice_is_saved_per_user(scientist):
    exp = tracking.experiment_create(name="defaults", owner=scientist)
    other_exp = tracking.experiment_create(name="other", owner=scientist)
    sweep(exp.experiment_id)
    sweep(other_exp.experiment_id)
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = client.get(url).content.decode()
    # val_auc and lr differ between the runs; the constant metric and param do not
    assert headers(page) == ["Duration", "metrics.val_auc", "params.lr"][1:]
    # a key the filter names comes first
    named = client.get(url, {"filter": "params.seed = '42'"}).content.decode()
    assert headers(named)[0] == "params.seed"

    saved = client.post(
        f"{url}columns",
        {"col": ["metrics.aaa_constant", "tags.mlflow.source.git.commit"], "filter": "x"},
    )
    assert saved.status_code == 302 and saved["Location"] == f"{url}?filter=x"
    again = client.get(url).content.decode()  # the run page's breadcrumb links here
    assert headers(again) == ["metrics.aaa_constant", "tags.mlflow.source.git.commit"]
    assert "your saved choice" in again
    other_page = client.get(f"/experiments/{other_exp.experiment_id}/").content.decode()
    assert headers(other_page) == ["metrics.val_auc", "params.lr"]
    bob = accounts.user_create(username="bob", role="data-scientist", password="bob-pw-1")
    assert headers(signed_in(bob).get(url).content.decode()) == ["metrics.val_auc", "params.lr"]
    client.post(f"{url}columns", {"reset": "1", "col": ["metrics.aaa_constant"]})
    assert headers(client.get(url).content.decode()) == ["metrics.val_auc", "params.lr"]
    assert client.get(f"{url}columns").status_code == 405


def test_child_runs_nest_under_their_parent_with_totals(scientist):
    from web.views_tracking import CHILDREN_SHOWN

    exp = tracking.experiment_create(name="nested", owner=scientist)
    parent = new_run(exp.experiment_id, "sweep-parent")
    children = [
        new_run(exp.experiment_id, f"trial-{i}", tags=parent_tag(parent))
        for i in range(CHILDREN_SHOWN + 5)
    ]
    lone = new_run(exp.experiment_id, "lone")
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = client.get(url).content.decode()
    assert "Runs 1–2 of 2 top-level runs" in page
    assert page.count(f'data-parent="{parent}"') == CHILDREN_SHOWN
    assert f"{CHILDREN_SHOWN + 5} children, {CHILDREN_SHOWN} shown" in page
    shown = re.findall(rf'data-run-id="(\w+)" data-parent="{parent}"', page)
    assert set(shown) < set(children) and len(set(shown)) == CHILDREN_SHOWN
    assert f'data-run-id="{lone}"' in page
    flat = client.get(url, {"flat": "1"}).content.decode()
    assert "data-parent=" not in flat and f"of {CHILDREN_SHOWN + 7}." in flat
    # the "children" link lists all of them, as a filter
    link = re.search(r'class="children-count" href="([^"]+)"', page).group(1)
    listed = client.get(url + html_lib.unescape(link)).content.decode()
    assert f"Runs 1–{CHILDREN_SHOWN + 5} of {CHILDREN_SHOWN + 5}." in listed


def test_run_name_search_takes_the_text_literally(scientist):
    exp = tracking.experiment_create(name="named", owner=scientist)
    for name in ("gbm-small", "GBM-large", "xgb", "50%_off", "it's"):
        new_run(exp.experiment_id, name)
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def names(q: str) -> set[str]:
        page = client.get(url, {"q": q}).content.decode()
        assert 'role="alert"' not in page, page
        return set(re.findall(r'title="([^"]+)">\1</a>', html_lib.unescape(page)))

    assert names("gbm") == {"gbm-small", "GBM-large"}
    assert names("%_") == {"50%_off"}
    assert names("'") == {"it's"}
    assert names("nothing") == set()
    assert "No runs match “nothing”" in client.get(url, {"q": "nothing"}).content.decode()


@pytest.mark.parametrize(
    ("text", "says", "suggests"),
    [
        ("gbm", "is not a filter", "attributes.run_name ILIKE '%gbm%'"),
        # The words are taken literally: a quote or a LIKE wildcard in them stays text.
        ("it's 50%", "is not a filter", "attributes.run_name ILIKE '%it''s 50\\%%'"),
        ("val_auc > 0.9", "is not a run attribute", "metrics.val_auc > 0.9"),
        ("metricz.val_auc > 0.9", "is not a kind of key", "metrics.val_auc > 0.9"),
        ("lr = '1'", "is not a run attribute", "params.lr = '1'"),
    ],
)
def test_filter_errors_say_what_is_wrong_and_suggest_the_fix(scientist, text, says, suggests):
    exp = tracking.experiment_create(name="typos", owner=scientist)
    sweep(exp.experiment_id)
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = html_lib.unescape(client.get(url, {"filter": text}).content.decode())
    assert says in page and "Valid keys are" not in page and "No runs match" not in page
    assert "Invalid clause(s) in filter string: ''" not in page
    suggestion = re.search(r'Did you mean <a href="([^"]+)">', page).group(1)
    fixed = html_lib.unescape(client.get(url + suggestion).content.decode())
    assert 'role="alert"' not in fixed and suggests in fixed


def test_a_key_no_run_has_is_pointed_out(scientist):
    exp = tracking.experiment_create(name="unknown key", owner=scientist)
    sweep(exp.experiment_id)
    page = html_lib.unescape(
        signed_in(scientist)
        .get(f"/experiments/{exp.experiment_id}/", {"filter": "metrics.val_acu > 0.5"})
        .content.decode()
    )
    assert "No run in this experiment has metrics.val_acu" in re.sub(r"<[^>]+>", "", page)
    assert "did you mean <a" in page and ">metrics.val_auc</a>?" in page


def test_hashes_are_short_with_the_full_value_to_hover_and_copy(scientist):
    exp = tracking.experiment_create(name="hashes", owner=scientist)
    commit = "0123456789abcdef0123456789abcdef01234567"
    new_run(exp.experiment_id, "c", tags=[{"key": "mlflow.source.git.commit", "value": commit}])
    page = (
        signed_in(scientist)
        .get(f"/experiments/{exp.experiment_id}/", {"col": ["tags.mlflow.source.git.commit"]})
        .content.decode()
    )
    assert f'title="{commit}"><code>01234567</code>' in page
    assert f'data-copy="{commit}"' in page and f">{commit}<" not in page


def test_an_empty_experiment_shows_how_to_start(scientist):
    exp = tracking.experiment_create(name="brand new", owner=scientist)
    page = html_lib.unescape(
        signed_in(scientist).get(f"/experiments/{exp.experiment_id}/").content.decode()
    )
    assert 'id="runs-empty"' in page and 'mlflow.set_experiment("brand new")' in page
    assert "mlflow.set_tracking_uri(" in page and 'id="runs-table"' not in page


def test_runs_table_query_count_is_pinned(scientist, django_assert_max_num_queries):
    from core import process_cache

    exp = tracking.experiment_create(name="pinned", owner=scientist)
    parent = new_run(exp.experiment_id, "parent")
    for i in range(6):
        new_run(exp.experiment_id, f"child-{i}", tags=parent_tag(parent), metrics=[metric("m", i)])
    sweep(exp.experiment_id)
    client = signed_in(scientist)
    client.get(f"/experiments/{exp.experiment_id}/")
    process_cache.clear_all()
    with django_assert_max_num_queries(20):  # no run inputs read; the experiment read once
        response = client.get(f"/experiments/{exp.experiment_id}/")
    assert response.status_code == 200


def test_compare_with_one_run_goes_back_to_the_table_saying_why(scientist):
    exp = tracking.experiment_create(name="one to compare", owner=scientist)
    runs = sweep(exp.experiment_id, 2)
    client = signed_in(scientist)
    back = client.get(
        "/compare/", {"runs": [runs[0]], "experiment": str(exp.experiment_id)}, follow=True
    )
    assert back.redirect_chain[-1][0] == f"/experiments/{exp.experiment_id}/"
    assert "Choose at least two different runs" in back.content.decode()
    page = client.get(
        "/compare/", {"runs": runs, "experiment": str(exp.experiment_id)}
    ).content.decode()
    assert f'href="/experiments/{exp.experiment_id}/">Back to the runs table' in page
    assert '<script id="run-order" type="application/json">' in page


def test_experiment_chart_view_draws_the_runs_the_table_shows(scientist):
    import json

    exp = tracking.experiment_create(name="charted", owner=scientist)
    runs = sweep(exp.experiment_id, 3)
    hidden = new_run(exp.experiment_id, "other", metrics=[metric("val_auc", 0.1)])
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/charts/"
    page = client.get(url, {"q": "gbm"}).content.decode()
    data = json.loads(re.search(r'id="chart-data" type="application/json">(.*?)</script>', page)[1])
    assert set(data["val_auc"]) == set(runs) and hidden not in data["val_auc"]
    assert set(data) == {"val_auc", "aaa_constant"}
    order = json.loads(re.search(r'id="run-order" type="application/json">(.*?)</script>', page)[1])
    assert sorted(order) == sorted(runs)
    table = client.get(f"/experiments/{exp.experiment_id}/", {"q": "gbm"}).content.decode()
    assert f'href="{url}?q=gbm" id="charts-link"' in table
    bad = client.get(url, {"filter": "nonsense"}).content.decode()
    assert 'role="alert"' in bad


def test_compare_offers_numeric_params_and_metrics_to_plot(scientist):
    import json

    exp = tracking.experiment_create(name="plotted", owner=scientist)
    runs = sweep(exp.experiment_id, 3)
    tracking.run_log_batch(run_id=runs[0], params=[{"key": "model", "value": "gbm"}])
    page = signed_in(scientist).get("/compare/", {"runs": runs}).content.decode()
    plot = json.loads(
        re.search(r'id="plot-values" type="application/json">(.*?)</script>', page)[1]
    )
    # "model" is text, so it is not an axis; seed is constant but numeric, so it is
    assert plot["columns"] == [
        "params.lr",
        "params.seed",
        "metrics.aaa_constant",
        "metrics.val_auc",
    ]
    assert plot["runs"][runs[2]] == pytest.approx([2.0, 42.0, 1.0, 0.82])


def test_the_chart_view_follows_the_nested_table_and_its_page_tokens(scientist):
    """Unfiltered, the table lists top-level runs with their children under them; the chart
    view of a page draws the same runs, and the table's page links work on it."""
    import json

    exp = tracking.experiment_create(name="nested charts", owner=scientist)
    parent = new_run(exp.experiment_id, "parent", metrics=[metric("loss", 1.0)])
    child = new_run(
        exp.experiment_id, "child", tags=parent_tag(parent), metrics=[metric("loss", 0.5)]
    )
    for i in range(50):  # one more page of top-level runs
        new_run(exp.experiment_id, f"top-{i}", metrics=[metric("loss", 0.1)])
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def chart_runs(query: str) -> list[str]:
        page = client.get(f"{url}charts/?{query}").content.decode()
        assert 'role="alert"' not in page, page
        return json.loads(
            re.search(r'id="run-order" type="application/json">(.*?)</script>', page)[1]
        )

    table = html_lib.unescape(client.get(url).content.decode())
    next_page = re.search(r'href="\?(page=[^"&]+)', table)[1]
    first, second = chart_runs(""), chart_runs(next_page)
    assert len(first) + len(second) == 52 and not set(first) & set(second)
    everything = first + second
    assert everything.index(child) == everything.index(parent) + 1  # under its parent


def test_every_value_in_a_run_row_is_escaped(scientist):
    """The rows are built in Python (runs_table.run_row_html), not by the template's
    autoescaping: a run name, a param value and a tag written to break out of the markup
    show as text."""
    exp = tracking.experiment_create(name="escaping", owner=scientist)
    name = '<img src=x onerror=alert(1)>"'
    value = "\"><script>alert(2)</script>'"
    parent = new_run(
        exp.experiment_id,
        name,
        params=[{"key": "p", "value": value}],
        log_tags=[{"key": "note", "value": value}],
    )
    new_run(exp.experiment_id, "child", tags=parent_tag(parent))
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = client.get(url, {"col": ["params.p", "tags.note"]}).content.decode()
    assert "<img" not in page and "<script>alert" not in page
    row = re.search(rf'<tr data-run-id="{parent}">.*?</tr>', page, re.S).group(0)
    escaped_name = html_lib.escape(name)
    assert f'aria-label="Compare {escaped_name}"' in row
    assert f'title="{escaped_name}">{escaped_name}</a>' in row
    assert (
        f'data-toggle-children="{parent}" aria-label="Hide the 1 child runs of {escaped_name}"'
        in row
    )
    assert row.count(f">{html_lib.escape(value)}</td>") == 2  # the param and the tag


def test_the_last_page_says_its_total_without_counting_again(scientist, monkeypatch):
    """A page with no next page ends the search: its total is the runs before it and on it,
    with no count query. Earlier pages count (up to MAX_COUNTED)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from web import views_tracking

    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 2)
    exp = tracking.experiment_create(name="totals", owner=scientist)
    sweep(exp.experiment_id, 5)
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def page_and_counts(address: str, params: dict | None = None) -> tuple[str, int]:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(address, params).content.decode()
        counts = [q for q in captured.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]
        return html_lib.unescape(page), len(counts)

    first, counted = page_and_counts(url, {"filter": "metrics.val_auc > 0.805"})  # gbm-1..4
    assert "Runs 1–2 of 4" in first and counted == 1
    token = re.search(r'href="\?([^"]+)" rel="next"', first).group(1)
    last, counted = page_and_counts(f"{url}?{token}")
    assert "Runs 3–4 of 4" in last and counted == 0 and 'rel="next"' not in last
    few, counted = page_and_counts(url, {"filter": "metrics.val_auc > 0.835"})  # gbm-4
    assert "Runs 1–1 of 1" in few and counted == 0

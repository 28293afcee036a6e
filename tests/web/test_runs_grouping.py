"""The runs table grouped by a param or a tag: a header row per value (in order of value, the
runs lacking the key last as "(none)") with the group's run count and the mean, lowest and
highest of each metric column over all its runs; with the filter, the name search, the sort,
pages that say when a group goes on, the saved view, and a clear refusal of a wrong key."""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import urlencode

import pytest
from django.db import connection

from tests.web.test_runs_table import metric
from tests.web.test_tracking_pages import new_run, signed_in
from tracking import services as tracking

pytestmark = pytest.mark.django_db

GROUP_ROW = re.compile(
    r'<tr class="group-row" data-group="([^"]+)">.*?class="group-value">([^<]*)</span>.*?</th>\s*'
    r'<td colspan="3" class="group-count">([^<]*)</td>(.*?)</tr>',
    re.S,
)
RUN_ROW = re.compile(r'<tr data-run-id="(\w+)"[^>]*?(?: data-in-group="([^"]+)")?>')


def groups(page: str) -> list[tuple[str, str]]:
    """(value shown, count text) per group header, in page order."""
    return [(html_lib.unescape(v), c) for _, v, c, _ in GROUP_ROW.findall(page)]


def members(page: str) -> dict[str, list[str]]:
    """Group value shown -> the run ids listed under it, in page order."""
    names = {g: html_lib.unescape(v) for g, v, _, _ in GROUP_ROW.findall(page)}
    found: dict[str, list[str]] = {}
    for run_id, group in RUN_ROW.findall(page):
        found.setdefault(names[group], []).append(run_id)
    return found


@pytest.fixture
def sweep(scientist):
    """Nine runs: lr 10, 2 or 0.5 (numbers, so 0.5 < 2 < 10, not as text), two without lr;
    team a or b as a tag; val_auc rising with the index."""
    exp = tracking.experiment_create(name="grouped sweep", owner=scientist)
    runs = {}
    plan = ["10", "2", "0.5", "2", "10", None, "2", "0.5", None]
    for i, lr in enumerate(plan):
        runs[f"r{i}"] = new_run(
            exp.experiment_id,
            f"r{i}",
            metrics=[metric("val_auc", 0.5 + i / 100), metric("loss", 1.0 - i / 10)],
            params=[{"key": "lr", "value": lr}] if lr else [],
            log_tags=[{"key": "team", "value": "a" if i % 3 else "b"}],
        )
    return exp, runs


def test_groups_by_a_param_in_order_of_value_with_counts_and_the_metrics_figures(scientist, sweep):
    exp, runs = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = client.get(
        url, {"group": "params.lr", "col": ["metrics.val_auc", "params.lr", "metrics.loss"]}
    ).content.decode()
    assert groups(page) == [
        ("0.5", "2 runs"),
        ("2", "3 runs"),
        ("10", "2 runs"),
        ("(none)", "2 runs"),
    ]
    listed = members(page)
    assert set(listed["0.5"]) == {runs["r2"], runs["r7"]}
    assert set(listed["(none)"]) == {runs["r5"], runs["r8"]}
    assert set(listed["2"]) == {runs["r1"], runs["r3"], runs["r6"]}
    # the header's val_auc cell: the mean over the group, lowest and highest beside it
    cells = {html_lib.unescape(v): rest for _, v, _, rest in GROUP_ROW.findall(page)}
    assert ">0.5333<" in cells["2"] and "0.51–0.56" in cells["2"]  # r1, r3, r6
    assert 'title="mean 0.533333, min 0.51, max 0.56 over the 3 runs' in cells["2"]
    assert 'title="mean 0.666667, min 0.4, max 0.9 over the 3 runs' in cells["2"]  # loss
    assert cells["2"].index("0.5333") < cells["2"].index("0.6667")  # in the columns' order
    assert "Runs 1–9 of 9, grouped by params.lr" in html_lib.unescape(page)
    # grouped, child runs are not nested: every run is a row
    assert "List child runs as rows" not in page


def test_group_by_a_tag_with_the_filter_the_name_search_and_the_sort(scientist, sweep):
    exp, runs = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    page = client.get(
        url, {"group": "tags.team", "filter": "metrics.val_auc > 0.515", "col": ["metrics.loss"]}
    ).content.decode()
    # r0, r3, r6 are team b; the filter drops r0 and r1
    assert groups(page) == [("a", "5 runs"), ("b", "2 runs")]
    assert set(members(page)["b"]) == {runs["r3"], runs["r6"]}
    searched = client.get(url, {"group": "tags.team", "q": "r1"}).content.decode()
    assert groups(searched) == [("a", "1 run")] and members(searched) == {"a": [runs["r1"]]}
    # within a group the table's sort holds
    ordered = client.get(
        url, {"group": "params.lr", "order": "metrics.val_auc ASC"}
    ).content.decode()
    assert members(ordered)["2"] == [runs["r1"], runs["r3"], runs["r6"]]
    reverse = client.get(
        url, {"group": "params.lr", "order": "metrics.val_auc DESC"}
    ).content.decode()
    assert members(reverse)["2"] == [runs["r6"], runs["r3"], runs["r1"]]
    assert [g for g, _ in groups(reverse)] == ["0.5", "2", "10", "(none)"]


def test_pages_say_when_a_group_goes_on(scientist, sweep, monkeypatch):
    from web import views_tracking

    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    first = client.get(url, {"group": "params.lr"}).content.decode()
    assert groups(first) == [
        ("0.5", "2 runs"),
        ("2", "3 runs, 2 on this page, continues on the next page"),
    ]
    token = html_lib.unescape(re.search(r'href="\?([^"]+)" rel="next"', first).group(1))
    second = client.get(f"{url}?{token}").content.decode()
    assert groups(second) == [
        ("2", "3 runs, 1 on this page, continued from the previous page"),
        ("10", "2 runs"),
        ("(none)", "2 runs, 1 on this page, continues on the next page"),
    ]
    assert "Runs 5–8 of 9" in second
    # the charts of "these runs" are this page's runs, grouped the same way
    charts = client.get(f"{url}charts/?{token}").content.decode()
    assert sorted(set(re.findall(r'data-run-colour="(\w+)"', charts))) == sorted(
        members(second)["2"] + members(second)["10"] + members(second)["(none)"]
    )


@pytest.mark.parametrize(
    ("group", "says"),
    [
        ("params.lrr", "no run in this experiment has the param “lrr”; did you mean params.lr?"),
        ("metrics.val_auc", "group by a param or a tag, written params.<key> or tags.<key>"),
        ("lr", "group by a param or a tag"),
        ("tags.nobody", "no run in this experiment has the tag “nobody”"),
    ],
)
def test_a_wrong_group_key_is_refused_with_a_message(scientist, sweep, group, says):
    exp, _ = sweep
    response = signed_in(scientist).get(f"/experiments/{exp.experiment_id}/", {"group": group})
    page = response.content.decode()
    assert response.status_code == 400
    assert 'id="group-error"' in page and says in html_lib.unescape(page)
    assert 'class="group-row"' not in page and 'id="runs-table"' in page  # shown ungrouped


def test_the_grouping_is_saved_with_the_columns_and_can_be_turned_off(scientist, sweep):
    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    saved = client.post(f"{url}columns", {"col": ["metrics.loss"], "group": "tags.team"})
    assert saved.status_code == 302
    page = client.get(url).content.decode()  # the breadcrumb's link: the saved view
    assert [g for g, _ in groups(page)] == ["a", "b"]
    assert '<option value="tags.team" selected>' in page
    assert not groups(client.get(url, {"group": ""}).content.decode())
    client.post(f"{url}columns", {"reset": "1", "group": "tags.team"})
    assert not groups(client.get(url).content.decode())
    # a saved grouping whose key no run has any longer is dropped quietly
    client.post(f"{url}columns", {"group": "params.gone"})
    response = client.get(url)
    assert response.status_code == 200 and not groups(response.content.decode())


def test_grouped_page_query_count_is_pinned(scientist, sweep, django_assert_num_queries):
    from core import process_cache

    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    params = {"group": "params.lr", "filter": "metrics.loss < 5"}
    client.get(url, params)
    process_cache.clear_all()
    # the rows with their metrics, params and tags: one query on PostgreSQL, four on SQLite
    # (the runs, then one per kind)
    payload_reads = 1 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(16 + payload_reads) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    # whether the experiment holds more than BOUNDED_FROM runs (a count that stops there),
    # the groups' sizes (one aggregate: they also give the total, so no other count), every
    # run of the groups the page covers (the page is cut from them), the latest values of the
    # figured columns for those runs by id: the filter is searched twice, not a third time
    # for the figures
    sql = [q["sql"] for q in captured.captured_queries]
    assert len([q for q in sql if "GROUP BY" in q.upper()]) == 1
    assert len([q for q in sql if q.startswith("SELECT COUNT(*)")]) == 1
    assert len([q for q in sql if "EXISTS" in q.upper()]) == 2
    # The same search again in this process, which now knows it matched few runs: it reads
    # them (run id, group value), counts the groups in Python and reads the page's groups by
    # run id: the filter is searched once, and the page is the same (13: the process's
    # caches of the user, the experiment and its keys are warm now).
    with django_assert_num_queries(13 + payload_reads) as captured:
        again = client.get(url, params)
    sql = [q["sql"] for q in captured.captured_queries]
    assert len([q for q in sql if "EXISTS" in q.upper()]) == 1
    assert not [q for q in sql if "GROUP BY" in q.upper()]
    assert table_of(again.content.decode()) == table_of(response.content.decode())
    # With the columns chosen (known before the search) the same queries and the same figures.
    chosen = {**params, "col": ["metrics.val_auc", "metrics.loss"]}
    client.get(url, chosen)
    process_cache.clear_all()
    with django_assert_num_queries(16 + payload_reads) as captured:
        page = client.get(url, chosen).content.decode()
    sql = [q["sql"] for q in captured.captured_queries]
    assert len([q for q in sql if "EXISTS" in q.upper()]) == 2
    cells = {html_lib.unescape(v): rest for _, v, _, rest in GROUP_ROW.findall(page)}
    assert 'title="mean 0.533333, min 0.51, max 0.56 over the 3 runs' in cells["2"]


def table_of(page: str) -> str:
    """The runs table's body (group headers with their figures, run rows), and the total."""
    body = page[page.index('<tr class="group-row"') : page.rindex("</tbody>")]
    return body + re.search(r"Runs [0-9,]+–[0-9,]+ of [0-9,]+", page).group(0)


def every_page(client, url: str, params: dict) -> list[str]:
    """Every page of the table, following its next links."""
    pages, address = [], f"{url}?{urlencode(params, doseq=True)}"
    while address:
        page = client.get(address).content.decode()
        pages.append(page)
        following = re.search(r'href="\?([^"]+)" rel="next"', page)
        address = f"{url}?{html_lib.unescape(following.group(1))}" if following else ""
    return pages


@pytest.mark.parametrize(
    "params",
    [
        {"group": "params.lr", "filter": "metrics.loss < 5", "col": ["metrics.val_auc"]},
        {"group": "params.lr", "filter": "tags.team = 'a'", "order": "metrics.val_auc DESC"},
        {"group": "tags.team", "filter": "metrics.val_auc > 0.52", "order": "metrics.loss ASC"},
        {"group": "params.lr", "filter": "attributes.status = 'RUNNING'", "q": "r"},
    ],
)
def test_a_search_known_to_match_few_runs_reads_them_once_with_the_same_pages(
    scientist, sweep, monkeypatch, params
):
    """Every page of a grouped, filtered search (a page of 4 runs covers several groups, and
    a group spans pages) is the same whether the groups were counted in SQL (the process does
    not know the search yet, or it matched more than FEW_MATCHES runs) or from the matching
    runs read once (it matched few last time)."""
    from core import process_cache
    from tracking import selectors
    from web import views_tracking

    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def tables() -> list[str]:
        return [table_of(page) for page in every_page(client, url, params)]

    process_cache.clear_all()
    counted = tables()  # the groups counted in SQL: the process did not know the search
    assert len(counted) >= 2 and all("group-row" in page for page in counted)
    assert tables() == counted  # known to match few: read once
    monkeypatch.setattr(selectors, "FEW_MATCHES", 2)  # more than few now: counted in SQL
    assert tables() == counted
    assert tables() == counted


def test_too_many_groups_are_refused_and_large_groups_not_figured(scientist, sweep, monkeypatch):
    from tracking import selectors
    from web import views_tracking

    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    monkeypatch.setattr(selectors, "MAX_GROUPS", 3)  # lr has 0.5, 2, 10 and (none)
    response = client.get(url, {"group": "params.lr"})
    page = html_lib.unescape(response.content.decode())
    assert response.status_code == 400
    assert "Grouping by the param “lr” makes more than 3 groups" in page
    assert page.count("<tr data-run-id=") == 9 and 'class="group-row"' not in page
    monkeypatch.setattr(selectors, "MAX_GROUPS", 1000)
    # the figures cover the page's groups while they hold at most MAX_FIGURED_RUNS runs
    monkeypatch.setattr(views_tracking, "MAX_FIGURED_RUNS", 4)
    page = client.get(url, {"group": "params.lr", "col": ["metrics.val_auc"]}).content.decode()
    cells = {html_lib.unescape(v): rest for _, v, _, rest in GROUP_ROW.findall(page)}
    assert "0.51–0.56" not in cells["2"] and "Not figured" in cells["2"]  # 2 + 3 > 4
    assert "0.52–0.57" in cells["0.5"]  # r2, r7
    assert "Not figured" in cells["(none)"]


def test_long_values_sharing_their_first_200_characters_are_different_groups(scientist):
    exp = tracking.experiment_create(name="long values", owner=scientist)
    stem = "x" * 200
    runs = {
        name: new_run(exp.experiment_id, name, params=[{"key": "prompt", "value": value}])
        for name, value in (("a1", stem + "a"), ("a2", stem + "a"), ("b", stem + "b"), ("s", stem))
    }
    page = (
        signed_in(scientist)
        .get(f"/experiments/{exp.experiment_id}/", {"group": "params.prompt"})
        .content.decode()
    )
    assert [count for _, count in groups(page)] == ["1 run", "2 runs", "1 run"]
    listed = members(page)
    assert listed[stem] == [runs["s"]] and listed[stem + "b"] == [runs["b"]]
    assert set(listed[stem + "a"]) == {runs["a1"], runs["a2"]}


def body_and_range(page: str) -> tuple[str, str, str]:
    """The runs table's body, the range of runs shown and what follows it (the total)."""
    body = page[page.index('<tr class="group-row"') : page.rindex("</tbody>")]
    number = r"[0-9]+(?:,[0-9]{3})*"
    shown = re.search(rf"Runs ({number}–{number})( of {number})?", page)
    return body, shown.group(1), shown.group(2) or ""


@pytest.mark.parametrize(
    "params",
    [
        {"group": "params.lr", "col": ["metrics.val_auc"]},
        {"group": "params.lr", "order": "metrics.val_auc DESC"},
        {"group": "tags.team", "filter": "metrics.val_auc > 0.52", "order": "metrics.loss ASC"},
        {"group": "params.lr", "filter": "tags.team = 'a'"},
    ],
)
def test_a_large_search_counts_its_groups_only_as_far_as_its_page_needs(
    scientist, sweep, monkeypatch, params
):
    """Over more than BOUNDED_FROM runs a grouped page counts its groups one by one, each
    only as far as the page needs: the same runs under the same group headers on every page
    as when every group is counted at once; the total said once every group was counted (the
    last page); a value no run of this experiment has (lr 7 in another experiment) is no
    group; and past MAX_GROUP_PROBES counts the page falls back to the one aggregate."""
    from core import process_cache
    from tracking import selectors
    from web import views_tracking

    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    exp, _ = sweep
    other = tracking.experiment_create(name="elsewhere", owner=scientist)
    new_run(other.experiment_id, "elsewhere", params=[{"key": "lr", "value": "7"}])
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    counted = [body_and_range(page) for page in every_page(client, url, params)]
    assert len(counted) >= 2 and all(total for _, _, total in counted)
    monkeypatch.setattr(selectors, "BOUNDED_FROM", 0)
    process_cache.clear_all()  # the hint that the filter matched few runs
    walked = [body_and_range(page) for page in every_page(client, url, params)]
    assert [(body, shown) for body, shown, _ in walked] == [
        (body, shown) for body, shown, _ in counted
    ]
    assert [total for _, _, total in walked] == ["" for _ in counted[:-1]] + [counted[-1][2]]
    assert all("7" not in [value for value, _ in groups(body)] for body, _, _ in walked)
    monkeypatch.setattr(selectors, "MAX_GROUP_PROBES", 1)
    process_cache.clear_all()
    assert [body_and_range(page) for page in every_page(client, url, params)] == counted


def test_a_large_search_reads_no_pass_over_every_matching_run(
    scientist, sweep, monkeypatch, django_assert_num_queries
):
    """The bounded page's reads of the search all stop early (each has a LIMIT; no aggregate
    over the search), and a group that goes on past what was counted says "more than"."""
    from tracking import selectors
    from web import views_tracking

    monkeypatch.setattr(selectors, "BOUNDED_FROM", 0)
    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    monkeypatch.setattr(views_tracking, "MAX_FIGURED_RUNS", 2)
    exp, runs = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    params = {"group": "params.lr", "col": ["metrics.val_auc"]}
    client.get(url, params)
    payload_reads = 1 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(17 + payload_reads) as captured:
        page = client.get(url, params).content.decode()
    sql = [q["sql"] for q in captured.captured_queries]
    assert not [q for q in sql if "GROUP BY" in q.upper()]
    searched = [q for q in sql if " grouping ON " in q]
    assert len(searched) >= 2 and all("LIMIT" in q.upper() for q in searched)
    # 0.5 has 2 runs, counted; 2 has 3, more than the 2 counted: its size is not said
    assert groups(page) == [
        ("0.5", "2 runs"),
        ("2", "more than 2 runs, 2 on this page, continues on the next page"),
    ]
    assert set(members(page)["2"]) < {runs["r1"], runs["r3"], runs["r6"]}
    text = html_lib.unescape(page)
    assert "Runs 1–4, grouped by params.lr" in text
    assert "a group is counted up to 2 runs and the total is not counted" in text
    cells = {html_lib.unescape(v): rest for _, v, _, rest in GROUP_ROW.findall(page)}
    assert "Not figured" in cells["2"] and "0.52–0.57" in cells["0.5"]


def test_long_values_are_grouped_whole_in_a_large_search_too(scientist, monkeypatch):
    """Values longer than the indexed prefix send a large search to the one aggregate, which
    groups them whole."""
    from tracking import selectors

    monkeypatch.setattr(selectors, "BOUNDED_FROM", 0)
    test_long_values_sharing_their_first_200_characters_are_different_groups(scientist)


def test_a_large_search_reads_each_group_of_its_page_once(
    scientist, sweep, monkeypatch, django_assert_num_queries
):
    """The walk reads the page's groups (their run ids) once each; the page and the figures
    are then read by those ids, without searching the filter again."""
    from tracking import selectors
    from web import views_tracking

    monkeypatch.setattr(selectors, "BOUNDED_FROM", 0)
    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    params = {"group": "params.lr", "filter": "metrics.loss < 5", "col": ["metrics.val_auc"]}
    client.get(url, params)
    payload_reads = 1 if connection.vendor == "postgresql" else 4
    with django_assert_num_queries(16 + payload_reads) as captured:
        page = client.get(url, params).content.decode()
    sql = [q["sql"] for q in captured.captured_queries]
    assert len([q for q in sql if "EXISTS" in q.upper()]) == 2  # 0.5, then 2
    assert groups(page) == [
        ("0.5", "2 runs"),
        ("2", "3 runs, 2 on this page, continues on the next page"),
    ]
    cells = {html_lib.unescape(v): rest for _, v, _, rest in GROUP_ROW.findall(page)}
    assert 'title="mean 0.533333, min 0.51, max 0.56 over the 3 runs' in cells["2"]


def test_a_deep_page_of_a_large_search_counts_every_group_at_once(scientist, sweep, monkeypatch):
    """Past WALK_BEFORE runs into the search, counting the runs before the page group by
    group would cost more than the one aggregate: the page says its total again."""
    from tracking import selectors
    from web import views_tracking

    monkeypatch.setattr(selectors, "BOUNDED_FROM", 0)
    monkeypatch.setattr(selectors, "WALK_BEFORE", 4)
    monkeypatch.setattr(views_tracking, "PAGE_SIZE", 4)
    exp, _ = sweep
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"
    first, second, third = every_page(client, url, {"group": "params.lr"})
    assert body_and_range(first)[1:] == ("1–4", "")  # walked: the total not counted
    assert body_and_range(second)[1:] == ("5–8", " of 9")  # offset 4: the aggregate
    assert body_and_range(third)[1:] == ("9–9", " of 9")

"""Experiment, run and compare pages: what a user may not read stays hidden, query counts do
not grow with rows, column choice, sorting, chart sampling, paging and inline errors."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services as accounts
from core import process_cache
from tracking import services as tracking
from tracking.permissions import experiment_grants_replace

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def new_run(experiment_id, name: str, tags: list | None = None, **log) -> str:
    run = tracking.run_create(
        experiment_id=str(experiment_id),
        user_id="alice",
        run_name=name,
        start_time=TS,
        tags=tags or [],
    )
    if log:
        tracking.run_log_batch(
            run_id=run.run_id,
            metrics=log.get("metrics", []),
            params=log.get("params", []),
            tags=log.get("log_tags", []),
        )
    return run.run_id


def parent_tag(run_id: str) -> list[dict]:
    return [{"key": "mlflow.parentRunId", "value": run_id}]


def test_run_page_hides_parent_and_children_the_user_cannot_read(scientist):
    secret = tracking.experiment_create(name="private", owner=scientist)
    experiment_grants_replace(
        experiment_id=secret.experiment_id,
        grants=[{"user": "alice", "level": "MANAGE"}, {"group": "data-scientist", "level": "NONE"}],
    )
    bob = accounts.user_create(username="bob", role="data-scientist", password="bob-pw-1")
    shared = tracking.experiment_create(name="shared", owner=bob)
    visible = new_run(shared.experiment_id, "visible-run")
    hidden_parent = new_run(secret.experiment_id, "hidden-parent")
    pointing_up = new_run(shared.experiment_id, "child-of-hidden", tags=parent_tag(hidden_parent))
    new_run(secret.experiment_id, "hidden-child", tags=parent_tag(visible))
    deleted_child = new_run(shared.experiment_id, "deleted-child", tags=parent_tag(visible))
    tracking.run_delete(run_id=deleted_child)
    live_child = new_run(shared.experiment_id, "live-child", tags=parent_tag(visible))

    client = signed_in(bob)
    page = client.get(f"/runs/{visible}/").content.decode()
    assert "live-child" in page and f"/runs/{live_child}/" in page
    assert "hidden-child" not in page and "deleted-child" not in page
    up = client.get(f"/runs/{pointing_up}/").content.decode()
    assert "hidden-parent" not in up and "Parent run" not in up
    # alice may read both: she sees the hidden ones (but still not the deleted one)
    mine = signed_in(scientist).get(f"/runs/{visible}/").content.decode()
    assert "hidden-child" in mine and "deleted-child" not in mine
    assert "hidden-parent" in signed_in(scientist).get(f"/runs/{pointing_up}/").content.decode()


def queries(client: Client, url: str, params: dict | None = None) -> tuple[int, str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content[:500]
    return len(captured), response.content.decode()


def logged(i: int) -> dict:
    return {
        "metrics": [
            {"key": k, "value": i + s, "timestamp": TS + s, "step": s}
            for k in ("loss", "acc")
            for s in range(3)
        ],
        "params": [{"key": "lr", "value": str(i)}, {"key": "depth", "value": "6"}],
        "log_tags": [{"key": "team", "value": f"t{i}"}],
    }


def dataset(i: int) -> dict:
    return {
        "dataset": {
            "name": f"ds{i}",
            "digest": f"d{i}",
            "source_type": "local",
            "source": f"/data/{i}.csv",
        },
        "tags": [{"key": "mlflow.data.context", "value": "train"}],
    }


def test_tracking_pages_cost_the_same_for_many_rows(scientist):
    exp = tracking.experiment_create(name="counted", owner=scientist)
    client = signed_in(scientist)
    parent = new_run(exp.experiment_id, "parent", **logged(0))
    table = (
        f"/experiments/{exp.experiment_id}/",
        {"col": ["metrics.loss", "metrics.acc", "params.lr", "tags.team"]},
    )
    made: list[str] = []

    def grow(count: int) -> None:
        for _ in range(count):
            i = len(made) + 1
            run_id = new_run(exp.experiment_id, f"r{i}", tags=parent_tag(parent), **logged(i))
            made.append(run_id)
            tracking.run_log_inputs(run_id=parent, datasets=[dataset(i)], models=[])
            tracking.run_log_inputs(run_id=run_id, datasets=[dataset(i)], models=[])
            services_token(scientist, f"tok{i}")

    def measure() -> dict[str, int]:
        pages = [
            table,
            (f"/runs/{parent}/", {}),
            ("/compare/", {"runs": [parent, *made[-4:]]}),
            ("/tokens/", {}),
        ]
        for path, params in pages:  # the charts kept (web.charts), as on any later load
            client.get(path, params)
        # Both measurements from cold per-process caches (identity, roles, grants), so that
        # they compare the pages' own queries, not what an earlier request left cached.
        process_cache.clear_all()
        found = [queries(client, path, params)[0] for path, params in pages]
        return dict(zip(["runs table", "run page", "compare", "tokens"], found, strict=True))

    grow(4)
    few = measure()
    grow(8)
    many = measure()
    _, html = queries(client, *table)
    assert html.count('data-run-id="') == 13 and ">t12<" in html
    run_page = queries(client, f"/runs/{parent}/")[1]
    # the parent's twelve datasets by digest (a bare "<code>d" also matched a run id that
    # happened to start with d)
    assert all(f"<code>d{i}</code>" in run_page for i in range(1, 13))
    assert run_page.count('href="/runs/') >= 12
    assert many == few


def services_token(user, name: str) -> None:
    accounts.token_create(user=user, name=name)


def test_column_picker_sees_keys_of_later_runs_and_not_of_deleted_ones(scientist):
    from tracking.models import LatestMetric, Run

    exp = tracking.experiment_create(name="wide", owner=scientist)
    Run.objects.bulk_create(
        Run(
            run_id=f"{i:032x}",
            experiment_id=exp.experiment_id,
            name=f"bulk-{i}",
            user_id="alice",
            start_time=TS + i,
            artifact_uri="mlflow-artifacts:/x",
            status="FINISHED",
        )
        for i in range(2100)
    )
    LatestMetric.objects.bulk_create(
        LatestMetric(run_id=f"{i:032x}", key="loss", value=1.0, timestamp=1, step=0)
        for i in range(2100)
    )
    metric = {"metrics": [{"key": "late_metric", "value": 1.0, "timestamp": TS, "step": 0}]}
    new_run(exp.experiment_id, "late", **metric)
    gone = new_run(
        exp.experiment_id,
        "gone",
        metrics=[{"key": "deleted_metric", "value": 1.0, "timestamp": TS, "step": 0}],
        params=[{"key": "deleted_param", "value": "x"}],
    )
    tracking.run_delete(run_id=gone)
    html = signed_in(scientist).get(f"/experiments/{exp.experiment_id}/").content.decode()
    assert 'value="metrics.late_metric"' in html and 'value="metrics.loss"' in html
    assert "deleted_metric" not in html and "deleted_param" not in html


def test_column_picker_offers_the_experiments_own_keys_as_runs_are_logged_deleted_and_restored(
    scientist,
):
    """The picker's keys come from the experiment's key list, which the database keeps as the
    MLflow API writes (each write path: log-batch, log-metric, log-parameter, set-tag, run
    creation with tags), deletes and restores runs: another experiment's keys are never
    offered, a deleted run's keys go when no other active run has them and come back with it."""
    import re

    from tests.conftest import MlflowApiClient

    api = MlflowApiClient(
        Client(HTTP_AUTHORIZATION=f"Bearer {accounts.token_create(user=scientist, name='k')[1]}")
    )
    mine, theirs = api.experiment("mine"), api.experiment("theirs")

    def offered(experiment_id: str) -> set[str]:
        page = signed_in(scientist).get(f"/experiments/{experiment_id}/").content.decode()
        found = re.findall(r'name="col" value="((?:metrics|params|tags)\.[^"]+)"', page)
        return {column for column in found if not column.startswith("tags.mlflow.")}

    def log(run_id: str, **batch) -> None:
        response = api.post("runs/log-batch", {"run_id": run_id, **batch})
        assert response.status_code == 200, response.content

    other = api.run(theirs, tags=[{"key": "their_tag", "value": "x"}])["info"]["run_id"]
    for step in (1, 2):  # the second is decided on the cached experiment (PostgreSQL)
        log(
            other,
            metrics=[{"key": "their_metric", "value": 1.0, "timestamp": TS, "step": step}],
            params=[{"key": f"their_param_{step}", "value": "x"}],
        )
    first = api.run(mine, tags=[{"key": "created_with", "value": "x"}])["info"]["run_id"]
    second = api.run(mine)["info"]["run_id"]
    log(first, metrics=[{"key": "shared", "value": 1.0, "timestamp": TS, "step": 0}])
    log(
        second,
        metrics=[{"key": "shared", "value": 2.0, "timestamp": TS, "step": 0}],
        params=[{"key": "only_second", "value": "x"}],
        tags=[{"key": "second_tag", "value": "x"}],
    )
    for route, body in (
        ("runs/log-metric", {"key": "one_metric", "value": 1.0, "timestamp": TS, "step": 0}),
        ("runs/log-parameter", {"key": "one_param", "value": "x"}),
        ("runs/set-tag", {"key": "one_tag", "value": "x"}),
    ):
        for _ in (1, 2):
            response = api.post(route, {"run_id": first, **body})
            assert response.status_code == 200, response.content
    own = {
        "metrics.shared",
        "metrics.one_metric",
        "params.only_second",
        "params.one_param",
        "tags.created_with",
        "tags.second_tag",
        "tags.one_tag",
    }
    assert offered(mine) == own
    assert offered(theirs) == {
        "metrics.their_metric",
        "params.their_param_1",
        "params.their_param_2",
        "tags.their_tag",
    }
    assert api.post("runs/delete", {"run_id": second}).status_code == 200
    assert offered(mine) == own - {"params.only_second", "tags.second_tag"}
    assert api.post("runs/restore", {"run_id": second}).status_code == 200
    assert offered(mine) == own
    assert api.post("runs/delete", {"run_id": first}).status_code == 200
    assert offered(mine) == {"metrics.shared", "params.only_second", "tags.second_tag"}


def test_columns_with_spaces_and_punctuation_sort(scientist):
    import html as html_lib
    import re

    exp = tracking.experiment_create(name="odd keys", owner=scientist)
    for name, value in (("low", 0.1), ("high", 0.9), ("mid", 0.5)):
        new_run(
            exp.experiment_id,
            name,
            metrics=[
                {"key": "my metric", "value": value, "timestamp": TS, "step": 0},
                {"key": "train: loss / 2", "value": value, "timestamp": TS, "step": 0},
            ],
        )
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def follow(page: str, column: str) -> str:
        link = re.search(rf'<a href="([^"]+)" data-column="{re.escape(column)}"', page).group(1)
        response = client.get(url + html_lib.unescape(link))
        assert response.status_code == 200
        return response.content.decode()

    def names(page: str) -> list[str]:
        return re.findall(r'<a href="/runs/[0-9a-f]+/" title="\w+">(\w+)</a>', page)

    for column in ("metrics.my metric", "metrics.train: loss / 2"):
        first = client.get(url, {"col": [column]}).content.decode()
        down = follow(first, html_lib.escape(column))
        assert 'class="error-box"' not in down and names(down) == ["high", "mid", "low"]
        assert re.search(
            rf'{re.escape(html_lib.escape(column.partition(".")[2]))}</a> <span aria-hidden="true">↓',
            down,
        )
        up = follow(down, html_lib.escape(column))
        assert names(up) == ["low", "mid", "high"] and '</a> <span aria-hidden="true">↑' in up


def log_points(api, run_id: str, points: list[dict]) -> None:
    """Through the MLflow route the client uses, in batches of its 1,000-metric limit."""
    for start in range(0, len(points), 1000):
        response = api.post(
            "runs/log-batch", {"run_id": run_id, "metrics": points[start : start + 1000]}
        )
        assert response.status_code == 200, response.content


def chart_of(client, url: str) -> dict:
    import json
    import re

    html = client.get(url).content.decode()
    found = re.search(r'id="chart-data" type="application/json">(.*?)</script>', html)
    return json.loads(found.group(1)) if found else {}


def test_charts_sample_a_long_history_in_the_database(scientist, api):
    from web.charts import MAX_CHART_POINTS

    exp = tracking.experiment_create(name="long", owner=scientist)
    long_run = new_run(exp.experiment_id, "long")
    short_run = new_run(exp.experiment_id, "short")
    steps = 3 * MAX_CHART_POINTS + 7
    log_points(
        api,
        long_run,
        [
            {"key": "loss", "value": s / 10, "timestamp": TS + s, "step": s * 2 + 1}
            for s in range(steps)
        ],
    )
    log_points(
        api,
        short_run,
        [{"key": "loss", "value": s, "timestamp": TS + s, "step": s} for s in range(5)],
    )
    client = signed_in(scientist)
    for data in (
        chart_of(client, f"/runs/{long_run}/"),
        chart_of(client, f"/compare/?runs={long_run}&runs={short_run}"),
    ):
        points = [p[:2] for p in data["loss"][long_run]]  # [step, value, timestamp]
        assert len(points) <= MAX_CHART_POINTS + 1
        assert points[0] == [1, 0.0] and points[-1] == [(steps - 1) * 2 + 1, (steps - 1) / 10]
        assert [p[0] for p in points] == sorted(p[0] for p in points)
        gaps = {b[0] - a[0] for a, b in zip(points[:-2], points[1:-1], strict=True)}
        assert gaps == {8}  # every 4th point of a series logged every 2 steps
    assert chart_of(client, f"/compare/?runs={long_run}&runs={short_run}")["loss"][short_run] == [
        [s, float(s), TS + s] for s in range(5)
    ]
    # a step logged late (out of order) is the last point logged, so it is drawn
    log_points(api, long_run, [{"key": "loss", "value": -1.0, "timestamp": TS * 2, "step": -5}])
    points = chart_of(client, f"/runs/{long_run}/")["loss"][long_run]
    assert points[0] == [-5, -1.0, TS * 2] and len(points) <= MAX_CHART_POINTS + 1
    # The client logs step 0 when none is given: a history all at one step is sampled too.
    flat = new_run(exp.experiment_id, "flat")
    log_points(
        api,
        flat,
        [
            {"key": "acc", "value": s / 7, "timestamp": TS + s, "step": 0}
            for s in range(3 * MAX_CHART_POINTS)
        ],
    )
    flat_points = chart_of(client, f"/runs/{flat}/")["acc"][flat]
    assert len(flat_points) <= MAX_CHART_POINTS + 1
    assert flat_points[-1][:2] == [0, (3 * MAX_CHART_POINTS - 1) / 7]  # the last point logged


@pytest.mark.django_db(transaction=True)  # pages read charts in a snapshot of their own
def test_a_kept_chart_is_reused_until_a_point_is_logged_and_never_shown_stale(scientist, api):
    """The run and compare pages read a long history once; after that they read the kept
    chart, until any point is logged for the key (late, re-sent, NaN, through log-metric or
    log-batch): the next page shows it. Points logged after the chart's last are added to it
    (reading only them), and the chart is then the one a fresh sampling gives."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from web.models import MetricChart

    exp = tracking.experiment_create(name="kept", owner=scientist)
    run_id = new_run(exp.experiment_id, "kept")
    other = new_run(exp.experiment_id, "other")
    log_points(
        api,
        run_id,
        [{"key": "loss", "value": s, "timestamp": TS + s, "step": s} for s in range(3000)],
    )
    log_points(api, other, [{"key": "loss", "value": 1.0, "timestamp": TS, "step": 0}])
    client = signed_in(scientist)

    def load(url: str) -> tuple[dict, str]:
        """The chart data, and how the history was read: "kept", "extended" (only the points
        after the kept chart) or "sampled" (the whole history)."""
        with CaptureQueriesContext(connection) as queries:
            data = chart_of(client, url)
        history = [q["sql"] for q in queries if 'FROM "tracking_metric"' in q["sql"]]
        if not history:
            return data, "kept"
        return data, "sampled" if any("ROW_NUMBER" in q for q in history) else "extended"

    def fresh(url: str) -> dict:
        MetricChart.objects.filter(run_id=run_id).delete()
        data, how = load(url)
        assert how == "sampled"
        return data

    page, compare = f"/runs/{run_id}/", f"/compare/?runs={run_id}&runs={other}"
    first, how = load(page)
    assert how == "sampled" and first["loss"][run_id][-1] == [2999, 2999.0, TS + 2999]
    again, how = load(page)
    assert how == "kept" and again == first  # the kept chart, same points
    load(compare)  # keeps the other run's chart
    compared, how = load(compare)
    assert how == "kept" and compared["loss"][run_id] == first["loss"][run_id]

    def logged_then_shown(route: str, body: dict, read: str, expect) -> None:
        response = api.post(route, {"run_id": run_id, **body})
        assert response.status_code == 200, response.content
        data, how = load(page)
        assert how == read, (route, body, how)
        assert expect(data["loss"][run_id]), (route, body)
        assert data == fresh(page), (route, body)  # as if sampled afresh
        data, how = load(compare)  # the same chart size: the one the run page kept
        assert how == "kept" and expect(data["loss"][run_id]), (route, body)

    step = 3000
    for count in (1, 2, 7, 40):  # after the chart's last point: added to it
        batch = [
            {"key": "loss", "value": -s, "timestamp": TS + s, "step": s}
            for s in range(step, step + count)
        ]
        step += count
        logged_then_shown(
            "runs/log-batch",
            {"metrics": batch},
            "extended",
            lambda points, last=step - 1: points[-1] == [last, float(-last), TS + last],
        )
    logged_then_shown(
        "runs/log-metric",
        {"key": "loss", "value": -7.5, "timestamp": TS + 99_999, "step": 99_999},
        "extended",
        lambda points: points[-1] == [99_999, -7.5, TS + 99_999],
    )
    logged_then_shown(  # logged late: an early step with an early timestamp
        "runs/log-batch",
        {"metrics": [{"key": "loss", "value": 42.0, "timestamp": TS - 1, "step": -1}]},
        "sampled",
        lambda points: points[0] == [-1, 42.0, TS - 1],
    )
    logged_then_shown(  # re-sent: the same point again
        "runs/log-metric",
        {"key": "loss", "value": -7.5, "timestamp": TS + 99_999, "step": 99_999},
        "sampled",
        lambda points: points[-1] == [99_999, -7.5, TS + 99_999],
    )
    logged_then_shown(  # a NaN is not drawn, but the chart is sampled again
        "runs/log-metric",
        {"key": "loss", "value": "NaN", "timestamp": TS + 100_000, "step": 100_000},
        "sampled",
        lambda points: points[-1] == [99_999, -7.5, TS + 99_999],
    )
    logged_then_shown(  # after a NaN at the end: sampled again, it may predate the chart
        "runs/log-metric",
        {"key": "loss", "value": 3.0, "timestamp": TS + 100_001, "step": 100_001},
        "sampled",
        lambda points: points[-1] == [100_001, 3.0, TS + 100_001],
    )
    # 1,000 points more make every 3rd point the chart's (the stride changes): sampled again
    batch = [
        {"key": "loss", "value": s, "timestamp": TS + 200_000 + s, "step": 200_000 + s}
        for s in range(1000)
    ]
    api.post("runs/log-batch", {"run_id": run_id, "metrics": batch})
    data, how = load(page)
    assert how == "sampled" and data == fresh(page)
    # another key of the run does not make this one's chart read again
    api.post("runs/log-metric", {"run_id": run_id, "key": "acc", "value": 1, "timestamp": TS})
    data, _ = load(page)
    assert data["acc"][run_id] == [[0, 1.0, TS]]
    assert load(page)[1] == "kept"


BAD_PAGING = [
    {"page": "garbage"},
    {"page": "x" * 5000},
    {"page": "eyJvIjo1MH0:1abc:def"},
    {"order": "metrics."},
    {"order": "metrics.loss SIDEWAYS"},
    {"order": "metrics.loss ASC DESC"},
    {"order": "nonsense.loss"},
    {"order": "`unclosed"},
    {"order": "o" * 2000},
    {"order": "metrics.a\x00b DESC"},
    {"filter": "metrics.a\x00b > 1"},
    {"filter": "params.p = 'a\x00'"},
    {"col": "metrics.a\x00b", "order": "metrics.loss DESC"},
]


@pytest.mark.parametrize("params", BAD_PAGING, ids=lambda p: repr(p)[:40])
def test_bad_paging_and_ordering_answer_inline(scientist, params):
    exp = tracking.experiment_create(name="bad input", owner=scientist)
    new_run(exp.experiment_id, "only", **logged(1))
    response = signed_in(scientist).get(f"/experiments/{exp.experiment_id}/", params)
    html = response.content.decode()
    if any("\x00" in v for v in params.values()):  # refused before the view: PostgreSQL
        assert response.status_code == 400 and "NUL characters" in html  # cannot store NUL
    else:
        assert response.status_code == 200 and 'class="error-box" role="alert"' in html


def test_a_dataset_source_nested_too_deep_to_parse_is_shown_as_text(scientist, api):
    # The source is the client's text (up to 64 KiB); json.loads raises RecursionError on
    # it, which the run page's parse did not catch.
    exp = tracking.experiment_create(name="deep source", owner=scientist)
    run_id = new_run(exp.experiment_id, "deep")
    deep = "[" * 5000 + "]" * 5000
    logged = api.post(
        "runs/log-inputs",
        {
            "run_id": run_id,
            "datasets": [
                {"dataset": {"name": "deep", "digest": "d", "source_type": "x", "source": deep}}
            ],
        },
    )
    assert logged.status_code == 200, logged.content
    response = signed_in(scientist).get(f"/runs/{run_id}/")
    assert response.status_code == 200 and "deep" in response.content.decode()


@pytest.mark.parametrize("children", ["²", "٣", "-1", "1e3", "9" * 40, "", "x"])
def test_a_run_pages_child_pager_takes_any_spelling_as_the_first_page(scientist, children):
    exp = tracking.experiment_create(name="child pager", owner=scientist)
    parent = new_run(exp.experiment_id, "the-parent")
    new_run(exp.experiment_id, "the-child", tags=parent_tag(parent))
    response = signed_in(scientist).get(f"/runs/{parent}/", {"children": children})
    assert response.status_code == 200 and "the-child" in response.content.decode()


@pytest.mark.parametrize("path", ["/experiments/", "/models/", "/audit/", "/lineage/"])
def test_nul_in_any_page_query_is_a_400_not_a_500(path):
    admin = accounts.user_create(username="boss", role="admin", password="boss-pw-1")
    response = signed_in(admin).get(path, {"q": "a\x00b", "node": "run:\x00", "actor": "\x00"})
    assert response.status_code == 400 and "NUL characters" in response.content.decode()


def test_runs_table_pages_forward_and_back(scientist):
    import html as html_lib
    import re

    from tracking.models import Run

    exp = tracking.experiment_create(name="paged", owner=scientist)
    Run.objects.bulk_create(
        Run(
            run_id=f"{i:032x}",
            experiment_id=exp.experiment_id,
            name=f"run{i:03d}",
            user_id="alice",
            start_time=TS + i,
            artifact_uri="mlflow-artifacts:/x",
            status="FINISHED",
        )
        for i in range(120)
    )
    client = signed_in(scientist)
    url = f"/experiments/{exp.experiment_id}/"

    def names(html: str) -> list[str]:
        return re.findall(r'">(run\d{3})</a></td>', html)

    def link(html: str, rel: str) -> str | None:
        found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
        return html_lib.unescape(found.group(1)) if found else None

    first = client.get(url).content.decode()
    assert names(first)[0] == "run119" and link(first, "prev") is None
    second = client.get(url + link(first, "next")).content.decode()
    third = client.get(url + link(second, "next")).content.decode()
    assert names(third) == [f"run{i:03d}" for i in range(19, -1, -1)]
    assert link(third, "next") is None
    back = client.get(url + link(third, "prev")).content.decode()
    assert names(back) == names(second) and names(back)[0] == "run069"
    again = client.get(url + link(back, "prev")).content.decode()
    assert names(again) == names(first) and link(again, "prev") is None


def test_experiments_list_says_when_it_is_cut(scientist, monkeypatch):
    from web import views_tracking

    monkeypatch.setattr(views_tracking, "MAX_EXPERIMENTS", 3)
    client = signed_in(scientist)
    for i in range(2):
        tracking.experiment_create(name=f"e{i}", owner=scientist)
    assert 'id="experiments-cut"' not in client.get("/experiments/").content.decode()
    tracking.experiment_create(name="e2", owner=scientist)  # with Default: 4 > 3
    html = client.get("/experiments/").content.decode()
    assert 'id="experiments-cut"' in html and "newest 3" in html
    assert html.count('<tr><td><a href="/experiments/') == 3


def test_compare_dedupes_runs_and_says_when_it_leaves_some_out(scientist, monkeypatch):
    from web import views_tracking

    monkeypatch.setattr(views_tracking, "MAX_COMPARE", 10)
    exp = tracking.experiment_create(name="many to compare", owner=scientist)
    runs = [new_run(exp.experiment_id, f"c{i}", **logged(i)) for i in range(12)]
    client = signed_in(scientist)
    twice = client.get("/compare/", {"runs": [runs[0], runs[0], runs[1]]})
    assert twice.status_code == 200 and "Compare 2 runs" in twice.content.decode()
    same = client.get("/compare/", {"runs": [runs[0], runs[0]]})
    assert same.status_code == 400 and "two different runs" in same.content.decode()
    assert "do not exist" not in same.content.decode()
    full = client.get("/compare/", {"runs": runs[:10]}).content.decode()
    assert 'id="compare-cut"' not in full
    cut = client.get("/compare/", {"runs": runs}).content.decode()
    assert "Compare 10 runs" in cut and 'id="compare-cut"' in cut and "2 more were" in cut


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_focus_ring_has_3_to_1_contrast_on_page_and_header():
    import re
    from pathlib import Path

    css = (Path(__file__).resolve().parents[2] / "web/static/web/custody.css").read_text()
    focus = re.search(r"--focus: (#[0-9a-fA-F]{6})", css).group(1)
    page = re.search(r"--bg: (#[0-9a-fA-F]{6})", css).group(1)
    header = re.search(r"header\.top \{[^}]*background: (#[0-9a-fA-F]{6})", css).group(1)
    for background in ("#ffffff", page, header):
        assert _contrast(focus, background) >= 3, (focus, background)


def test_accessibility_markup(scientist):
    import re

    exp = tracking.experiment_create(name="a11y", owner=scientist)
    run_id = new_run(exp.experiment_id, "a11y-run", **logged(1))
    other = new_run(exp.experiment_id, "a11y-other", **logged(2))
    client = signed_in(scientist)
    table = client.get(
        f"/experiments/{exp.experiment_id}/",
        {"col": ["metrics.loss"], "order": "metrics.loss ASC"},
    ).content.decode()
    assert re.search(
        r'<th scope="col" class="num" aria-sort="ascending" title="metrics.loss"><a [^>]*>'
        r'<span class="kind">metric</span> loss',
        table,
    )
    assert table.count("aria-sort=") == 1
    default = client.get(f"/experiments/{exp.experiment_id}/").content.decode()
    assert re.search(r'aria-sort="descending"><a [^>]*>Started</a>', default)
    for path in (f"/experiments/{exp.experiment_id}/", "/experiments/", f"/runs/{run_id}/"):
        html = client.get(path).content.decode()
        assert re.search(r'href="/experiments/" aria-current="page">Experiments', html), path
    tokens = client.get("/tokens/").content.decode()
    assert re.search(r'href="/tokens/" aria-current="page">Tokens', tokens)
    run_page = client.get(f"/runs/{run_id}/").content.decode()
    assert '<th scope="col"></th>' not in run_page
    summary = re.search(
        r'<div class="sr-only"><table id="chart-summary">.*?</table>', run_page, re.S
    )
    assert summary and '<th scope="row">loss</th><td>a11y-run</td><td>3</td>' in summary.group(0)
    assert "<td>0: 1</td><td>2: 3</td><td>1</td><td>3</td>" in summary.group(0)
    compare = client.get("/compare/", {"runs": [run_id, other]}).content.decode()
    assert compare.count('<th scope="row">acc</th><td>a11y-') == 2

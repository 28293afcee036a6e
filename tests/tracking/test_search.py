"""Search through the HTTP API: every accepted filter of protocol §5.7 selects the right runs,
every rejected one of §5.8 is a 400 naming the problem, and attack-shaped input is refused."""

from __future__ import annotations

import pytest

from tracking import services
from tracking.models import RunInput

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000


@pytest.fixture
def runs(api):
    """Three runs that differ in every searchable field; returns (experiment id, {name: id})."""
    exp_id = api.experiment("search-exp")
    spec = {
        "r": dict(m=0.5, p="1", b="twice", t="v", status="FINISHED", user="root", start=TS + 1),
        "s": dict(m=0.05, p="2", b="once", t="w", status="RUNNING", user="bob", start=TS + 2),
        "u": dict(m=2.0, p="10", b="TWO", t="v", status="FAILED", user="root", start=TS + 3),
    }
    ids = {}
    for name, f in spec.items():
        run = services.run_create(
            experiment_id=exp_id,
            user_id=f["user"],
            run_name=name,
            start_time=f["start"],
            tags=[{"key": "t", "value": f["t"]}],
        )
        services.run_log_batch(
            run_id=run.run_id,
            metrics=[{"key": "m", "value": f["m"], "timestamp": TS}],
            params=[{"key": "p", "value": f["p"]}, {"key": "b", "value": f["b"]}],
        )
        if f["status"] != "RUNNING":
            services.run_update(
                run_id=run.run_id, status=f["status"], end_time=TS + 100, run_name=None
            )
        ids[name] = run.run_id
    services.run_log_inputs(
        run_id=ids["r"],
        datasets=[
            {
                "dataset": {"name": "train_ds", "digest": "abc"},
                "tags": [{"key": "mlflow.data.context", "value": "training"}],
            }
        ],
        models=[],
    )
    assert RunInput.objects.count() == 1
    return exp_id, ids


def names(api, exp_id, filter_string, order_by=None):
    body = {"experiment_ids": [exp_id], "filter": filter_string}
    if order_by:
        body["order_by"] = order_by
    response = api.post("runs/search", body)
    assert response.status_code == 200, (filter_string, response.content)
    return sorted(run["info"]["run_name"] for run in response.json().get("runs", []))


ACCEPTED = [
    ("metrics.m > 0.1", ["r", "u"]),
    ("metrics.m >= 0.5 AND params.p = '1'", ["r"]),
    ("metric.m < 1", ["r", "s"]),
    ("metrics.`m` != 0.5", ["s", "u"]),
    ("metrics.m > 1e-3", ["r", "s", "u"]),
    ("metrics.m > -1", ["r", "s", "u"]),
    ('params.p = "1"', ["r"]),
    ("param.p != '2'", ["r", "u"]),
    ("parameters.p LIKE '1%'", ["r", "u"]),
    ("params.b ILIKE 'TW%'", ["r", "u"]),
    ("params.b LIKE 'TW%'", ["u"]),
    ("params.missing IS NULL", ["r", "s", "u"]),
    ("params.p is not null", ["r", "s", "u"]),
    ("tags.t = 'v'", ["r", "u"]),
    ("tags.`mlflow.runName` = 'r'", ["r"]),
    ("tags.\"mlflow.runName\" = 'r'", ["r"]),
    ("tags.mlflow.runName = 'r'", ["r"]),
    ("attributes.status = 'FINISHED'", ["r"]),
    ("attr.status != 'RUNNING'", ["r", "u"]),
    ("status = 'FINISHED'", ["r"]),
    ("run_name LIKE 'r%'", ["r"]),
    ("`Run name` = 'r'", ["r"]),
    (f"attributes.start_time > {TS + 1}", ["s", "u"]),
    (f"created > {TS + 2}", ["u"]),
    ("attributes.end_time < 9999999999999", ["r", "u"]),
    ("attributes.user_id = 'root'", ["r", "u"]),
    ("attributes.artifact_uri LIKE 'mlflow-artifacts:%'", ["r", "s", "u"]),
    ("datasets.name = 'train_ds' AND datasets.context = 'training'", ["r"]),
    ("dataset.digest IN ('abc', 'def')", ["r"]),
    ("run_name = 'r' AND status = 'FINISHED' AND user_id = 'root'", ["r"]),
    ("metrics.m = 0.5 and params.p = '1'", ["r"]),
    ("params.p = 'y'' OR ''1''=''1'", []),
    ("tags.`mlflow.user` = 'a'", []),
]


@pytest.mark.parametrize(("filter_string", "expected"), ACCEPTED)
def test_accepted_filters_select_the_right_runs(api, runs, filter_string, expected):
    exp_id, _ = runs
    assert names(api, exp_id, filter_string) == expected


def test_run_id_lists(api, runs):
    exp_id, ids = runs
    assert names(api, exp_id, f"attributes.run_id IN ('{ids['r']}', '{ids['s']}')") == ["r", "s"]
    assert names(api, exp_id, f"attribute.run_id NOT IN ('{ids['r']}')") == ["s", "u"]


REJECTED = [
    ("metrics.m > 0.1 OR params.p = '1'", "Invalid clause"),
    ("NOT params.p = '1'", "Invalid clause"),
    ("params.p = 'a' AND (params.q = 'b')", "Invalid clause"),
    ("metrics.m BETWEEN 0 AND 1", "BETWEEN"),
    ("metrics.m > 0.1;", "Invalid clause"),
    ("metrics.m = '0.5'", "Expected numeric value type for metric"),
    ("params.p = 1", "Expected a quoted string value for parameter"),
    ("params.p > '1'", "Invalid comparator '>'"),
    ("params.p == '1'", "Invalid comparator '=='"),
    ("params.p <> '1'", "Invalid comparator '<>'"),
    ("tags.t IN ('v')", "Invalid comparator 'IN'"),
    ("attributes.status IN ('FINISHED')", "Only ['run_id'] attributes"),
    ("attributes.start_time = '1'", "Expected numeric value type for numeric attribute"),
    ("foo.bar = 'x'", "Invalid entity type 'foo'"),
    ("attributes.nope = 'x'", "Invalid attribute key 'nope'"),
    ("metrics.m IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
    ("end_time IS NULL", "IS NULL / IS NOT NULL is only supported"),
    ("status = FINISHED", "not quoted"),
    ("run_id IN ()", "non-empty list"),
    ("datasets.foo = 'x'", "Invalid dataset key 'foo'"),
    ("params.x = 'y'; DROP TABLE runs; --", "Invalid clause"),
    ("attributes.run_id IN ('a', (SELECT 1))", "Invalid clause"),
    ("params.x = 'unterminated", "unterminated"),
    ("metrics.acc > NaN", "not quoted"),
    ("params.x LIKE '" + "%a" * 30 + "'", "wildcards"),
    ("params.x = 'a'" + " AND params.x = 'a'" * 150, "at most 100 clauses"),
    ("params.x = '" + "a" * 30000 + "'", "characters long"),
]


@pytest.mark.parametrize(("filter_string", "message"), REJECTED)
def test_rejected_filters_are_400_with_a_reason(api, runs, filter_string, message):
    exp_id, _ = runs
    response = api.post("runs/search", {"experiment_ids": [exp_id], "filter": filter_string})
    assert response.status_code == 400, filter_string
    body = response.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in body["message"], body["message"]


def test_ordering(api, runs):
    exp_id, _ = runs

    def order(*clauses):
        body = {"experiment_ids": [exp_id], "order_by": list(clauses)}
        return [r["info"]["run_name"] for r in api.post("runs/search", body).json()["runs"]]

    assert order() == ["u", "s", "r"]  # start_time DESC by default
    assert order("metrics.m DESC") == ["u", "r", "s"]
    assert order("metrics.m") == ["s", "r", "u"]
    assert order("params.p ASC") == ["r", "u", "s"]  # strings
    assert order("attributes.run_name desc") == ["u", "s", "r"]
    assert order("metrics.missing DESC") == ["u", "s", "r"]  # NULLs last, then the default
    for bad, message in [
        ("metrics.m DESCENDING", "Invalid ordering key"),
        ("attributes.status desc extra", "Could not be parsed"),
        ("datasets.name", "Invalid order_by entity"),
    ]:
        response = api.post("runs/search", {"experiment_ids": [exp_id], "order_by": [bad]})
        assert response.status_code == 400 and message in response.json()["message"]
    duplicate = api.post(
        "runs/search", {"experiment_ids": [exp_id], "order_by": ["metrics.m", "metrics.m DESC"]}
    )
    assert duplicate.status_code == 400


def test_nan_metrics_sort_last_and_match_only_not_equal(api, runs):
    exp_id, ids = runs
    services.run_log_batch(
        run_id=ids["s"], metrics=[{"key": "m", "value": "NaN", "timestamp": TS + 5, "step": 9}]
    )
    assert names(api, exp_id, "metrics.m > -1000000") == ["r", "u"]
    assert names(api, exp_id, "metrics.m != 0.5") == ["s", "u"]
    body = {"experiment_ids": [exp_id], "order_by": ["metrics.m ASC"]}
    assert [r["info"]["run_name"] for r in api.post("runs/search", body).json()["runs"]] == [
        "r",
        "u",
        "s",
    ]


@pytest.mark.parametrize("max_results", [0, -1, 50001, 2**63, "abc", 1.5])
def test_max_results_bounds(api, runs, max_results):
    exp_id, _ = runs
    response = api.post("runs/search", {"experiment_ids": [exp_id], "max_results": max_results})
    assert response.status_code == 400


def test_page_tokens_are_bound_to_their_query(api, runs):
    exp_id, _ = runs
    first = api.post("runs/search", {"experiment_ids": [exp_id], "max_results": 2}).json()
    token = first["next_page_token"]
    second = api.post(
        "runs/search", {"experiment_ids": [exp_id], "max_results": 2, "page_token": token}
    ).json()
    assert len(first["runs"]) == 2 and len(second["runs"]) == 1
    assert "next_page_token" not in second
    for bad in [token[:-2] + "xx", "garbage", "eyJvZmZzZXQiOiAxfQ=="]:
        response = api.post(
            "runs/search", {"experiment_ids": [exp_id], "max_results": 2, "page_token": bad}
        )
        assert response.status_code == 400 and "page token" in response.json()["message"]
    other_query = api.post(
        "runs/search",
        {
            "experiment_ids": [exp_id],
            "max_results": 2,
            "page_token": token,
            "filter": "metrics.m > 0",
        },
    )
    assert other_query.status_code == 400


def test_tag_equality_search_is_one_query_per_page(api, runs, django_assert_max_num_queries):
    exp_id, _ = runs
    # authentication (2) + readable filter (2) + search (1) + the 8 payload queries
    with django_assert_max_num_queries(14):
        assert names(api, exp_id, "tags.t = 'v'") == ["r", "u"]


def test_experiment_search_filters(api, runs):
    exp_id, _ = runs
    api.post(
        "experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "team", "value": "fraud"}
    )

    def found(filter_string):
        body = {"max_results": 100, "filter": filter_string}
        response = api.post("experiments/search", body)
        assert response.status_code == 200, response.content
        return sorted(e["name"] for e in response.json()["experiments"])

    assert found("name = 'search-exp'") == ["search-exp"]
    assert found("name LIKE 'search%'") == ["search-exp"]
    assert found("name ILIKE 'SEARCH%'") == ["search-exp"]
    assert "search-exp" not in found("attribute.name != 'search-exp'")
    assert found(f"experiment_id = '{exp_id}'") == ["search-exp"]
    assert found(f"experiment_id IN ('{exp_id}', '0')") == ["Default", "search-exp"]
    assert "search-exp" in found("creation_time > 0")
    assert found("tags.team = 'fraud'") == ["search-exp"]
    assert "search-exp" not in found("tags.team IS NULL")
    for bad, message in [
        ("lifecycle_stage = 'active'", "Invalid attribute key 'lifecycle_stage'"),
        ("name IN ('x')", "Only ['experiment_id']"),
        ("experiment_id = 1", "Expected a quoted string value"),
        ("params.p = 'x'", "Invalid entity type 'params'"),
    ]:
        response = api.post("experiments/search", {"max_results": 10, "filter": bad})
        assert response.status_code == 400 and message in response.json()["message"], bad
    response = api.post("experiments/search", {"max_results": 10, "order_by": ["tags.k"]})
    assert (
        response.status_code == 400 and "Invalid order_by entity: tag" in response.json()["message"]
    )


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 7, 11])
@pytest.mark.parametrize("direction", ["DESC", "ASC"])
def test_metric_order_pages_cross_from_runs_with_the_metric_to_those_without(
    api, page_size, direction
):
    """Ordered by a metric, the runs that have it (read through the metric's index) come
    first and the runs without it or with NaN after, by start time: every page size gives
    the same order, each run once, whichever page the boundary falls on."""
    exp_id = api.experiment()
    expected_with, expected_without = [], []
    for i in range(10):
        run = services.run_create(
            experiment_id=exp_id, user_id="u", run_name=f"r{i}", start_time=TS + i, tags=[]
        )
        if i % 3 == 0:
            expected_without.append((TS + i, f"r{i}"))  # no metric at all
            continue
        value = "NaN" if i == 4 else [0.3, 0.1, 0.3, 0.9, 0.5, 0.2][i % 6]
        services.run_log_batch(
            run_id=run.run_id, metrics=[{"key": "m", "value": value, "timestamp": TS}]
        )
        if value == "NaN":
            expected_without.append((TS + i, f"r{i}"))
        else:
            expected_with.append((value, TS + i, f"r{i}"))
    # value in the asked direction, ties by start time (newest first), then run id
    with_metric = sorted(expected_with, key=lambda r: (-r[1],))
    with_metric = sorted(with_metric, key=lambda r: r[0], reverse=direction == "DESC")
    expected = [r[2] for r in with_metric] + [n for _, n in sorted(expected_without, reverse=True)]
    seen, token = [], None
    while True:
        body = {
            "experiment_ids": [exp_id],
            "order_by": [f"metrics.m {direction}"],
            "max_results": page_size,
            **({"page_token": token} if token else {}),
        }
        answer = api.post("runs/search", body).json()
        seen += [r["info"]["run_name"] for r in answer.get("runs", [])]
        token = answer.get("next_page_token")
        if not token:
            break
    assert seen == expected

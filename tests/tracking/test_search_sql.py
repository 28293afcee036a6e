"""Filters and orderings compiled to SQL select the right rows on the database in use (SQLite
by default, PostgreSQL with DATABASE_URL): every accepted filter of protocol §5.7 is checked
against data built so that it excludes something, plus LIKE case and escapes, NaN and
infinity, missing keys, NULL placement, attack payloads and the shape of the SQL."""

from __future__ import annotations

import math
import time
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import InvalidParameterValue
from tracking.models import (
    Dataset,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelStatus,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunInput,
    RunStatus,
    RunTag,
)
from tracking.search import experiments as experiment_search
from tracking.search import grammar as search_grammar
from tracking.search import logged_models as logged_model_search
from tracking.search import registry as registry_search
from tracking.search import runs as run_search
from tracking.search import sql as search_sql

pytestmark = pytest.mark.django_db

TS = 1_700_000_000_000
LONG = "a" * 6000


def _experiment(name: str, *, created: int = TS, tags: dict | None = None) -> Experiment:
    exp = Experiment.objects.create(
        name=name,
        artifact_location=f"mlflow-artifacts:/{name}",
        creation_time=created,
        last_update_time=created,
    )
    for key, value in (tags or {}).items():
        ExperimentTag.objects.create(experiment=exp, key=key, value=value)
    return exp


def _run(exp, name, *, status, user, start, end, uri, metrics, params, tags) -> Run:
    run = Run.objects.create(
        run_id=uuid.uuid4().hex,
        experiment=exp,
        name=name,
        user_id=user,
        status=status,
        start_time=start,
        end_time=end,
        artifact_uri=uri,
    )
    for key, value in metrics.items():
        nan = isinstance(value, float) and math.isnan(value)
        LatestMetric.objects.create(
            run=run, key=key, value=0.0 if nan else value, is_nan=nan, timestamp=TS, step=0
        )
    Param.objects.bulk_create(Param(run=run, key=k, value=v) for k, v in params.items())
    tags = {"mlflow.runName": name, **tags}
    RunTag.objects.bulk_create(RunTag(run=run, key=k, value=v) for k, v in tags.items())
    return run


@pytest.fixture
def data():
    """Four runs differing in every searchable field; returns {name: run} plus the experiment."""
    exp = _experiment("search-sql")
    nan = float("nan")
    runs = {
        "r": _run(
            exp,
            "r",
            status=RunStatus.FINISHED,
            user="root",
            start=TS + 1,
            end=TS + 100,
            uri="mlflow-artifacts:/1/r",
            metrics={"m": 0.5, "inf": math.inf},
            params={"p": "1", "b": "twice", "path": "a_b", "nl": "a\nb", "long": LONG},
            tags={"t": "v", "mlflow.user": "root", "g": "x", "long": "a" * 8000},
        ),
        "s": _run(
            exp,
            "s",
            status=RunStatus.RUNNING,
            user="bob",
            start=TS + 2,
            end=None,
            uri="s3://bucket/s",
            metrics={"m": 0.05, "inf": -math.inf},
            params={"p": "2", "b": "once", "path": "axb"},
            tags={"t": "w", "mlflow.user": "Bob", "g": "[x]*?"},
        ),
        "u": _run(
            exp,
            "u",
            status=RunStatus.FAILED,
            user="root",
            start=TS + 3,
            end=TS + 200,
            uri="mlflow-artifacts:/1/u",
            metrics={"m": 2.0, "inf": 1.0},
            params={"p": "10", "b": "TWO", "path": "50%", "C:\\dir": "back\\slash"},
            tags={"t": "v", "mlflow.user": "ROOT", "a%b": "pct"},
        ),
        "n": _run(
            exp,
            "n",
            status=RunStatus.KILLED,
            user="root",
            start=TS + 4,
            end=None,
            uri="file:/tmp/n",
            metrics={"m": nan},
            params={},
            tags={"aXb": "pct"},
        ),
    }
    train = Dataset.objects.create(experiment=exp, name="train_ds", digest="abc")
    evaluation = Dataset.objects.create(experiment=exp, name="eval_ds", digest="def")
    RunInput.objects.create(run=runs["r"], dataset=train, context="training")
    RunInput.objects.create(run=runs["s"], dataset=evaluation, context="eval")
    return exp, runs


def names(exp, filter_string, order_by=None):
    qs = run_search.filter_runs(Run.objects.filter(experiment=exp), filter_string)
    if order_by is not None:
        return list(run_search.order_runs(qs, order_by).values_list("name", flat=True))
    return sorted(qs.values_list("name", flat=True))


ACCEPTED = [
    # §5.7, runs 1-33 (26 and 27 take run ids: see test_run_id_lists)
    ("metrics.m > 0.1", ["r", "u"]),
    ("metrics.m >= 0.5 AND params.p = '1'", ["r"]),
    ("metric.m < 1", ["r", "s"]),
    ("metrics.`m` != 0.5", ["n", "s", "u"]),
    ("metrics.m > 1e-3", ["r", "s", "u"]),
    ("metrics.m > -1", ["r", "s", "u"]),
    ('params.p = "1"', ["r"]),
    ("param.p != '2'", ["r", "u"]),
    ("parameters.p LIKE '1%'", ["r", "u"]),
    ("params.b ILIKE 'TW%'", ["r", "u"]),
    ("params.p IS NULL", ["n"]),
    ("params.p is not null", ["r", "s", "u"]),
    ("tags.t = 'v'", ["r", "u"]),
    ("tags.`mlflow.runName` = 'r'", ["r"]),
    ("tags.\"mlflow.runName\" = 'r'", ["r"]),
    ("tags.mlflow.runName = 'r'", ["r"]),
    ("tags.`mlflow.user` ILIKE 'ROOT'", ["r", "u"]),
    ("attributes.status = 'FINISHED'", ["r"]),
    ("attr.status != 'RUNNING'", ["n", "r", "u"]),
    ("status = 'FINISHED'", ["r"]),
    ("run_name LIKE 'r%'", ["r"]),
    ("`Run name` = 'r'", ["r"]),
    (f"attributes.start_time > {TS + 1}", ["n", "s", "u"]),
    (f"created > {TS + 2}", ["n", "u"]),
    ("attributes.end_time < 9999999999999", ["r", "u"]),
    ("attributes.user_id = 'root'", ["n", "r", "u"]),
    ("attributes.artifact_uri LIKE 'mlflow-artifacts:%'", ["r", "u"]),
    ("datasets.name = 'train_ds' AND datasets.context = 'training'", ["r"]),
    ("dataset.digest IN ('abc', 'def')", ["r", "s"]),
    ("run_name = 'r' AND status = 'FINISHED' AND user_id = 'root'", ["r"]),
    ("metrics.m = 0.5 and params.p = '1'", ["r"]),
    # More of the same grammar
    ("run.status = 'FAILED'", ["u"]),
    ("attributes.user_id != 'root'", ["s"]),
    ("attributes.end_time != 100", ["r", "u"]),  # NULL end times never match
    (f"attributes.end_time >= {TS + 200}", ["u"]),
    (f"start_time <= {TS + 2} AND start_time >= {TS + 2}", ["s"]),
    ("datasets.name != 'train_ds'", ["s"]),
    ("datasets.name NOT IN ('train_ds')", ["s"]),
    ("datasets.context LIKE 'ev%'", ["s"]),
    ("datasets.context ILIKE 'TRAIN%'", ["r"]),
    ("datasets.digest = 'zzz'", []),
    ("tags.t != 'v'", ["s"]),
    ("tags.t IS NULL", ["n"]),
    ("tags.`a%b` = 'pct'", ["u"]),  # % in a key is literal
    ("params.`C:\\dir` = 'back\\slash'", ["u"]),
    ("params.p = 'y'' OR ''1''=''1'", []),
    ("tags.`mlflow.user` = 'a'", []),
]


@pytest.mark.parametrize(("filter_string", "expected"), ACCEPTED)
def test_accepted_filters_select_the_right_runs(data, filter_string, expected):
    exp, _ = data
    assert names(exp, filter_string) == expected


def test_run_id_lists(data):
    exp, runs = data
    r, s = runs["r"].run_id, runs["s"].run_id
    assert names(exp, f"attributes.run_id IN ('{r}', '{s}')") == ["r", "s"]
    assert names(exp, f"attribute.run_id NOT IN ('{r}')") == ["n", "s", "u"]
    assert names(exp, f"run_id = '{r}'") == ["r"]
    assert names(exp, f"run_id != '{r}'") == ["n", "s", "u"]
    assert names(exp, "run_id IN ('nope')") == []


# ---------------------------------------------------------------------------------------------
# LIKE: case-sensitive on every database, escapes, and no pathological slowness


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("run_name LIKE 'R%'", []),
        ("run_name ILIKE 'R%'", ["r"]),
        ("params.b LIKE 'TW%'", ["u"]),
        ("params.b LIKE 'tw%'", ["r"]),
        ("params.b ILIKE 'tw%'", ["r", "u"]),
        ("tags.`mlflow.user` LIKE 'ROOT'", ["u"]),
        ("tags.`mlflow.user` LIKE 'root'", ["r"]),
        ("tags.`mlflow.user` ILIKE 'bob'", ["s"]),
        ("status LIKE 'finished'", []),
        ("status ILIKE 'finished'", ["r"]),
        ("attributes.artifact_uri LIKE 'MLFLOW%'", []),
        ("attributes.artifact_uri ILIKE 'MLFLOW%'", ["r", "u"]),
    ],
)
def test_like_is_case_sensitive_and_ilike_is_not(data, filter_string, expected):
    exp, _ = data
    assert names(exp, filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.path LIKE 'a_b'", ["r", "s"]),  # _ is one character
        ("params.path LIKE 'a\\_b'", ["r"]),  # \_ is a literal underscore
        ("params.path LIKE 'a\\\\_b'", ["r"]),  # \\ in the filter text is one backslash
        ("params.path LIKE '%\\%'", ["u"]),  # a literal %
        ("params.path LIKE '%%'", ["r", "s", "u"]),
        ("params.path LIKE '___'", ["r", "s", "u"]),
        ("params.path LIKE '__'", []),
        ("params.path LIKE 'a%'", ["r", "s"]),
        ("params.path LIKE 'A%'", []),
        ("params.path ILIKE 'A\\_B'", ["r"]),
        ("params.nl LIKE 'a%b'", ["r"]),  # % spans a newline
        ("params.nl LIKE 'a_b'", ["r"]),
        ("tags.g LIKE '[x]*?'", ["s"]),  # GLOB metacharacters are literal
        ("tags.g LIKE '[x]%'", ["s"]),
        ("tags.g LIKE '[%'", ["s"]),
        ("tags.g LIKE '%?'", ["s"]),
        ("tags.g LIKE 'x'", ["r"]),
        ("tags.g ILIKE '[X]%'", ["s"]),
        ("params.`C:\\dir` LIKE 'back\\\\\\\\slash'", ["u"]),  # \\\\ -> \\ -> literal \
        ("params.`C:\\dir` LIKE 'back%'", ["u"]),
        ("params.`C:\\dir` LIKE 'back\\\\'", []),  # a lone trailing \ is literal
    ],
)
def test_like_wildcards_and_escapes(data, filter_string, expected):
    exp, _ = data
    assert names(exp, filter_string) == expected


@pytest.mark.parametrize(
    "filter_string",
    [
        "params.long LIKE '" + "%a" * 9 + "%b'",
        "params.long ILIKE '" + "%a" * 9 + "%b'",
        "tags.long LIKE '" + "%a" * 9 + "%b'",
        "tags.long ILIKE '" + "_%" * 10 + "b'",
        "params.long LIKE '" + "_" * 100 + "%b'",
    ],
)
def test_pathological_like_patterns_answer_quickly(data, filter_string):
    exp, _ = data
    start = time.perf_counter()
    assert names(exp, filter_string) == []
    assert time.perf_counter() - start < 1.0


def test_like_on_long_values_still_matches(data):
    exp, _ = data
    assert names(exp, "params.long LIKE '" + "%a" * 9 + "%'") == ["r"]
    assert names(exp, f"params.long = '{LONG}'") == ["r"]
    assert names(exp, f"params.long = '{LONG[:-1]}'") == []  # the same first 200 characters


# ---------------------------------------------------------------------------------------------
# Metrics: NaN and infinity


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # n's latest value is NaN (stored as 0 with is_nan): it matches only `!=`.
        ("metrics.m = 0", []),
        ("metrics.m <= 0", []),
        ("metrics.m >= 0", ["r", "s", "u"]),
        ("metrics.m != 0", ["n", "r", "s", "u"]),
        ("metrics.m != 2", ["n", "r", "s"]),
        ("metrics.missing != 0", []),  # no metric, no match
        ("metrics.inf > 1e308", ["r"]),
        ("metrics.inf < -1e308", ["s"]),
        ("metrics.inf > 1e309", []),  # 1e309 is +infinity
        ("metrics.inf >= 1e309", ["r"]),
        ("metrics.inf = 1e309", ["r"]),
        ("metrics.inf < 1e309", ["s", "u"]),
        ("metrics.inf = -1e309", ["s"]),
        ("metrics.inf != 1", ["r", "s"]),
    ],
)
def test_metric_nan_and_infinity(data, filter_string, expected):
    exp, _ = data
    assert names(exp, filter_string) == expected


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        (f"start_time > {TS + 1}.5", ["n", "s", "u"]),
        (f"start_time >= {TS + 1}.5", ["n", "s", "u"]),
        (f"start_time < {TS + 2}.5", ["r", "s"]),
        (f"start_time <= {TS + 2}.5", ["r", "s"]),
        (f"start_time = {TS + 1}.5", []),
        (f"start_time != {TS + 1}.5", ["n", "r", "s", "u"]),
        ("start_time > 1e30", []),
        ("start_time < 1e30", ["n", "r", "s", "u"]),
        ("start_time = 1e30", []),
        ("start_time > -1e30", ["n", "r", "s", "u"]),
        ("start_time < 1e309", ["n", "r", "s", "u"]),
        ("end_time < 1e309", ["r", "u"]),
        ("end_time != 1e30", ["r", "u"]),
        ("start_time > 9223372036854775807", []),
        ("start_time < -9223372036854775808", []),
    ],
)
def test_integer_columns_compare_exactly_and_never_overflow(data, filter_string, expected):
    exp, _ = data
    assert names(exp, filter_string) == expected


# ---------------------------------------------------------------------------------------------
# Ordering


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ([], ["n", "u", "s", "r"]),  # start_time DESC
        (["metrics.m DESC"], ["u", "r", "s", "n"]),  # NaN last
        (["metrics.m"], ["s", "r", "u", "n"]),  # NaN last ascending too
        (["metrics.m ASC"], ["s", "r", "u", "n"]),
        (["metrics.inf desc"], ["r", "u", "s", "n"]),  # missing last
        (["params.p ASC"], ["r", "u", "s", "n"]),  # strings; NULL last
        (["params.p DESC"], ["s", "u", "r", "n"]),
        (["tags.t ASC"], ["u", "r", "s", "n"]),  # ties broken by start_time DESC
        (["attributes.end_time ASC"], ["r", "u", "n", "s"]),  # NULLs last, then tie-breakers
        (["end_time DESC"], ["u", "r", "n", "s"]),
        (["created"], ["r", "s", "u", "n"]),
        (["attributes.start_time DESC"], ["n", "u", "s", "r"]),
        (["run_name"], ["n", "r", "s", "u"]),
        (["attributes.run_name desc"], ["u", "s", "r", "n"]),
        (["status", "metrics.m DESC"], ["u", "r", "n", "s"]),
        (["metrics.missing DESC"], ["n", "u", "s", "r"]),
    ],
)
def test_order_runs(data, order_by, expected):
    exp, _ = data
    assert names(exp, None, order_by) == expected


def test_order_runs_breaks_ties_by_run_id(data):
    exp, _ = data
    ids = sorted(uuid.uuid4().hex for _ in range(3))
    for i, run_id in enumerate(reversed(ids)):
        Run.objects.create(
            run_id=run_id,
            experiment=exp,
            name=f"tie{i}",
            start_time=1,
            artifact_uri="x",
        )
    qs = run_search.order_runs(Run.objects.filter(experiment=exp, start_time=1), [])
    assert list(qs.values_list("run_id", flat=True)) == ids


def test_filter_and_order_together(data):
    exp, _ = data
    assert names(exp, "metrics.m >= 0 AND tags.t = 'v'", ["metrics.m DESC"]) == ["u", "r"]


# ---------------------------------------------------------------------------------------------
# The SQL itself: one query, EXISTS on the indexed (key, LEFT(value, 200)), bound values


def test_tag_equality_is_one_query_with_the_index_expression(data, django_assert_num_queries):
    exp, _ = data
    qs = run_search.filter_runs(
        Run.objects.filter(experiment=exp), "tags.t = 'v' AND params.p = '1'"
    )
    with django_assert_num_queries(1):
        assert [r.name for r in qs] == ["r"]
    with CaptureQueriesContext(connection) as captured:
        list(qs.all())
    sql = captured.captured_queries[0]["sql"].upper()
    assert sql.count("EXISTS") == 2
    assert ("SUBSTR" in sql) if connection.vendor == "sqlite" else ("LEFT(" in sql)
    plan = qs.explain().upper()
    if connection.vendor == "sqlite":
        # The correlated subqueries use the (run, key) unique indexes, not a table scan.
        assert "SCAN TRACKING_RUNTAG" not in plan and "SCAN TRACKING_PARAM" not in plan, plan


def test_values_are_bound_parameters(data):
    exp, _ = data
    payload = "x' OR '1'='1"
    qs = run_search.filter_runs(
        Run.objects.filter(experiment=exp), "params.p = 'x'' OR ''1''=''1' AND tags.t LIKE 'v%'"
    )
    sql, params = qs.query.sql_with_params()
    assert payload not in sql
    assert payload in params
    assert list(qs) == []


def test_search_with_the_maximum_number_of_clauses_runs(data):
    exp, _ = data
    text = " AND ".join(["metrics.m > 0.1", "tags.t = 'v'", "params.p LIKE '1%'"] * 33)
    start = time.perf_counter()
    assert names(exp, text) == ["r", "u"]
    assert time.perf_counter() - start < 1.0


def test_runs_search_does_not_touch_other_tables(data):
    exp, _ = data
    # An injection attempt inside a value is just a value: the tables are still there.
    assert names(exp, "params.p = '1; DROP TABLE tracking_run; --'") == []
    assert Run.objects.filter(experiment=exp).count() == 4


# ---------------------------------------------------------------------------------------------
# Experiments


@pytest.fixture
def experiments():
    alpha = _experiment(
        "alpha", created=TS + 10, tags={"k": "1", "mlflow.note.content": "has x inside"}
    )
    beta = _experiment("Beta", created=TS + 20, tags={"other": "y"})
    gamma = _experiment("gamma_1", created=TS + 30)
    return {e.name: e for e in (alpha, beta, gamma)}


def exp_names(experiments, filter_string, order_by=None):
    qs = Experiment.objects.filter(pk__in=[e.pk for e in experiments.values()])
    qs = experiment_search.filter_experiments(qs, filter_string)
    if order_by is not None:
        return list(
            experiment_search.order_experiments(qs, order_by).values_list("name", flat=True)
        )
    return sorted(qs.values_list("name", flat=True))


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'alpha'", ["alpha"]),
        ("name LIKE 'a%'", ["alpha"]),
        ("name LIKE 'b%'", []),  # case-sensitive
        ("name ILIKE 'B%'", ["Beta"]),
        ("name ILIKE 'b%'", ["Beta"]),
        ("attribute.name != 'alpha'", ["Beta", "gamma_1"]),
        ("name LIKE 'gamma\\_%'", ["gamma_1"]),
        (f"creation_time > {TS + 10}", ["Beta", "gamma_1"]),
        (f"attributes.last_update_time <= {TS + 20}", ["Beta", "alpha"]),
        ("tags.k IS NULL", ["Beta", "gamma_1"]),
        ("tags.k IS NOT NULL", ["alpha"]),
        ("tags.k = '1'", ["alpha"]),
        ("tags.k != '2'", ["alpha"]),
        ("tag.`mlflow.note.content` LIKE '%x%'", ["alpha"]),
        ("tag.`mlflow.note.content` LIKE '%X%'", []),
        ("tags.other ILIKE 'Y'", ["Beta"]),
        ("name = 'alpha' AND tags.k = '1'", ["alpha"]),
    ],
)
def test_experiment_filters(experiments, filter_string, expected):
    assert exp_names(experiments, filter_string) == expected


def test_experiment_id_filters(experiments):
    a, b = experiments["alpha"].pk, experiments["Beta"].pk
    assert exp_names(experiments, f"experiment_id = '{a}'") == ["alpha"]
    assert exp_names(experiments, f"experiment_id IN ('{a}','{b}')") == ["Beta", "alpha"]
    assert exp_names(experiments, f"experiment_id NOT IN ('{a}')") == ["Beta", "gamma_1"]
    assert exp_names(experiments, f"experiment_id != '{a}'") == ["Beta", "gamma_1"]
    assert exp_names(experiments, "experiment_id = 'abc'") == []
    assert exp_names(experiments, "experiment_id = '99999999999999999999999'") == []
    assert exp_names(experiments, f"experiment_id LIKE '{a}'") == ["alpha"]
    # Experiment 0 "Default" exists from the migration.
    assert list(
        experiment_search.filter_experiments(
            Experiment.objects.all(), "experiment_id = '0'"
        ).values_list("name", flat=True)
    ) == ["Default"]


def test_order_experiments(experiments):
    assert exp_names(experiments, None, []) == ["gamma_1", "Beta", "alpha"]
    assert exp_names(experiments, None, ["creation_time ASC"]) == ["alpha", "Beta", "gamma_1"]
    assert exp_names(experiments, None, ["attributes.name DESC"]) == ["gamma_1", "alpha", "Beta"]
    assert exp_names(experiments, None, ["experiment_id desc"]) == ["gamma_1", "Beta", "alpha"]
    # Equal creation times fall back to experiment_id ASC.
    Experiment.objects.filter(pk__in=[e.pk for e in experiments.values()]).update(creation_time=5)
    assert exp_names(experiments, None, []) == ["alpha", "Beta", "gamma_1"]


# ---------------------------------------------------------------------------------------------
# Logged models


@pytest.fixture
def models(data):
    exp, runs = data
    other = _experiment("lm-other")
    run = runs["r"]

    def model(model_id, exp, name, status, created, tags=None, params=None, points=()):
        m = LoggedModel.objects.create(
            model_id=model_id,
            experiment=exp,
            name=name,
            status=status,
            creation_timestamp=created,
            last_updated_timestamp=created,
            artifact_uri=f"mlflow-artifacts:/{model_id}",
            source_run=run,
        )
        for k, v in (tags or {}).items():
            LoggedModelTag.objects.create(model=m, key=k, value=v)
        for k, v in (params or {}).items():
            LoggedModelParam.objects.create(model=m, key=k, value=v)
        for step, value, dataset in points:
            nan = math.isnan(value)
            Metric.objects.create(
                run=run,
                key="rmse",
                value=0.0 if nan else value,
                is_nan=nan,
                timestamp=TS + step,
                step=step,
                model_id=model_id,
                dataset_name=dataset,
            )
        return m

    model(
        "m-1",
        exp,
        "model",
        LoggedModelStatus.READY,
        100,
        tags={"mlflow.user": "root"},
        params={"lr": "0.1"},
        points=[(0, 2.0, ""), (1, 0.5, "eval")],
    )
    model(
        "m-2",
        exp,
        "other",
        LoggedModelStatus.PENDING,
        200,
        tags={"mlflow.user": "bob"},
        params={"lr": "0.2"},
        points=[(0, 0.1, "eval"), (1, 3.0, "train")],
    )
    model(
        "m-3", exp, "nan", LoggedModelStatus.FAILED, 300, points=[(0, 0.2, ""), (1, math.nan, "")]
    )
    model("m-4", other, "Model", LoggedModelStatus.READY, 400)
    return exp, other


def model_ids(filter_string, datasets=None, order_by=None):
    qs = logged_model_search.filter_logged_models(
        LoggedModel.objects.all(), filter_string, datasets
    )
    if order_by is not None:
        return list(
            logged_model_search.order_logged_models(qs, order_by).values_list("model_id", flat=True)
        )
    return sorted(qs.values_list("model_id", flat=True))


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name = 'model'", ["m-1"]),  # §5.7 logged models 1-6
        ("name IN ('model')", ["m-1"]),
        ("creation_time > 150", ["m-2", "m-3", "m-4"]),
        ("metrics.rmse < 1", ["m-1"]),  # latest values: 0.5, 3.0, NaN
        ("tags.`mlflow.user` = 'root'", ["m-1"]),
        ("name LIKE 'M%'", ["m-4"]),
        ("name ILIKE 'M%'", ["m-1", "m-4"]),
        ("name NOT IN ('model', 'other')", ["m-3", "m-4"]),
        ("attributes.model_id = 'm-2'", ["m-2"]),
        ("status = 'READY'", ["m-1", "m-4"]),
        ("status IN ('PENDING', 'FAILED')", ["m-2", "m-3"]),
        ("status != 'READY'", ["m-2", "m-3"]),
        ("metrics.rmse >= 0.5", ["m-1", "m-2"]),
        ("metrics.rmse != 0.5", ["m-2", "m-3"]),  # NaN matches != only
        ("metrics.rmse = 0.2", []),  # an older value does not count
        ("params.lr = '0.2'", ["m-2"]),
        ("params.lr != '0.2'", ["m-1"]),  # models without the param never match
        ("params.lr IN ('0.1', '0.2')", ["m-1", "m-2"]),
        ("tags.`mlflow.user` LIKE 'R%'", []),
        ("last_updated_timestamp <= 200 AND metrics.rmse > 0", ["m-1", "m-2"]),
        ("creation_timestamp > 1e30", []),
    ],
)
def test_logged_model_filters(models, filter_string, expected):
    assert model_ids(filter_string) == expected


def test_logged_model_experiment_and_run_filters(models, data):
    exp, other = models
    _, runs = data
    assert model_ids(f"experiment_id = '{exp.pk}'") == ["m-1", "m-2", "m-3"]
    assert model_ids(f"experiment_id = '{other.pk}'") == ["m-4"]
    assert model_ids(f"experiment_id IN ('{other.pk}', 'x')") == ["m-4"]
    assert model_ids(f"source_run_id = '{runs['r'].run_id}'") == ["m-1", "m-2", "m-3", "m-4"]
    assert model_ids("source_run_id = 'nope'") == []


def test_logged_model_metrics_restricted_to_datasets(models):
    eval_only = [{"dataset_name": "eval"}]
    assert model_ids("metrics.rmse < 1", eval_only) == ["m-1", "m-2"]
    assert model_ids("metrics.rmse < 0.3", eval_only) == ["m-2"]
    assert model_ids("metrics.rmse < 1", [{"dataset_name": "eval", "dataset_digest": "no"}]) == []
    assert model_ids("metrics.rmse > 2", [{"dataset_name": "train"}]) == ["m-2"]


def test_order_logged_models(models):
    assert model_ids(None, order_by=[]) == ["m-4", "m-3", "m-2", "m-1"]
    by_rmse = [{"field_name": "metrics.rmse", "ascending": True}]
    assert model_ids(None, order_by=by_rmse) == ["m-1", "m-2", "m-3", "m-4"]  # NaN, none last
    by_rmse_desc = [{"field_name": "metrics.rmse", "ascending": False}]
    assert model_ids(None, order_by=by_rmse_desc) == ["m-2", "m-1", "m-3", "m-4"]
    on_eval = [{"field_name": "metrics.rmse", "ascending": False, "dataset_name": "eval"}]
    assert model_ids(None, order_by=on_eval) == ["m-1", "m-2", "m-3", "m-4"]
    by_id = [{"field_name": "attributes.model_id", "ascending": False}]
    assert model_ids(None, order_by=by_id) == ["m-4", "m-3", "m-2", "m-1"]
    assert model_ids(None, order_by=[{"field_name": "creation_time", "ascending": True}]) == [
        "m-1",
        "m-2",
        "m-3",
        "m-4",
    ]


# ---------------------------------------------------------------------------------------------
# Conditions the registry reuses


def test_registry_conditions_on_registered_models():
    from registry.models import RegisteredModel, RegisteredModelTag

    def make(name, tags):
        m = RegisteredModel.objects.create(
            name=name, name_key=name.lower(), creation_timestamp=1, last_updated_timestamp=1
        )
        for k, v in tags.items():
            RegisteredModelTag.objects.create(model=m, key=k, value=v)

    make("plain", {})
    make("prompt", {search_grammar.PROMPT_TAG: "true"})
    make("Tagged", {search_grammar.PROMPT_TAG: "false", "rk": "red"})

    def select(text):
        qs = RegisteredModel.objects.all()
        for c in registry_search.parse_registered_model_filter(text):
            if c.entity == "tag":
                qs = qs.filter(search_sql.registry_tag_condition(RegisteredModelTag, "model", c))
            else:
                qs = qs.filter(search_sql.string_condition("name", c.comparator, c.value))
        return sorted(qs.values_list("name", flat=True))

    assert select("tags.`mlflow.prompt.is_prompt` != 'true'") == ["Tagged", "plain"]
    assert select("tags.`mlflow.prompt.is_prompt` = 'false'") == ["Tagged", "plain"]
    assert select("tags.`mlflow.prompt.is_prompt` = 'true'") == ["prompt"]
    assert select("tag.`rk` LIKE 'r%'") == ["Tagged"]
    assert select("tags.rk != 'blue'") == ["Tagged"]
    assert select("name LIKE 'p%'") == ["plain", "prompt"]
    assert select("name ILIKE 'T%'") == ["Tagged"]
    assert select("name IN ('plain','x')") == ["plain"]
    assert select("name NOT IN ('plain')") == ["Tagged", "prompt"]
    assert select("name != 'plain' AND tags.`mlflow.prompt.is_prompt` != 'true'") == ["Tagged"]


def test_number_condition_integer_mode():
    from registry.models import RegisteredModel

    RegisteredModel.objects.create(
        name="n", name_key="n", creation_timestamp=5, last_updated_timestamp=5
    )
    qs = RegisteredModel.objects.all()

    def count(comparator, value):
        cond = search_sql.number_condition("creation_timestamp", comparator, value, integer=True)
        return qs.filter(cond).count()

    assert count(">", 4.5) == 1 and count(">", 5.0) == 0 and count(">=", 5.0) == 1
    assert count("<", 5.5) == 1 and count("<", 5.0) == 0 and count("<=", 4.99) == 0
    assert count("=", 5.0) == 1 and count("=", 5.1) == 0 and count("!=", 5.1) == 1
    assert count("<", math.inf) == 1 and count(">", math.inf) == 0
    assert count("=", math.nan) == 0 and count("!=", math.nan) == 1
    with pytest.raises(InvalidParameterValue):
        count("LIKE", 1.0)


def test_distinct_keys_are_capped_and_the_cap_is_one_query(data, django_assert_num_queries):
    exp, _ = data
    text = " AND ".join(f"tags.k{i} != 'v'" for i in range(search_grammar.MAX_SUBQUERIES))
    # One statement at the cap. Its time is not asserted: a wall-clock limit flaked on a
    # loaded CI machine (0.1 s alone, 1.1 s there, against a 1 s limit).
    with django_assert_num_queries(1):
        assert names(exp, text) == []
    too_many = " AND ".join(f"params.k{i} = 'v'" for i in range(search_grammar.MAX_SUBQUERIES + 1))
    with pytest.raises(InvalidParameterValue, match="at most 30 different metrics"):
        names(exp, too_many)
    # Clauses on the same key share one subquery and do not count twice.
    same_key = " AND ".join(["metrics.m > 0.1", "metrics.m < 1", "metrics.m != 0.7"] * 33)
    assert names(exp, same_key) == ["r"]
    assert names(exp, "params.p IS NOT NULL AND params.p LIKE '1%' AND params.p != '10'") == ["r"]

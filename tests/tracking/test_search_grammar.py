"""The filter and order_by grammar (protocol §5): what parses to what, and every refusal of
§5.8 with a message naming the problem. No database: refusals happen before any SQL."""

from __future__ import annotations

import time

import pytest

from core.errors import InvalidParameterValue
from tracking.models import Experiment, LoggedModel, Run
from tracking.search import experiments as experiment_search
from tracking.search import grammar as search_grammar
from tracking.search import logged_models as logged_model_search
from tracking.search import registry as registry_search
from tracking.search import runs as run_search
from tracking.search import sql as search_sql
from tracking.search.grammar import Comparison


def runs(filter_string):
    return run_search.run_comparisons(filter_string)


def one(filter_string) -> Comparison:
    (c,) = runs(filter_string)
    return c


# ---------------------------------------------------------------------------------------------
# Tokens, identifiers and values


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_empty_filter_is_no_clause(text):
    assert runs(text) == []
    qs = Run.objects.none()
    assert run_search.filter_runs(qs, text) is qs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.m > 0.1", Comparison("metric", "m", ">", 0.1)),
        ("metric.m<1", Comparison("metric", "m", "<", 1.0)),
        ("metrics.`m` != 0", Comparison("metric", "m", "!=", 0.0)),
        ("`metrics`.m >= 1E2", Comparison("metric", "m", ">=", 100.0)),
        ("metrics.m > 1e-3", Comparison("metric", "m", ">", 0.001)),
        ("metrics.m > -1", Comparison("metric", "m", ">", -1.0)),
        ("metrics.m > .5", Comparison("metric", "m", ">", 0.5)),
        ("metrics.m > +3", Comparison("metric", "m", ">", 3.0)),
        ('metrics."my metric" <= 2', Comparison("metric", "my metric", "<=", 2.0)),
        ('params.p = "1"', Comparison("param", "p", "=", "1")),
        ("param.p != '2'", Comparison("param", "p", "!=", "2")),
        ("parameters.p LIKE '1%'", Comparison("param", "p", "LIKE", "1%")),
        ("parameter.p like '1%'", Comparison("param", "p", "LIKE", "1%")),
        ("params.b ILIKE 'TW%'", Comparison("param", "b", "ILIKE", "TW%")),
        ("params.p IS NULL", Comparison("param", "p", "IS NULL", None)),
        ("params.p is not null", Comparison("param", "p", "IS NOT NULL", None)),
        ("tags.t = 'v'", Comparison("tag", "t", "=", "v")),
        ("tags.`mlflow.runName` = 'r'", Comparison("tag", "mlflow.runName", "=", "r")),
        ("tags.\"mlflow.runName\" = 'r'", Comparison("tag", "mlflow.runName", "=", "r")),
        ("tags.mlflow.runName = 'r'", Comparison("tag", "mlflow.runName", "=", "r")),
        ("tag.`a b.c` = 'x'", Comparison("tag", "a b.c", "=", "x")),
        ("tags.`mlflow.user` ILIKE 'ROOT'", Comparison("tag", "mlflow.user", "ILIKE", "ROOT")),
        ("attributes.status = 'FINISHED'", Comparison("attribute", "status", "=", "FINISHED")),
        ("attr.status != 'RUNNING'", Comparison("attribute", "status", "!=", "RUNNING")),
        ("run.status = 'FAILED'", Comparison("attribute", "status", "=", "FAILED")),
        ("status = 'FINISHED'", Comparison("attribute", "status", "=", "FINISHED")),
        ("run_name LIKE 'r%'", Comparison("attribute", "run_name", "LIKE", "r%")),
        ("`Run name` = 'r'", Comparison("attribute", "run_name", "=", "r")),
        ("`Run Name` = 'r'", Comparison("attribute", "run_name", "=", "r")),
        ("attributes.`run name` = 'r'", Comparison("attribute", "run_name", "=", "r")),
        ("attributes.start_time > 0", Comparison("attribute", "start_time", ">", 0.0)),
        ("created > 0", Comparison("attribute", "created", ">", 0.0)),
        ("attributes.end_time < 9999999999999", Comparison("attribute", "end_time", "<", 1e13 - 1)),
        ("attributes.run_id IN ('a', 'b')", Comparison("attribute", "run_id", "IN", ("a", "b"))),
        ("attribute.run_id NOT IN ('x')", Comparison("attribute", "run_id", "NOT IN", ("x",))),
        ("attribute.run_id not  in ('x')", Comparison("attribute", "run_id", "NOT IN", ("x",))),
        ("run_id IN('a','b')", Comparison("attribute", "run_id", "IN", ("a", "b"))),
        ("attributes.user_id = 'root'", Comparison("attribute", "user_id", "=", "root")),
        ("datasets.name = 'train_ds'", Comparison("dataset", "name", "=", "train_ds")),
        ("dataset.digest IN ('abc', 'def')", Comparison("dataset", "digest", "IN", ("abc", "def"))),
        ("datasets.context LIKE 'tr%'", Comparison("dataset", "context", "LIKE", "tr%")),
    ],
)
def test_clauses_parse(text, expected):
    assert one(text) == expected


def test_and_in_any_case_and_spacing():
    text = "metrics.m = 0.5 and params.p = '1' AnD tags.t='v'   AND\n status = 'FINISHED'"
    assert [c.entity for c in runs(text)] == ["metric", "param", "tag", "attribute"]


def test_the_first_dot_splits_entity_and_key():
    assert one("tags.a.b.c = 'x'").key == "a.b.c"
    assert one("`tags`.`a.b` = 'x'").key == "a.b"
    with pytest.raises(InvalidParameterValue):
        runs("params.`x.y`.z = 'x'")  # a quoted key ends the identifier


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("params.p = 'it''s'", "it's"),
        ("params.p = 'it\\'s'", "it's"),
        ('params.p = "say ""hi"""', 'say "hi"'),
        ('params.p = "say \\"hi\\""', 'say "hi"'),
        ("params.p = 'a\\\\b'", "a\\b"),
        ("params.p = 'C:\\temp'", "C:\\temp"),  # other backslashes are kept
        ("params.p LIKE 'a\\_b'", "a\\_b"),  # LIKE sees the escape
        ("params.p = 'a\"b'", 'a"b'),
        ('params.p = "a\'b"', "a'b"),
        ("params.p = ''", ""),
        ("params.p = 'AND OR NOT ; -- /* */ ( )'", "AND OR NOT ; -- /* */ ( )"),
        ("params.p = 'ünïcödé ✓'", "ünïcödé ✓"),
    ],
)
def test_quoted_values(text, value):
    assert one(text).value == value


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("params.`a%b` = 'x'", "a%b"),
        ("params.`a_b` = 'x'", "a_b"),
        ("params.`a\\\\b` = 'x'", "a\\b"),
        ("params.a_b = 'x'", "a_b"),
        ("params.`with ``tick` = 'x'", "with `tick"),
    ],
)
def test_keys_with_special_characters(text, key):
    assert one(text).key == key


# ---------------------------------------------------------------------------------------------
# Refusals for runs (§5.8)

RUN_REJECTED = [
    ("metrics.m > 0.1 OR params.p = '1'", 'Invalid clause(s) in filter string: "OR'),
    ("NOT params.p = '1'", "Invalid clause(s) in filter string: 'NOT'"),
    ("params.p = 'a' AND (params.q = 'b')", 'Invalid clause(s) in filter string: "(params.q'),
    ("(params.p = 'a')", "Invalid clause(s)"),
    ("metrics.m BETWEEN 0 AND 1", "BETWEEN"),
    ("metrics.m > 0.1;", "Invalid clause(s) in filter string: ';'"),
    ("metrics.m > 0.1; metrics.m < 1", "Invalid clause(s)"),
    ("metrics.m = '0.5'", "Expected numeric value type for metric. Found '0.5'"),
    ("params.p = 1", "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 1"),
    ("tags.t = 1.5", "Expected a quoted string value for tag"),
    ("params.p > '1'", "Invalid comparator '>' not one of"),
    ("params.p == '1'", "Invalid comparator '=='"),
    ("params.p <> '1'", "Invalid comparator '<>'"),
    ("params.p NOT LIKE '1'", "Invalid comparator 'NOT LIKE'"),
    ("tags.t IN ('v')", "Invalid comparator 'IN'"),
    ("attributes.status IN ('FINISHED')", "Only ['run_id'] attributes support comparison"),
    ("run_name NOT IN ('x')", "Only ['run_id'] attributes"),
    (
        "attributes.start_time = '1'",
        "Expected numeric value type for numeric attribute: start_time",
    ),
    ("attributes.start_time LIKE '1%'", "Invalid comparator 'LIKE'"),
    ("metrics.m LIKE '1%'", "Invalid comparator 'LIKE'"),
    ("foo.bar = 'x'", "Invalid entity type 'foo'. Valid values are ['metric', 'parameter'"),
    ("METRICS.m > 1", "Invalid entity type 'METRICS'"),
    ("attributes.nope = 'x'", "Invalid attribute key 'nope' specified. Valid keys are"),
    ("lifecycle_stage = 'active'", "Invalid attribute key 'lifecycle_stage'"),
    ("metrics.m IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params, not for"),
    ("end_time IS NULL", "IS NULL / IS NOT NULL is only supported for tags and params"),
    ("status IS NOT NULL", "IS NULL / IS NOT NULL is only supported"),
    ("status = FINISHED", "Parameter value is either not quoted or unidentified quote types"),
    ("run_id IN ()", "expected a non-empty list of string values, but got empty list"),
    ("run_id IN (1, 2)", "expected a list of quoted string values"),
    ("run_id IN 'a'", "Expected a list of quoted string values after IN"),
    ("run_id = ('a')", "only allowed with IN and NOT IN"),
    ("run_id IN ('a' 'b')", "Expected ',' or ')'"),
    ("run_id IN ('a',", "Invalid clause(s)"),
    ("datasets.foo = 'x'", "Invalid dataset key 'foo' specified. Valid keys are"),
    ("datasets.name IS NULL", "IS NULL / IS NOT NULL is only supported"),
    ("params.p = 'unterminated", "unterminated ' quote"),
    ('params.p = "unterminated', 'unterminated " quote'),
    ("params.`unterminated = 'x'", "unterminated ` quote"),
    ("params.p", "Expected a comparator"),
    ("params.p =", "Expected a value"),
    ("params.p = 'a' AND", "ends with AND"),
    ("params.p = 'a' AND AND params.q = 'b'", "Invalid clause(s)"),
    ("params.p = 'a' params.q = 'b'", "Invalid clause(s)"),
    ("= 'a'", "Invalid clause(s)"),
    ("params.p IS 'a'", "Expected a comparator"),
]


@pytest.mark.parametrize(("text", "message"), RUN_REJECTED)
def test_run_filters_rejected(text, message):
    with pytest.raises(InvalidParameterValue) as info:
        run_search.filter_runs(Run.objects.none(), text)
    assert message in info.value.message, info.value.message
    assert info.value.status == 400


# ---------------------------------------------------------------------------------------------
# Attack-shaped input (security.md §2.6): a 400 naming the problem, quickly, never a crash.

ATTACKS = [
    ("params.x = 'y' OR 1=1", "Invalid clause(s)"),
    ("params.x = 'y'; DROP TABLE runs; --", "Invalid clause(s) in filter string: '; DROP"),
    ("params.x = 'y\\' OR 1=1 --", "unterminated ' quote"),
    ("tags.\\`mlflow.user\\` = 'a'", "Invalid clause(s)"),
    ("attributes.run_id IN ('a', (SELECT 1))", "Invalid clause(s)"),
    ("metrics.acc > NaN", "not quoted"),
    ("metrics.acc > inf", "not quoted"),
    ("metrics.acc > 'NaN'", "Expected numeric value type for metric"),
    ("params.x = 'y' /* */", "Invalid clause(s)"),
    ("params.x = 'y' -- comment", "Invalid clause(s)"),
    ("params.x = \u2019y\u2019", "not quoted"),
    ("params.x = \u201cy\u201d", "not quoted"),
    ("params.x = 'y\" AND 1=1", "unterminated ' quote"),
    ("`params.x = 'y'", "unterminated ` quote"),
    ("params.x = 'a' UNION SELECT * FROM auth_user", "Invalid clause(s)"),
    ("foo.bar = 1", "Invalid entity type 'foo'"),
    ("params.x LIKE '" + "%a" * 11 + "%b'", "at most 10 '%'"),
    ("params.x ILIKE '" + "_%" * 11 + "'", "at most 10 '%'"),
    ("params.x LIKE '" + "_" * 101 + "'", "100 '_' wildcards"),
    ("params.x = '" + "a" * 100_000 + "'", "filter too long"),
    (" AND ".join(["metrics.m > 0"] * 1000), "at most 100 clauses"),
    (" AND ".join(["params.x = 'y'"] * 101), "at most 100 clauses"),
]


@pytest.mark.parametrize(("text", "message"), ATTACKS, ids=lambda v: str(v)[:40])
def test_attacks_are_refused_quickly(text, message):
    start = time.perf_counter()
    with pytest.raises(InvalidParameterValue) as info:
        run_search.filter_runs(Run.objects.none(), text)
    assert time.perf_counter() - start < 1.0
    assert message in info.value.message, info.value.message


def test_limits_are_what_the_docs_say():
    assert search_grammar.MAX_FILTER_LENGTH == 20_000
    assert search_grammar.MAX_CLAUSES == 100
    assert search_grammar.MAX_LIKE_PERCENT == 10
    # Just within the limits is accepted.
    assert len(runs(" AND ".join(["params.x = 'y'"] * 100))) == 100
    assert one("params.x LIKE '" + "%a" * 10 + "'").comparator == "LIKE"
    assert one("params.x LIKE '%%%%a'").value == "%%%%a"  # consecutive % count once
    run_search.filter_runs(Run.objects.none(), "params.x LIKE '" + "%%" * 20 + "'")
    # Escaped wildcards are literal characters, not wildcards.
    run_search.filter_runs(Run.objects.none(), "params.x LIKE '" + "\\%" * 50 + "'")


# ---------------------------------------------------------------------------------------------
# Experiments (§5.3)

EXPERIMENT_REJECTED = [
    ("params.p = 'x'", "Invalid entity type 'params'. Valid entity types are ('attribute'"),
    ("metrics.m > 1", "Invalid entity type 'metrics'"),
    ("lifecycle_stage = 'active'", "Invalid attribute key 'lifecycle_stage' specified"),
    ("name IN ('x')", "Only ['experiment_id'] attributes support comparison with a list"),
    ("experiment_id = 1", "Expected a quoted string value for attributes"),
    ("experiment_id = 1", "Got value 1"),
    ("name = x", "not quoted"),
    ("creation_time = '1'", "Expected numeric value type for numeric attribute: creation_time"),
    ("creation_time LIKE '1%'", "Invalid comparator 'LIKE'"),
    ("name > 'a'", "Invalid comparator '>'"),
    ("tags.k IN ('a')", "Expected a quoted string value for tag"),
    ("tags.k > 'a'", "Invalid comparator '>'"),
    ("name IS NULL", "IS NULL / IS NOT NULL is only supported for tags"),
    ("name = 'x' OR name = 'y'", "Invalid clause(s)"),
]


@pytest.mark.parametrize(("text", "message"), EXPERIMENT_REJECTED)
def test_experiment_filters_rejected(text, message):
    with pytest.raises(InvalidParameterValue) as info:
        experiment_search.filter_experiments(Experiment.objects.none(), text)
    assert message in info.value.message, info.value.message


# ---------------------------------------------------------------------------------------------
# Logged models (§5.6)

LOGGED_MODEL_REJECTED = [
    ("status = 'LOGGED_MODEL_READY'", "Unknown model status in filter: 'LOGGED_MODEL_READY'"),
    ("status IN ('READY', 'DONE')", "Unknown model status in filter: 'DONE'"),
    ("name = 'a' OR name = 'b'", "Invalid clause(s)"),
    ("name = 'a' OR name = 'b'", "joined by AND"),
    ("metric.rmse < 1", "Invalid entity type 'metric'"),
    ("tag.k = 'v'", "Invalid entity type 'tag'"),
    ("attribute.name = 'x'", "Invalid entity type 'attribute'"),
    ("datasets.name = 'x'", "Invalid entity type 'datasets'"),
    ("tags.k IS NULL", "IS NULL / IS NOT NULL is not supported for logged models"),
    ("metrics.rmse < '1'", "Expected numeric value type for metric"),
    ("metrics.rmse LIKE '1'", "Invalid comparator 'LIKE'"),
    ("name > 'a'", "Invalid comparator '>'"),
    ("nope = 'x'", "Invalid attribute key 'nope' for logged models"),
    ("creation_time > '1'", "Expected numeric value type"),
    ("name = 1", "Expected a quoted string value"),
]


@pytest.mark.parametrize(("text", "message"), LOGGED_MODEL_REJECTED)
def test_logged_model_filters_rejected(text, message):
    with pytest.raises(InvalidParameterValue) as info:
        logged_model_search.filter_logged_models(LoggedModel.objects.none(), text)
    assert message in info.value.message, info.value.message


@pytest.mark.parametrize(
    "datasets", [["eval"], [{"dataset_digest": "x"}], [{"dataset_name": 1}], "eval"]
)
def test_logged_model_datasets_argument_is_checked(datasets):
    with pytest.raises(InvalidParameterValue, match="dataset_name"):
        logged_model_search.filter_logged_models(LoggedModel.objects.none(), None, datasets)


# ---------------------------------------------------------------------------------------------
# Registry (§5.4, §5.5): parsed here, compiled by the registry app


def test_registered_model_filters_parse():
    assert registry_search.parse_registered_model_filter("name = 'm'") == [
        Comparison("attribute", "name", "=", "m")
    ]
    assert registry_search.parse_registered_model_filter("name ILIKE 'M%'")[0].comparator == "ILIKE"
    assert registry_search.parse_registered_model_filter("name IN ('m','x')")[0].value == ("m", "x")
    assert registry_search.parse_registered_model_filter("name NOT IN ('m')")[0].value == ("m",)
    assert registry_search.parse_registered_model_filter("tag.`rk` LIKE 'r%'") == [
        Comparison("tag", "rk", "LIKE", "r%")
    ]
    (prompt,) = registry_search.parse_registered_model_filter(
        "tags.`mlflow.prompt.is_prompt` != 'true'"
    )
    assert prompt == Comparison("tag", "mlflow.prompt.is_prompt", "!=", "true")
    assert search_sql.is_prompt_exclusion(prompt)
    (also,) = registry_search.parse_registered_model_filter(
        "tags.`mlflow.prompt.is_prompt` = 'false'"
    )
    assert search_sql.is_prompt_exclusion(also)
    for text in (
        "tags.`mlflow.prompt.is_prompt` = 'true'",
        "tags.other != 'true'",
        "name != 'true'",
    ):
        assert not search_sql.is_prompt_exclusion(
            registry_search.parse_registered_model_filter(text)[0]
        )


def test_model_version_filters_parse():
    parse = registry_search.parse_model_version_filter
    assert parse("name = 'm'") == [Comparison("attribute", "name", "=", "m")]
    assert parse("run_id = 'abc'") == [Comparison("attribute", "run_id", "=", "abc")]
    assert parse("run_id IN ('a','b')")[0].value == ("a", "b")
    assert parse("source_path LIKE 'models:/%'")[0].key == "source_path"
    assert parse("version_number > 1") == [Comparison("attribute", "version_number", ">", 1.0)]
    assert parse("version_number = '3'") == [Comparison("attribute", "version_number", "=", 3.0)]
    assert [c.key for c in parse("name = 'm' AND version_number >= 2")] == [
        "name",
        "version_number",
    ]
    assert parse("tags.k = 'v'") == [Comparison("tag", "k", "=", "v")]


REGISTRY_REJECTED = [
    ("registered_model", "creation_timestamp > 0", "Invalid attribute key 'creation_timestamp'"),
    ("registered_model", "creation_timestamp > 0", "Valid keys are '{'name'}'"),
    ("registered_model", "run_id = 'a'", "Invalid attribute key 'run_id'"),
    ("registered_model", "tags.k IS NULL", "IS NULL / IS NOT NULL is not supported for registered"),
    ("registered_model", "tags.k IN ('a')", "Invalid comparator 'IN'"),
    ("registered_model", "params.k = 'a'", "Invalid entity type 'params'"),
    ("registered_model", "name = 'a' OR name = 'b'", "Invalid clause(s)"),
    ("model_version", "tags.k IS NOT NULL", "IS NULL / IS NOT NULL is not supported for model"),
    ("model_version", "current_stage = 'Production'", "Invalid attribute key 'current_stage'"),
    ("model_version", "version = 1", "Invalid clause(s) in filter string: 'version, =, 1'"),
    ("model_version", "version_number = 'x'", "Expected an integer value for version_number"),
    ("model_version", "version_number > 1.5", "Expected an integer value for version_number"),
    ("model_version", "version_number > 1e30", "Expected an integer value for version_number"),
    ("model_version", "version_number LIKE '1'", "Invalid comparator 'LIKE'"),
    ("model_version", "name = m", "not quoted"),
]


@pytest.mark.parametrize(("entity", "text", "message"), REGISTRY_REJECTED)
def test_registry_filters_rejected(entity, text, message):
    parse = (
        registry_search.parse_registered_model_filter
        if entity == "registered_model"
        else registry_search.parse_model_version_filter
    )
    with pytest.raises(InvalidParameterValue) as info:
        parse(text)
    assert message in info.value.message, info.value.message


# ---------------------------------------------------------------------------------------------
# order_by


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("metrics.m DESCENDING", "Invalid ordering key in order_by clause"),
        ("attributes.status desc extra", "Could not be parsed"),
        ("metrics.acc DESC; DROP TABLE runs", "Could not be parsed"),
        ("datasets.name", "Invalid order_by entity"),
        ("foo.bar", "Invalid order_by entity"),
        ("`Run name`", "Invalid order_by key 'Run name'"),
        ("attributes.nope", "Invalid order_by key 'nope'"),
        ("", "Invalid order_by clause"),
        ("   ", "Invalid order_by clause"),
        ("'quoted'", "Could not be parsed"),
    ],
)
def test_run_order_by_rejected(clause, message):
    with pytest.raises(InvalidParameterValue) as info:
        run_search.order_runs(Run.objects.none(), [clause])
    assert message in info.value.message, info.value.message


@pytest.mark.parametrize(
    "clauses",
    [
        ["metrics.m", "metric.m DESC"],
        ["start_time", "created DESC"],
        ["run_name", "attributes.run_name"],
        ["tags.t", "tag.t"],
    ],
)
def test_run_order_by_duplicates_rejected(clauses):
    with pytest.raises(InvalidParameterValue, match="duplicate"):
        run_search.order_runs(Run.objects.none(), clauses)


def test_order_by_count_is_capped():
    clauses = [f"metrics.m{i}" for i in range(21)]
    with pytest.raises(InvalidParameterValue, match="At most 20"):
        run_search.order_runs(Run.objects.none(), clauses)
    run_search.order_runs(Run.objects.none(), clauses[:20])


def test_run_order_by_sql_appends_the_tie_breakers():
    sql = str(run_search.order_runs(Run.objects.all(), ["metrics.m asc"]).query)
    assert sql.rstrip().endswith('"start_time" DESC, "tracking_run"."run_id" ASC')
    sql = str(run_search.order_runs(Run.objects.all(), ["start_time ASC"]).query)
    assert sql.count("start_time") >= 1 and '"start_time" DESC' not in sql


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("tags.k", "Invalid order_by entity: tag"),
        ("tag.k", "Invalid order_by entity: tag"),
        ("params.k", "Invalid order_by entity: param"),
        ("lifecycle_stage", "Invalid order_by key 'lifecycle_stage'"),
        ("name DESCENDING", "Invalid ordering key"),
        ("name asc x", "Could not be parsed"),
    ],
)
def test_experiment_order_by_rejected(clause, message):
    with pytest.raises(InvalidParameterValue) as info:
        experiment_search.order_experiments(Experiment.objects.none(), [clause])
    assert message in info.value.message, info.value.message
    with pytest.raises(InvalidParameterValue, match="duplicate"):
        experiment_search.order_experiments(
            Experiment.objects.none(), ["name", "attributes.name DESC"]
        )


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"field_name": "params.lr"}], "Only metrics are supported"),
        ([{"field_name": "tags.k"}], "Only metrics are supported"),
        ([{"field_name": "nope"}], "Invalid order_by field 'nope'"),
        ([{"ascending": True}], "needs a 'field_name'"),
        (["name"], "needs a 'field_name'"),
        ([{"field_name": "name"}, {"field_name": "attributes.name"}], "duplicate"),
    ],
)
def test_logged_model_order_by_rejected(items, message):
    with pytest.raises(InvalidParameterValue) as info:
        logged_model_search.order_logged_models(LoggedModel.objects.none(), items)
    assert message in info.value.message, info.value.message


def test_registry_order_by():
    parse = registry_search.parse_registry_order_by
    assert parse([], "registered_model") == []
    assert parse(["name"], "registered_model") == [("name", True)]
    assert parse(["timestamp DESC", "name asc"], "registered_model") == [
        ("last_updated_timestamp", False),
        ("name", True),
    ]
    assert parse(["last_updated_timestamp DESC"], "registered_model") == [
        ("last_updated_timestamp", False)
    ]
    assert parse(["version_number DESC", "creation_timestamp"], "model_version") == [
        ("version_number", False),
        ("creation_timestamp", True),
    ]
    # The mapping form returns the caller's columns.
    assert parse(["name DESC"], {"name": "registered_model__name"}) == [
        ("registered_model__name", False)
    ]
    for clauses, message in [
        (["creation_timestamp DESC"], "Invalid order by key"),
        (["tags.k"], "Invalid order by key"),
        (["name", "name DESC"], "duplicate"),
        (["timestamp", "last_updated_timestamp"], "duplicate"),
        (["name DESCENDING"], "Invalid ordering key"),
        (["name desc extra"], "Could not be parsed"),
    ]:
        with pytest.raises(InvalidParameterValue) as info:
            parse(clauses, "registered_model")
        assert message in info.value.message, (clauses, info.value.message)
    with pytest.raises(InvalidParameterValue, match="Invalid order by key"):
        parse(["version"], "model_version")

"""The MLflow search filter grammar (reference/mlflow-protocol.md §5), parsed here and compiled
to ORM conditions that run as SQL: no row is ever loaded to be filtered in Python.

A filter is a conjunction of `<identifier> <comparator> <value>` clauses joined by AND (any
case). The tokenizer (`parse_filter`) knows nothing about entities; each search then checks
the clauses against its own grammar and compiles them:

* runs: `filter_runs`, `order_runs` (§5.2)
* experiments: `filter_experiments`, `order_experiments` (§5.3)
* logged models: `filter_logged_models`, `order_logged_models` (§5.6)
* registry (compiled by the registry app): `parse_registered_model_filter`,
  `parse_model_version_filter` -> `list[Comparison]`, `parse_registry_order_by`.

Compiling a registry `Comparison` (the registry owns its models, so it does this itself):

    for c in parse_model_version_filter(text):
        if c.entity == "tag":
            qs = qs.filter(registry_tag_condition(ModelVersionTag, "version", c))
        elif c.key == "version_number":
            qs = qs.filter(number_condition("version", c.comparator, c.value, integer=True))
        else:  # name, run_id, source_path
            qs = qs.filter(string_condition(column_for[c.key], c.comparator, c.value))

`string_condition(field, comparator, value)` handles `= != LIKE ILIKE IN NOT IN`;
`number_condition` handles `= != < <= > >=`; `key_value_condition` is the correlated
EXISTS for tag/param tables; `registry_tag_condition` adds the prompt special case
(`is_prompt_exclusion`): ``tags.`mlflow.prompt.is_prompt` != 'true'`` (and `= 'false'`) also
match models that do not have the tag at all, unlike every other tag comparison.

Semantics chosen where MLflow is vague or database-dependent:

* LIKE is case-sensitive on both databases: `GLOB` on SQLite (its LIKE ignores ASCII case),
  `LIKE` on PostgreSQL. ILIKE is `LIKE` on SQLite (ASCII-only case folding, as MLflow's own
  SQLite store) and `ILIKE` on PostgreSQL. `%` and `_` are wildcards; a backslash makes the
  next character literal (`'a\\_b'` in the filter text, or `'a\\_b'` written as `a\\_b` once
  unquoted). Neither engine backtracks exponentially, unlike a regular expression would.
* Quoted strings: a doubled quote (`'it''s'`) or a backslash before the quote (`'it\\'s'`)
  is a literal quote and `\\\\` is one backslash; other backslashes are kept as they are.
* Metrics compare the run's latest value (`LatestMetric`). A NaN latest value matches only
  `!=` (NaN is unequal to everything and not ordered); ±infinity compares as usual.
* A run (experiment, model) lacking a param/tag never matches a comparison on it, `!=`
  included; `IS NULL` selects those.
* Integer columns (times, ids) compared with fractional or out-of-range numbers are
  compared exactly (`start_time > 1.5` means `>= 2`), never truncated or overflowed.

Limits (each refusal is a 400 `INVALID_PARAMETER_VALUE` saying what the limit is):
`MAX_FILTER_LENGTH` characters, `MAX_CLAUSES` clauses, `MAX_LIKE_PERCENT` `%` and
`MAX_LIKE_UNDERSCORE` `_` wildcards per pattern, `MAX_SUBQUERIES` distinct metric/param/tag
keys and dataset clauses (clauses on the same key share one EXISTS; PostgreSQL's planning time
explodes with the number of semi-joins), `MAX_ORDER_BY` order_by entries. List sizes are
bounded by the filter length (about 5,000 values at most), well under SQLite's bound-parameter
limit. Values are always bound parameters."""

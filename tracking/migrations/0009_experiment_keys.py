"""The keys logged to each experiment's active runs (tracking.ExperimentKey), kept by
triggers: on the tables that receive a key first (the latest metric of a new (run, key), a
param, a tag), per inserted row, so that a log write bringing no new key (an upsert that
updates) fires nothing; and on a run's lifecycle change (deleted: its keys no other active
run of the experiment has go; restored: they come back). A key is added only when the
experiment does not have it yet, without a unique constraint, so that concurrent writers
never wait on each other (two may add the same key at once; readers take distinct keys).
Existing keys are filled in."""

import django.db.models.deletion
from django.db import migrations, models

TABLES = {"tracking_latestmetric": "metric", "tracking_param": "param", "tracking_runtag": "tag"}


def _run_keys(run: str) -> str:
    """(kind, key) of every row of the run `run` (a column reference)."""
    return " UNION ALL ".join(
        f"SELECT '{kind}' AS kind, key FROM {table} WHERE run_id = {run}"
        for table, kind in TABLES.items()
    )


def _add_key(kind: str, key: str) -> str:
    """Add the key of an inserted row (NEW) to its run's experiment, if the run is active and
    the experiment does not have it."""
    return (
        "INSERT INTO tracking_experimentkey (experiment_id, kind, key) "
        f"SELECT r.experiment_id, {kind}, {key} FROM tracking_run r "
        "WHERE r.run_id = NEW.run_id AND r.lifecycle_stage = 'active' AND NOT EXISTS ("
        "SELECT 1 FROM tracking_experimentkey e WHERE e.experiment_id = r.experiment_id "
        f"AND e.kind = {kind} AND e.key = {key});"
    )


def _restore_keys() -> str:
    """A run (NEW) made active again brings back its keys."""
    return (
        "INSERT INTO tracking_experimentkey (experiment_id, kind, key) "
        f"SELECT DISTINCT NEW.experiment_id, k.kind, k.key FROM ({_run_keys('NEW.run_id')}) k "
        "WHERE NOT EXISTS (SELECT 1 FROM tracking_experimentkey e WHERE "
        "e.experiment_id = NEW.experiment_id AND e.kind = k.kind AND e.key = k.key);"
    )


def _drop_keys() -> str:
    """A run (NEW) deleted takes out its keys that no other active run of its experiment has."""
    return " ".join(
        "DELETE FROM tracking_experimentkey WHERE experiment_id = NEW.experiment_id "
        f"AND kind = '{kind}' AND key IN (SELECT key FROM {table} WHERE run_id = NEW.run_id) "
        f"AND NOT EXISTS (SELECT 1 FROM {table} t JOIN tracking_run r ON r.run_id = t.run_id "
        "WHERE t.key = tracking_experimentkey.key AND r.experiment_id = NEW.experiment_id "
        "AND r.lifecycle_stage = 'active');"
        for table, kind in TABLES.items()
    )


# Row triggers: an upsert that updates (a point of a key the run has) inserts nothing and
# fires nothing, so the hot log writes pay only when a run logs a key for the first time.
POSTGRES_FUNCTIONS = [
    f"""
CREATE FUNCTION tracking_experimentkey_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_add_key("TG_ARGV[0]", "NEW.key")}
    RETURN NULL;
END
$$""",
    f"""
CREATE FUNCTION tracking_experimentkey_restored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_restore_keys()}
    RETURN NULL;
END
$$""",
    f"""
CREATE FUNCTION tracking_experimentkey_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_drop_keys()}
    RETURN NULL;
END
$$""",
]
RESTORED = "NEW.lifecycle_stage = 'active' AND OLD.lifecycle_stage <> 'active'"
DELETED = "NEW.lifecycle_stage <> 'active' AND OLD.lifecycle_stage = 'active'"


def _sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        statements = [
            *POSTGRES_FUNCTIONS,
            *(
                f"CREATE TRIGGER {table}_keys AFTER INSERT ON {table} FOR EACH ROW "
                f"EXECUTE FUNCTION tracking_experimentkey_add('{kind}')"
                for table, kind in TABLES.items()
            ),
            "CREATE TRIGGER tracking_run_keys_restored AFTER UPDATE OF lifecycle_stage "
            f"ON tracking_run FOR EACH ROW WHEN ({RESTORED}) "
            "EXECUTE FUNCTION tracking_experimentkey_restored()",
            "CREATE TRIGGER tracking_run_keys_deleted AFTER UPDATE OF lifecycle_stage "
            f"ON tracking_run FOR EACH ROW WHEN ({DELETED}) "
            "EXECUTE FUNCTION tracking_experimentkey_deleted()",
        ]
    else:
        statements = [
            *(
                f"CREATE TRIGGER {table}_keys AFTER INSERT ON {table} BEGIN "
                f"{_add_key(repr(kind), 'NEW.key')} END"
                for table, kind in TABLES.items()
            ),
            "CREATE TRIGGER tracking_run_keys_restored AFTER UPDATE OF lifecycle_stage "
            f"ON tracking_run WHEN {RESTORED} BEGIN {_restore_keys()} END",
            "CREATE TRIGGER tracking_run_keys_deleted AFTER UPDATE OF lifecycle_stage "
            f"ON tracking_run WHEN {DELETED} BEGIN {_drop_keys()} END",
        ]
    statements += [
        "INSERT INTO tracking_experimentkey (experiment_id, kind, key) "
        f"SELECT DISTINCT r.experiment_id, '{kind}', t.key FROM {table} t "
        "JOIN tracking_run r ON r.run_id = t.run_id WHERE r.lifecycle_stage = 'active'"
        for table, kind in TABLES.items()
    ]
    return statements


TRIGGERS = [f"{table}_keys" for table in TABLES] + [
    "tracking_run_keys_restored",
    "tracking_run_keys_deleted",
]


def create_triggers(apps, schema_editor):
    for statement in _sql(schema_editor.connection.vendor):
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name in TRIGGERS:
        table = "tracking_run" if name.startswith("tracking_run_") else name[: -len("_keys")]
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else "")
        )
    if postgres:
        for function in ("add", "restored", "deleted"):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS tracking_experimentkey_{function}()")


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0008_run_lookups_through_unique_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExperimentKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("metric", "Metric"), ("param", "Param"), ("tag", "Tag")],
                        max_length=6,
                    ),
                ),
                ("key", models.CharField(max_length=250)),
                (
                    "experiment",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tracking.experiment",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["experiment", "kind", "key"], name="experiment_key_idx")
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]

"""A metric point's run is checked by triggers instead of a foreign-key constraint.

PostgreSQL checked the constraint once per inserted point (an index probe and a row lock of
the run each time): about half of what it spent storing a log-batch of 1,000 points. The
triggers keep the same rule in the database for every path (the services, bulk inserts,
the importer, raw SQL):

- a point may only be written for an existing run: on PostgreSQL checked once per
  statement over its new rows, after locking their runs FOR KEY SHARE as the constraint
  did, so that a run cannot be deleted under points being written; on SQLite per row;
- a run that still has points cannot be deleted (the services delete the points first, as
  the model's CASCADE does).

Both raise an integrity error, as the constraint did."""

import django.db.models.deletion
from django.db import migrations, models

POSTGRES = [
    """
CREATE FUNCTION tracking_metric_run_exists() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing text;
BEGIN
    -- Lock first: a run deleted meanwhile is then seen as missing by the check below.
    PERFORM 1 FROM tracking_run r WHERE r.run_id IN (SELECT run_id FROM new_points)
        FOR KEY SHARE;
    SELECT n.run_id INTO missing FROM (SELECT DISTINCT run_id FROM new_points) n
        WHERE NOT EXISTS (SELECT 1 FROM tracking_run r WHERE r.run_id = n.run_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'metric point of run ' || missing || ', which does not exist';
    END IF;
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER tracking_metric_run_exists AFTER INSERT ON tracking_metric "
    "REFERENCING NEW TABLE AS new_points FOR EACH STATEMENT "
    "EXECUTE FUNCTION tracking_metric_run_exists()",
    "CREATE TRIGGER tracking_metric_run_exists_update AFTER UPDATE ON tracking_metric "
    "REFERENCING NEW TABLE AS new_points FOR EACH STATEMENT "
    "EXECUTE FUNCTION tracking_metric_run_exists()",
    """
CREATE FUNCTION tracking_run_without_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_runs o
               WHERE EXISTS (SELECT 1 FROM tracking_metric m WHERE m.run_id = o.run_id)) THEN
        RAISE foreign_key_violation
            USING MESSAGE = 'a run cannot be deleted while it has metric points';
    END IF;
    RETURN NULL;
END
$$""",
    "CREATE TRIGGER tracking_run_without_metrics AFTER DELETE ON tracking_run "
    "REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT "
    "EXECUTE FUNCTION tracking_run_without_metrics()",
]
_NO_RUN = "NOT EXISTS (SELECT 1 FROM tracking_run WHERE run_id = NEW.run_id)"
SQLITE = [
    f"CREATE TRIGGER tracking_metric_run_exists BEFORE INSERT ON tracking_metric "
    f"WHEN {_NO_RUN} BEGIN SELECT RAISE(ABORT, "
    "'FOREIGN KEY constraint failed: metric point of a run that does not exist'); END",
    f"CREATE TRIGGER tracking_metric_run_exists_update BEFORE UPDATE OF run_id "
    f"ON tracking_metric WHEN {_NO_RUN} BEGIN SELECT RAISE(ABORT, "
    "'FOREIGN KEY constraint failed: metric point of a run that does not exist'); END",
    "CREATE TRIGGER tracking_run_without_metrics BEFORE DELETE ON tracking_run "
    "WHEN EXISTS (SELECT 1 FROM tracking_metric WHERE run_id = OLD.run_id) "
    "BEGIN SELECT RAISE(ABORT, "
    "'FOREIGN KEY constraint failed: a run cannot be deleted while it has metric points'); END",
]
TRIGGERS = {
    "tracking_metric_run_exists": "tracking_metric",
    "tracking_metric_run_exists_update": "tracking_metric",
    "tracking_run_without_metrics": "tracking_run",
}


def create_triggers(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRES if postgres else SQLITE:
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, table in TRIGGERS.items():
        schema_editor.execute(
            f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else "")
        )
    if postgres:
        for function in ("tracking_metric_run_exists", "tracking_run_without_metrics"):
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0010_lifecycle_cache_version"),
    ]

    operations = [
        migrations.AlterField(
            model_name="metric",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="metric_history",
                to="tracking.run",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]

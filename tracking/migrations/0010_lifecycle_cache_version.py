"""Triggers that give the `lifecycle` cache family (core.process_cache) a new version in the
statement that changes what the per-process artifact-owner caches hold
(tracking.artifact_locations): a run's or logged model's lifecycle stage, experiment or
artifact directory (a logged model's source run too), or the row's deletion. Kept in the
database so that every path bumps it: the services, a queryset `update`, the admin, the
importer's upserts, raw SQL.

PostgreSQL: one bump per statement (an experiment deleted with 100,000 runs writes the version
once). SQLite has no statement triggers: one per changed row, only when a watched value
really changed."""

from django.db import migrations

FAMILY = "lifecycle"
WATCHED = {
    "tracking_run": ("lifecycle_stage", "experiment_id", "artifact_uri"),
    "tracking_loggedmodel": ("lifecycle_stage", "experiment_id", "artifact_uri", "source_run_id"),
}
# A new random version (compared for equality only, never ordered), as core.process_cache.bump
# writes; an upsert in case the row is missing (a flushed test database).
POSTGRES_FUNCTION = f"""
CREATE FUNCTION core_cacheversion_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core_cacheversion (name, version)
    VALUES (TG_ARGV[0], floor(random() * 4611686018427387903)::bigint + 1)
    ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END
$$"""
SQLITE_BUMP = (
    f"INSERT INTO core_cacheversion (name, version) VALUES ('{FAMILY}', "
    "abs(random() % 4611686018427387903) + 1) "
    "ON CONFLICT (name) DO UPDATE SET version = excluded.version;"
)


def _sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [POSTGRES_FUNCTION] + [
            f"CREATE TRIGGER {table}_lifecycle_version AFTER UPDATE OF {', '.join(columns)} "
            f"OR DELETE ON {table} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION core_cacheversion_bump('{FAMILY}')"
            for table, columns in WATCHED.items()
        ]
    statements = []
    for table, columns in WATCHED.items():
        changed = " OR ".join(f"OLD.{column} IS NOT NEW.{column}" for column in columns)
        statements += [
            f"CREATE TRIGGER {table}_lifecycle_version AFTER UPDATE OF {', '.join(columns)} "
            f"ON {table} WHEN {changed} BEGIN {SQLITE_BUMP} END",
            f"CREATE TRIGGER {table}_lifecycle_version_deleted AFTER DELETE ON {table} "
            f"BEGIN {SQLITE_BUMP} END",
        ]
    return statements


def create_triggers(apps, schema_editor):
    for statement in _sql(schema_editor.connection.vendor):
        schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for table in WATCHED:
        for name in (f"{table}_lifecycle_version", f"{table}_lifecycle_version_deleted"):
            schema_editor.execute(
                f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgres else "")
            )
    if postgres:
        schema_editor.execute("DROP FUNCTION IF EXISTS core_cacheversion_bump()")


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_lifecycle_version"),
        ("tracking", "0009_experiment_keys"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]

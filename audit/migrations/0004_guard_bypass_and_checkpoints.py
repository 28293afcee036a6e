"""The append-only guard, tightened on PostgreSQL.

0002 let any session that ran `SET custody.allow_audit_truncate = on` TRUNCATE the trail. The
exemption now also needs the database to be a test database (its name starts with `test_`,
as Django's and pytest-django's test databases do), and the signed checkpoints get the same
guard as the events. A role that owns the tables can still disable triggers: production
should run as a role that may only INSERT and SELECT (docs/audit.md)."""

from django.db import migrations

PG_GUARD = r"""
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    -- Test databases are emptied between tests with TRUNCATE: only a test database (named
    -- test_...) whose connection was opened with this setting (config/settings/test.py) may
    -- do that. Nothing may UPDATE or DELETE an event or a checkpoint.
    IF TG_OP = 'TRUNCATE'
        AND current_setting('custody.allow_audit_truncate', true) = 'on'
        AND current_database() LIKE 'test\_%%'
    THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '%% is append-only: %% refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE OR DELETE ON audit_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""

PG_GUARD_REVERSE = r"""
DROP TRIGGER IF EXISTS audit_checkpoint_no_update ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_auditcheckpoint;
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('custody.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: %% refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_GUARD)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_GUARD_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_checkpoints")]

    operations = [migrations.RunPython(install, remove)]

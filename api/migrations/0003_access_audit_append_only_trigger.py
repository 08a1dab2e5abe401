"""On PostgreSQL, the database itself refuses to update or delete access events and sealed audit
batches, whatever client asks (the ORM refuses events' changes too, on every database). TRUNCATE is
left to the table owner: tests use it to reset the database, and an operator with that power can
also drop the trigger, which ``manage.py verify_audit`` would then catch through the batch chain."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION api_access_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The access audit is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS api_accessevent_append_only ON api_accessevent;
CREATE TRIGGER api_accessevent_append_only
    BEFORE UPDATE OR DELETE ON api_accessevent
    FOR EACH ROW EXECUTE FUNCTION api_access_audit_refuse_change();
DROP TRIGGER IF EXISTS api_auditbatch_append_only ON api_auditbatch;
CREATE TRIGGER api_auditbatch_append_only
    BEFORE UPDATE OR DELETE ON api_auditbatch
    FOR EACH ROW EXECUTE FUNCTION api_access_audit_refuse_change();
"""
DROP = """
DROP TRIGGER IF EXISTS api_accessevent_append_only ON api_accessevent;
DROP TRIGGER IF EXISTS api_auditbatch_append_only ON api_auditbatch;
DROP FUNCTION IF EXISTS api_access_audit_refuse_change();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL is sent as it is (its RAISE format has a literal %, not a placeholder).
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("api", "0002_add_access_audit")]

    operations = [migrations.RunPython(create, drop)]

"""On PostgreSQL, the database itself refuses to update or delete ledger events, whatever client
asks (the ORM refuses too, on every database). TRUNCATE is left to the table owner: tests use it
to reset the database, and an operator with that power can also drop the trigger, which
``manage.py verify_ledger`` would then catch through the hash chain."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION consent_ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'The consent ledger is append-only: % on consent_ledgerevent is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS consent_ledger_append_only ON consent_ledgerevent;
CREATE TRIGGER consent_ledger_append_only
    BEFORE UPDATE OR DELETE ON consent_ledgerevent
    FOR EACH ROW EXECUTE FUNCTION consent_ledger_refuse_change();
"""
DROP = """
DROP TRIGGER IF EXISTS consent_ledger_append_only ON consent_ledgerevent;
DROP FUNCTION IF EXISTS consent_ledger_refuse_change();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None: the SQL is sent as it is (its RAISE format has a literal %, not a placeholder).
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]

"""The stock ledger is append-only: the database itself refuses UPDATE and DELETE on it."""

from django.db import migrations

POSTGRES_UP = """
CREATE FUNCTION inventory_stockmovement_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the stock ledger is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER inventory_stockmovement_append_only
    BEFORE UPDATE OR DELETE ON inventory_stockmovement
    FOR EACH ROW EXECUTE FUNCTION inventory_stockmovement_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER inventory_stockmovement_append_only ON inventory_stockmovement;
DROP FUNCTION inventory_stockmovement_append_only();
"""
SQLITE_UP = [
    """CREATE TRIGGER inventory_stockmovement_no_update BEFORE UPDATE ON inventory_stockmovement
       BEGIN SELECT RAISE(ABORT, 'the stock ledger is append-only'); END;""",
    """CREATE TRIGGER inventory_stockmovement_no_delete BEFORE DELETE ON inventory_stockmovement
       BEGIN SELECT RAISE(ABORT, 'the stock ledger is append-only'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER inventory_stockmovement_no_update;",
    "DROP TRIGGER inventory_stockmovement_no_delete;",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP)
    elif vendor == "sqlite":
        for statement in SQLITE_UP:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN)
    elif vendor == "sqlite":
        for statement in SQLITE_DOWN:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]

"""client registry generation: one row that every change to `clients` renews

Revision ID: 0009_client_registry_generation
Revises: 0008_session_bound_grants
Create Date: 2026-12-01 02:05:00

Processes keep the clients they have read (app/clients/cache.py) and ask
this one row, on every token, introspection and revocation request,
whether any client changed since. Triggers give it a new random value in
the transaction of the change, whoever makes the change: `flask clients`,
a migration or an operator's SQL. Random, not a counter: a database
restored from a backup, or made anew, must not come back to a value under
which a process kept other rows.

On SQLite, Alembic's batch mode copies `clients` into a new table and
drops the old one, and the triggers go with it. A later migration that
alters `clients` in batch mode must create them again (`create_triggers`
below); tests/test_client_cache.py fails if they are missing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_client_registry_generation"
down_revision = "0008_session_bound_grants"
branch_labels = None
depends_on = None

_SET = "UPDATE client_registry SET generation = {} WHERE id = 1"
# 128 random bits as 32 hex digits, from each database's own functions.
RENEW = {
    "postgresql": _SET.format("md5(random()::text || clock_timestamp()::text)"),
    "sqlite": _SET.format("lower(hex(randomblob(16)))"),
}
SQLITE_TRIGGERS = {
    "clients_inserted": "INSERT",
    "clients_updated": "UPDATE",
    "clients_deleted": "DELETE",
}


def create_triggers() -> None:
    """The triggers that renew client_registry.generation on any change to
    clients."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION client_registry_renew() RETURNS trigger"
            f" LANGUAGE plpgsql AS $$ BEGIN {RENEW[dialect]}; RETURN NULL; END $$"
        )
        # Per statement: one renewal per change, and TRUNCATE counts too.
        op.execute(
            "CREATE TRIGGER clients_changed"
            " AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON clients"
            " FOR EACH STATEMENT EXECUTE FUNCTION client_registry_renew()"
        )
        return
    # SQLite has row triggers only.
    for name, event in SQLITE_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON clients"
            f" BEGIN {RENEW[dialect]}; END"
        )


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS clients_changed ON clients")
        op.execute("DROP FUNCTION IF EXISTS client_registry_renew()")
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade():
    op.create_table(
        "client_registry",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_registry")),
    )
    op.execute("INSERT INTO client_registry (id, generation) VALUES (1, '')")
    op.execute(RENEW[op.get_bind().dialect.name])
    create_triggers()


def downgrade():
    drop_triggers()
    op.drop_table("client_registry")

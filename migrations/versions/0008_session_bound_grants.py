"""session-bound grants, session end causes, per-client refresh grace

Revision ID: 0008_session_bound_grants
Revises: 0007_signing_key_states
Create Date: 2026-11-30 12:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_session_bound_grants"
down_revision = "0007_signing_key_states"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "session_bound", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    # A grant made in a browser session without offline_access ends with that
    # session (OIDC Core §11); existing grants are classified the same way.
    op.execute(
        "UPDATE grants SET session_bound = "
        + ("true" if op.get_bind().dialect.name == "postgresql" else "1")
        + " WHERE session_sid IS NOT NULL"
        " AND (' ' || scope || ' ') NOT LIKE '% offline_access %'"
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("end_cause", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("ended_by_client_id", sa.String(length=64), nullable=True)
        )
        # The expiry sweep looks only at sessions not yet marked ended.
        batch_op.create_index(
            "ix_sessions_unended_expiry",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("ended_at IS NULL"),
            sqlite_where=sa.text("ended_at IS NULL"),
        )
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("refresh_grace_seconds", sa.Integer(), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("refresh_grace_seconds")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_unended_expiry")
        batch_op.drop_column("ended_by_client_id")
        batch_op.drop_column("end_cause")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("session_bound")

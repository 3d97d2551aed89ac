"""signing key states: pre-publication, revocation, a cluster-wide version

Revision ID: 0007_signing_key_states
Revises: 0006_code_redirect_uri_optional
Create Date: 2026-11-30 12:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007_signing_key_states"
down_revision = "0006_code_redirect_uri_optional"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("activates_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True)
        )
    # Keys made before pre-publication existed signed from their creation.
    op.execute("UPDATE signing_keys SET activates_at = created_at")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "activates_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
    # One row every process polls: bumped by every change to the key ring.
    op.create_table(
        "signing_key_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_key_state")),
    )
    op.execute("INSERT INTO signing_key_state (id, version) VALUES (1, 0)")


def downgrade():
    op.drop_table("signing_key_state")
    with op.batch_alter_table("signing_keys", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("activates_at")

"""authorization codes remember whether redirect_uri was sent

RFC 6749 §4.1.3: redirect_uri is required at /token only if it was included
in the authorization request, so a code made without one stores NULL rather
than the client's default.

Revision ID: 0006_code_redirect_uri_optional
Revises: 0005_upstream_sessions
Create Date: 2026-11-30 12:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006_code_redirect_uri_optional"
down_revision = "0005_upstream_sessions"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "redirect_uri", existing_type=sa.Text(), nullable=True
        )


def downgrade():
    # Codes live minutes: the ones made without redirect_uri are dropped.
    op.execute("DELETE FROM authorization_codes WHERE redirect_uri IS NULL")
    with op.batch_alter_table("authorization_codes", schema=None) as batch_op:
        batch_op.alter_column(
            "redirect_uri", existing_type=sa.Text(), nullable=False
        )

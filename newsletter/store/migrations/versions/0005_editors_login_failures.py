"""the desk: editors' accounts and failed logins

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "editors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("last_login_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failures_email", "login_failures", ["email", "at"], unique=False)
    op.create_index("ix_login_failures_ip", "login_failures", ["ip", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_ip", table_name="login_failures")
    op.drop_index("ix_login_failures_email", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_table("editors")

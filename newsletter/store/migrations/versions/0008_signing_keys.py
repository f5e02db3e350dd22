"""the secret key kept in the database: every process of a desk signs with the same key

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("retired_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("verify_until", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")

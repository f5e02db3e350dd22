"""consent evidence: sign-up rate limits, desk keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 23:25:14.248388
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_keys",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("mailed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_signup_attempts_address", ["address_hash", "at"], unique=False)
        batch_op.create_index("ix_signup_attempts_ip", ["ip_hash", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_signup_attempts_ip")
        batch_op.drop_index("ix_signup_attempts_address")

    op.drop_table("signup_attempts")
    op.drop_table("desk_keys")

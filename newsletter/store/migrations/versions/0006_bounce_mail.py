"""bounce mail: messages read once, and what they said about each delivery

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_mail",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("received_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("code", sa.String(length=20), nullable=True),
        sa.Column("diagnostic", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_bounce_mail_reader",
        "bounce_mail",
        ["subscriber_id", "kind", "received_at"],
        unique=False,
    )
    op.add_column("deliveries", sa.Column("outcome", sa.String(length=20), nullable=True))
    op.add_column("deliveries", sa.Column("outcome_detail", sa.Text(), nullable=True))
    op.add_column(
        "deliveries", sa.Column("outcome_at", newsletter.store.tables.UTCDateTime(), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("outcome_at")
        batch.drop_column("outcome_detail")
        batch.drop_column("outcome")
    op.drop_index("ix_bounce_mail_reader", table_name="bounce_mail")
    op.drop_table("bounce_mail")

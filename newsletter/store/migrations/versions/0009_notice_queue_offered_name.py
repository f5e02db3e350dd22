"""notices queued for a thread of their own; a sign-up's name kept apart until confirmed

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("offered_name", sa.String(length=300), nullable=True))
    op.create_table(
        "notice_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=300), server_default="", nullable=False),
        sa.Column("token", sa.Text(), server_default="", nullable=False),
        sa.Column("queued_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("next_try_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_until", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notice_queue_next_try_at", "notice_queue", ["next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_notice_queue_next_try_at", table_name="notice_queue")
    op.drop_table("notice_queue")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("offered_name")

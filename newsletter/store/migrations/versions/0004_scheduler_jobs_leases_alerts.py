"""the Friday scheduler: its job store, the send lease, editors' alerts

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("sent_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "day", name="uq_alerts_kind_day"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "scheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_scheduler_jobs_next_run_time", "scheduler_jobs", ["next_run_time"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_next_run_time", table_name="scheduler_jobs")
    op.drop_table("scheduler_jobs")
    op.drop_table("leases")
    op.drop_table("alerts")

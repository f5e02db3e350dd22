"""initial tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:11:32.748155
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("section", sa.String(length=200), server_default="", nullable=False),
        sa.Column("author", sa.String(length=300), server_default="", nullable=False),
        sa.Column("published_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("image_url", sa.String(length=2000), nullable=True),
        sa.Column("image_alt", sa.Text(), server_default="", nullable=False),
        sa.Column("source", sa.String(length=2000), server_default="hand", nullable=False),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("url"),
    )
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("send_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("subject", sa.Text(), server_default="", nullable=False),
        sa.Column("preheader", sa.Text(), server_default="", nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("appeal", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("approved_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("sent_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("send_date"),
    )
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("wording", sa.Text(), nullable=False),
        sa.Column("published_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address_hash"),
    )
    op.create_table(
        "issue_items",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
        ),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("issue_id", "article_id"),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=300), server_default="", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("bounce_count", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_version"],
            ["policy_versions.version"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index("ix_subscribers_status", ["status"], unique=False)

    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(length=100), nullable=True),
        sa.Column("policy_sha256", sa.String(length=64), nullable=True),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_events_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "deliveries",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=True),
        sa.Column("lease_until", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("updated_at", newsletter.store.tables.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
        ),
        sa.PrimaryKeyConstraint("issue_id", "subscriber_id"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_issue_status", ["issue_id", "status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_issue_status")

    op.drop_table("deliveries")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_subscriber_id"))

    op.drop_table("consent_events")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_status")

    op.drop_table("subscribers")
    op.drop_table("issue_items")
    op.drop_table("suppressions")
    op.drop_table("policy_versions")
    op.drop_table("issues")
    op.drop_table("articles")

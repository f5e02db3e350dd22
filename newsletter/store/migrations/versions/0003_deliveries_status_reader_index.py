"""deliveries: index (issue_id, status, subscriber_id) for taking batches in key order

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_issue_status")
        batch_op.create_index(
            "ix_deliveries_issue_status_reader", ["issue_id", "status", "subscriber_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_issue_status_reader")
        batch_op.create_index("ix_deliveries_issue_status", ["issue_id", "status"])

"""returned mail keeps its reason, and so does the delivery it came back for, so the
list-hygiene guard counts by reason (newsletter.reasons)

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bounce_mail") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=20), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("outcome_reason", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("outcome_reason")
    with op.batch_alter_table("bounce_mail") as batch:
        batch.drop_column("reason")

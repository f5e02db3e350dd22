"""articles keep their image's size; an issue item its own alt text; an issue may group
its items by section

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("image_width", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("image_height", sa.Integer(), nullable=True))
    with op.batch_alter_table("issue_items") as batch:
        batch.add_column(sa.Column("image_alt", sa.Text(), nullable=True))
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column("by_section", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("by_section")
    with op.batch_alter_table("issue_items") as batch:
        batch.drop_column("image_alt")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("image_height")
        batch.drop_column("image_width")

"""the desk: an issue's revision (two editors never overwrite each other silently), the
items removed from an issue with the text written for it (added back, it returns), and
an editor's role (existing accounts become admins: nothing they could do is taken away)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "removed_items",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("image_alt", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("issue_id", "article_id"),
    )
    with op.batch_alter_table("editors") as batch:
        batch.add_column(sa.Column("role", sa.String(length=20), server_default="editor",
                                   nullable=False))  # fmt: skip
    op.execute("UPDATE editors SET role = 'admin'")


def downgrade() -> None:
    with op.batch_alter_table("editors") as batch:
        batch.drop_column("role")
    op.drop_table("removed_items")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("revision")

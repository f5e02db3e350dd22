"""the desk: signed-in sessions kept server-side, so logging out ends a copied cookie too

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import newsletter.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "desk_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=False),
        sa.Column("created_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", newsletter.store.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["editor_id"], ["editors.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_desk_sessions_editor_id", "desk_sessions", ["editor_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_desk_sessions_editor_id", table_name="desk_sessions")
    op.drop_table("desk_sessions")

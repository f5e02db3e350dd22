"""several newsletters per desk: the newsletters table, with the desk's one newsletter
as its first row (its name, sender and schedule unset: they follow the settings as
before); every issue and every reader's subscription belongs to a newsletter, one
issue per newsletter and send day, one subscription per newsletter and address

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from newsletter.store.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _unique_on(table: str, column: str) -> str:
    """The name of the one-column unique constraint the table was made with: PostgreSQL
    named it; SQLite's is unnamed, and the batch copy below names it by convention."""
    for found in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if found["column_names"] == [column] and found["name"]:
            return str(found["name"])
    return f"uq_{table}_{column}"


CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    op.create_table(
        "newsletters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("from_addr", sa.String(length=400), nullable=True),
        sa.Column("list_id", sa.String(length=200), nullable=True),
        sa.Column("schedule", sa.String(length=100), nullable=True),
        sa.Column("templates", sa.String(length=1000), nullable=True),
        sa.Column("appeal", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    # the table's first row, so its id is 1 (the default every issue and reader gets
    # below) and PostgreSQL's id sequence goes on after it
    op.execute(
        "INSERT INTO newsletters (slug, appeal, created_at) "
        "VALUES ('main', true, CURRENT_TIMESTAMP)"
    )
    for table, column, constraint in (
        ("issues", "send_date", "uq_issues_newsletter_day"),
        ("subscribers", "email", "uq_subscribers_newsletter_email"),
    ):
        old = _unique_on(table, column)
        with op.batch_alter_table(table, naming_convention=CONVENTION) as batch:
            batch.add_column(
                sa.Column("newsletter_id", sa.Integer(), server_default="1", nullable=False)
            )
            batch.create_foreign_key(
                f"fk_{table}_newsletter_id_newsletters", "newsletters", ["newsletter_id"], ["id"]
            )
            batch.drop_constraint(old, type_="unique")
            batch.create_unique_constraint(constraint, ["newsletter_id", column])
    op.create_index("ix_subscribers_email", "subscribers", ["email"])


def downgrade() -> None:
    op.drop_index("ix_subscribers_email", "subscribers")
    for table, column, constraint in (
        ("issues", "send_date", "uq_issues_newsletter_day"),
        ("subscribers", "email", "uq_subscribers_newsletter_email"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(constraint, type_="unique")
            batch.drop_constraint(f"fk_{table}_newsletter_id_newsletters", type_="foreignkey")
            batch.drop_column("newsletter_id")
            batch.create_unique_constraint(f"uq_{table}_{column}", [column])
    op.drop_table("newsletters")

"""Alembic environment: runs on the connection newsletter.store.engine.upgrade_database
hands over."""

from alembic import context
from sqlalchemy import Connection, create_engine

from newsletter.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def run_on(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run_on(connection)
else:  # the alembic command line, for writing new migrations
    with create_engine(config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        run_on(conn)
        conn.commit()

"""The engine for a database URL, Alembic's migrations run on it, and the clock.

The tables are `tables`; a database gets them by `upgrade_database`, never by hand."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.engine.url import make_url

from newsletter.errors import ConfigError
from newsletter.store import tables
from newsletter.store.tables import metadata


def create_db_engine(url: str) -> Engine:
    """An engine for the URL; SQLite files get their folder, WAL and foreign keys."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError("NEWSLETTER_DATABASE_URL", f"not a database URL: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # one connection per sending thread and a few for the rest
        engine = sa.create_engine(url, connect_args={"timeout": 30}, pool_size=20, max_overflow=20)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise ConfigError("NEWSLETTER_DATABASE_URL", str(exc)) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade_database(engine: Engine, *, replay: bool = False, to: str = "head") -> None:
    """Create or upgrade every table to the newest migration (or the one named, for the
    tests of a migration); harmless to run twice."""
    with engine.connect() as connection:
        # SQLite alters a table by copying it and dropping the old one, which rows of
        # other tables refer to: its foreign keys are off while the migrations run (they
        # cannot be turned off inside a transaction), and checked before the commit
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:  # pysqlite begins only before a write: the DDL too is inside
                    connection.exec_driver_sql("BEGIN")
                before = _dangling(connection) if sqlite else Counter()
                upgrade_connection(connection, replay=replay, to=to)
                broken = (_dangling(connection) - before) if sqlite else Counter()
                if broken:
                    raise ConfigError(
                        "NEWSLETTER_DATABASE_URL",
                        "the upgrade would leave rows referring to rows that do not exist "
                        f"({', '.join(f'{t} -> {p}' for t, p in broken)}); nothing was changed",
                    )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys = ON")
                connection.commit()


def _dangling(connection: sa.Connection) -> Counter[tuple[str, str]]:
    """SQLite's rows that refer to a missing row, counted by (table, the table referred
    to): an upgrade may leave what was there before, and must add none."""
    rows = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    return Counter((str(row[0]), str(row[2])) for row in rows)


def upgrade_connection(
    connection: sa.Connection, *, replay: bool = False, to: str = "head"
) -> None:
    """The migrations inside the caller's transaction: on PostgreSQL a failure later in
    it takes the new tables back too. An empty database gets the declared tables at once
    and is stamped with the newest migration (Alembic's "building from scratch"; a test
    replays every migration and compares); `replay` runs them one by one anyway."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if not replay and to == "head" and not sa.inspect(connection).get_table_names():
        metadata.create_all(connection)
        # the first newsletter, as migration 0017 makes it in an older database: the
        # table's first row, so its id is 1 and the id sequence goes on after it
        first = tables.newsletters.insert().values(slug="main", created_at=now_utc())
        made = connection.execute(first).inserted_primary_key
        assert made is not None and made[0] == tables.FIRST_NEWSLETTER
        command.stamp(config, "head")
    else:
        command.upgrade(config, to)


def now_utc() -> datetime:
    """The clock, read only at the edges (CLI, web, workers) and passed in from there."""
    return datetime.now(UTC)

"""Moving a desk to another database (SQLite to PostgreSQL): every table, verified.

Each table is summed up as its row count and a sha256 over its rows in primary-key
order, each row a canonical JSON list of its values as the app reads them (aware UTC
times, booleans, base64 bytes), so SQLite and PostgreSQL give the same checksum for
the same rows. The copy streams in batches and runs in one transaction on the target:
the schema (on PostgreSQL), the rows, the sequences and the read-back check commit
together or not at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine

from newsletter.errors import ConfigError, CopyRefused, StateError
from newsletter.store import tables as db
from newsletter.store.engine import MIGRATIONS, create_db_engine, upgrade_connection

BATCH = 2000


@dataclass(frozen=True)
class TableSum:
    """What one table holds, in a form two databases can compare."""

    table: str
    rows: int
    sha256: str


# --- the pure part: rows in, a checksum out ----------------------------------------------


def canonical(value: Any) -> Any:
    """A value as JSON can carry it, the same whichever database it was read from."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"no canonical form for {type(value).__name__}")


def row_line(values: Iterable[Any]) -> bytes:
    """One row of the checksum: its values in column order, as one line of JSON."""
    text = json.dumps([canonical(v) for v in values], ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


class TableDigest:
    """Counts and hashes rows as they stream past, in the order they come."""

    def __init__(self, table: str) -> None:
        self.table, self.rows, self._hash = table, 0, hashlib.sha256()

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self._hash.update(row_line(row))
            self.rows += 1

    def result(self) -> TableSum:
        return TableSum(self.table, self.rows, self._hash.hexdigest())


# --- reading and writing ----------------------------------------------------------------


def key_order(table: sa.Table, dialect: Dialect) -> list[sa.ColumnElement[Any]]:
    """Primary-key order, text compared by code point on both sides: PostgreSQL sorts
    text by its locale unless told `COLLATE "C"`; SQLite compares bytes already."""
    columns = list(table.primary_key.columns) or list(table.columns)
    if dialect.name != "postgresql":
        return list(columns)
    return [c.collate("C") if isinstance(c.type, sa.String) else c for c in columns]


def stream_rows(
    conn: sa.Connection, table: sa.Table, batch: int
) -> Iterator[Sequence[sa.Row[Any]]]:
    """The table's rows in key order, a batch at a time (a server-side cursor on PostgreSQL)."""
    query = sa.select(table).order_by(*key_order(table, conn.dialect))
    result = conn.execution_options(yield_per=batch).execute(query)
    yield from result.partitions()


def table_sums(conn: sa.Connection, batch: int = BATCH) -> list[TableSum]:
    """Count and checksum of every table of the desk, in dependency order."""
    sums = []
    for table in db.metadata.sorted_tables:
        digest = TableDigest(table.name)
        for rows in stream_rows(conn, table, batch):
            digest.add(rows)
        sums.append(digest.result())
    return sums


def copy_database(
    source: Engine, target: Engine, *, replace: bool = False, batch: int = BATCH
) -> list[TableSum]:
    """Copy every table of the desk from `source` to `target` and check it by reading back.

    The target is created or upgraded with the desk's migrations first. CopyRefused when
    the target already holds rows (unless `replace`) or refuses one; then nothing stays."""
    if same_database(source, target):
        raise ConfigError("--to", "that is the desk's own database")
    with source.connect() as src, read_snapshot(src) as src:
        check_source_current(src)
        with _connect(target) as dst, dst.begin():
            _prepare(dst, replace)
            copied = [_copy_table(src, dst, table, batch) for table in db.metadata.sorted_tables]
            if dst.dialect.name == "postgresql":
                advance_sequences(dst)
            _verify(copied, table_sums(dst, batch))
    return copied


@contextmanager
def read_snapshot(conn: sa.Connection) -> Iterator[sa.Connection]:
    """A connection whose reads all see the database as of one moment, whatever commits
    meanwhile: a copy of a desk still running is whole as of when it started (without it,
    a reader signing up between two tables could leave an event without its reader).

    pysqlite begins a transaction only before a write, so on SQLite the BEGIN is explicit
    (in WAL mode a read transaction keeps its snapshot); PostgreSQL gets REPEATABLE READ."""
    if conn.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        yield conn


def same_database(a: Engine, b: Engine) -> bool:
    if a.url.get_backend_name() == b.url.get_backend_name() == "sqlite":
        return Path(a.url.database or "").resolve() == Path(b.url.database or "").resolve()
    return a.url.render_as_string(hide_password=False) == b.url.render_as_string(
        hide_password=False
    )


def check_source_current(conn: sa.Connection) -> None:
    """The source must have every migration: the copy reads the tables as declared now."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if current != head:
        raise StateError(
            f"the desk's database is at migration {current or 'none'}, not {head}: "
            "run `newsletter init` first"
        )


def _connect(target: Engine) -> sa.Connection:
    try:
        return target.connect()
    except sa.exc.DBAPIError as exc:
        raise ConfigError("--to", f"cannot connect: {_first_line(exc)}") from None


def _prepare(dst: sa.Connection, replace: bool) -> None:
    """Bring the target to the desk's schema; refuse, or empty it, when it holds rows."""
    from alembic.util import CommandError

    try:
        fresh = not sa.inspect(dst).get_table_names()
        upgrade_connection(dst)
    except (sa.exc.DBAPIError, CommandError) as exc:
        raise CopyRefused("target schema", _first_line(exc)) from None
    if fresh:  # the first newsletter a new database is made with comes from the source
        dst.execute(db.newsletters.delete())
    tables = db.metadata.sorted_tables
    for table in tables:
        held = dst.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if held and not replace:
            raise CopyRefused(
                table.name,
                f"the target already holds {held} row{'s' if held > 1 else ''}: copy into "
                "an empty database, "
                "or pass --replace to delete every row of the target first",
            )
    if replace:
        for table in reversed(tables):
            dst.execute(table.delete())


def _copy_table(src: sa.Connection, dst: sa.Connection, table: sa.Table, batch: int) -> TableSum:
    digest = TableDigest(table.name)
    insert = table.insert()
    for rows in stream_rows(src, table, batch):
        try:
            dst.execute(insert, [row._asdict() for row in rows])
        except sa.exc.DBAPIError as exc:
            raise CopyRefused(table.name, f"the target refused a row: {_first_line(exc)}") from None
        digest.add(rows)
    return digest.result()


def advance_sequences(dst: sa.Connection) -> None:
    """PostgreSQL hands out SERIAL ids from a sequence the copied rows never touched: start
    each one past the highest id copied, so the next sign-up does not collide."""
    quote = dst.dialect.identifier_preparer.quote
    for table in db.metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        dst.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE(MAX({quote(column.name)}), 0) + 1, false) FROM {quote(table.name)}"
            ),
            {"table": table.name, "column": column.name},
        )


def _verify(copied: list[TableSum], read_back: list[TableSum]) -> None:
    for sent, found in zip(copied, read_back, strict=True):
        if sent != found:
            raise CopyRefused(
                sent.table,
                f"read back {found.rows} rows with sha256 {found.sha256}, "
                f"copied {sent.rows} rows with sha256 {sent.sha256}",
            )


def _first_line(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


def open_target(url: str) -> Engine:
    """An engine for the `--to` URL; a malformed one is named as the option it came from."""
    try:
        return create_db_engine(url)
    except ConfigError as exc:
        raise ConfigError("--to", str(exc).removeprefix(f"{exc.name}: ")) from None

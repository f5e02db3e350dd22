"""`subscribers import FILE.csv`: readers whose consent was given elsewhere, with its evidence.

Columns: email, name, consented_at, source, ip, policy_version (a header row; UTF-8
with or without BOM; comma or semicolon). Every row is checked first (`import_rows`);
then one transaction adds the new readers and their `imported` events set-wise, so an
interrupted import leaves nothing behind and re-running a file changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.errors import InputError
from newsletter.readers.import_rows import ImportResult, Problem, StagedRow, Staging, check_file
from newsletter.readers.subscribers import Mail
from newsletter.readers.suppression import keyed_hasher
from newsletter.readers.tokens import CONFIRM, timed_token
from newsletter.store import tables as db

__all__ = ["ImportResult", "Problem", "import_csv", "staging_for"]

IMPORT_CACHE_KB = 65_536  # SQLite's page cache while an import writes, in KiB


def _staging() -> sa.Table:
    return sa.Table(
        "import_rows",
        sa.MetaData(),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("consented_at", db.UTCDateTime, nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("policy_version", sa.String(100), nullable=True),
        sa.Column("address_hash", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        prefixes=["TEMPORARY"],
    )


def import_csv(
    engine: sa.Engine,
    path: Path,
    *,
    pending: bool,
    secret: str | None,
    now: datetime,
    newsletter_id: int = db.FIRST_NEWSLETTER,
) -> ImportResult:
    """Import a CSV file in one transaction, as subscriptions to the newsletter; returns
    the report and the opt-in mails to send."""
    result = ImportResult(str(path))
    with engine.begin() as conn, _page_cache(conn):
        published = set(conn.execute(sa.select(db.policy_versions.c.version)).scalars())
        rows = check_file(path, published, pending, now, staging_for(conn, path), result)
        stage = _staging()
        # SQLite runs DDL outside the transaction: a failed import's table may still be here
        # (PostgreSQL's rollback drops it, and refuses a DROP in a failed transaction)
        stage.create(conn, checkfirst=True)
        conn.execute(stage.delete())
        _stage(conn, stage, rows)
        if pending and not secret and _any_pending(conn, stage):
            raise InputError("--pending: NEWSLETTER_SECRET_KEY is needed to sign opt-in links")
        before = _load(conn, stage, path, now, result, newsletter_id)
        if pending:
            result.mails = _opt_in_mails(conn, stage, before, secret or "", now, newsletter_id)
        stage.drop(conn)
    return result


@contextmanager
def _page_cache(conn: sa.Connection) -> Iterator[None]:
    """On SQLite, a page cache that holds an import's indexes while it writes them.

    SQLite's default 2 MB cache spills the unique address index of 100,000 readers in
    the middle of the set-wise inserts; 64 MB for the import's own transaction takes
    a tenth off its time. The connection's own size is back afterwards."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KB}")
    try:
        yield
    finally:  # a connection that broke keeps its wider cache rather than hide the error
        with suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")


def _load(
    conn: sa.Connection,
    stage: sa.Table,
    path: Path,
    now: datetime,
    result: ImportResult,
    newsletter_id: int,
) -> int:
    """Add the new readers and their events from the staged rows; returns the id they start
    after."""
    suppressed = sa.exists().where(db.suppressions.c.address_hash == stage.c.address_hash)
    present = sa.exists().where(
        db.subscribers.c.email == stage.c.email, db.subscribers.c.newsletter_id == newsletter_id
    )
    tally = sa.select(sa.func.count()).select_from(stage)
    result.suppressed = conn.execute(tally.where(suppressed)).scalar_one()
    result.already_present = conn.execute(tally.where(present, ~suppressed)).scalar_one()
    s = db.subscribers
    before = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(s.c.id), 0))).scalar_one())
    _count_added(conn, stage, sa.and_(~present, ~suppressed), result)
    _add_readers(conn, stage, sa.and_(~present, ~suppressed), now, newsletter_id)
    _add_events(conn, stage, before, path, now, newsletter_id)
    complained = sa.select(
        stage.c.address_hash, sa.literal("complained"), sa.literal(now, db.UTCDateTime)
    ).where(stage.c.status == "complained", ~suppressed)
    conn.execute(db.suppressions.insert().from_select(["address_hash", "reason", "at"], complained))
    return before


def staging_for(conn: sa.Connection, path: Path) -> Staging:
    """How this import stages its rows: the file names the default source, the database
    decides how times are stored and whether a row needs its keyed hash."""
    return Staging(f"import {path.name}", _stored_time(conn.dialect), _suppression_hasher(conn))


def _stage(conn: sa.Connection, stage: sa.Table, rows: list[StagedRow]) -> None:
    """The staged rows into the staging table, in one executemany: SQLAlchemy's per-row
    parameter handling would cost more than the inserts."""
    if not rows:
        return
    names = [column.name for column in stage.columns]
    compiled = stage.insert().compile(dialect=conn.dialect, column_keys=names)
    if conn.dialect.positional:  # an INSERT of every column binds them in the table's order
        conn.exec_driver_sql(str(compiled), rows)
    else:
        conn.exec_driver_sql(str(compiled), [dict(zip(names, row, strict=True)) for row in rows])


def _any_pending(conn: sa.Connection, stage: sa.Table) -> bool:
    """Whether a staged row has no policy agreed to: it would become pending and be mailed."""
    pending = sa.select(stage.c.line).where(stage.c.policy_version.is_(None)).limit(1)
    return conn.execute(pending).first() is not None


def _suppression_hasher(conn: sa.Connection) -> Callable[[str, str], str | None]:
    """The keyed hash a row is matched against suppressions by, where one is needed.

    With nothing suppressed yet (a desk's first import) only rows that add a suppression
    need it: an HMAC per row is a tenth of an import's time."""
    digest = keyed_hasher(conn)
    if conn.execute(sa.select(db.suppressions.c.address_hash).limit(1)).first():
        return lambda email, status: digest(email)
    return lambda email, status: digest(email) if status == "complained" else None


def _stored_time(dialect: sa.Dialect) -> Callable[[datetime | None], Any]:
    """A function giving `db.UTCDateTime`'s stored value for an aware time.

    SQLAlchemy's own processor costs 3 µs a row; on SQLite the same text comes from
    isoformat for a third of that."""
    if dialect.name == "sqlite":
        return sqlite_time
    convert = db.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return convert if convert is not None else (lambda at: at)


def sqlite_time(at: datetime | None) -> str | None:
    """The text SQLAlchemy stores on SQLite for an aware time: UTC, with microseconds."""
    if at is None:
        return None
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(" ", "microseconds")[:26]  # without its "+00:00"


def _add_readers(
    conn: sa.Connection,
    stage: sa.Table,
    new: sa.ColumnElement[bool],
    now: datetime,
    newsletter_id: int,
) -> None:
    """A reader for each new staged row, in file order: pending where no policy was agreed."""
    status = sa.case((stage.c.policy_version.is_(None), "pending"), else_=stage.c.status)
    new_rows = sa.select(
        sa.literal(newsletter_id),
        stage.c.email,
        stage.c.name,
        status,
        stage.c.policy_version,
        sa.literal(now, db.UTCDateTime),
        sa.literal(now, db.UTCDateTime),
    )
    conn.execute(
        db.subscribers.insert().from_select(
            [
                "newsletter_id",
                "email",
                "name",
                "status",
                "policy_version",
                "created_at",
                "updated_at",
            ],
            new_rows.where(new).order_by(stage.c.line),
        )
    )


def _add_events(
    conn: sa.Connection, stage: sa.Table, before: int, path: Path, now: datetime, newsletter_id: int
) -> None:
    """An `imported` event for each reader added, keeping the row's evidence and its line."""
    s, p = db.subscribers, db.policy_versions
    detail = sa.literal(f"{path.name}, line ") + sa.cast(stage.c.line, sa.String)
    events = (
        sa.select(
            s.c.id,
            sa.literal("imported"),
            sa.func.coalesce(stage.c.consented_at, now),
            stage.c.ip,
            stage.c.source,
            stage.c.policy_version,
            p.c.sha256,
            p.c.wording,
            detail,
        )
        .select_from(stage)
        .join(s, (s.c.email == stage.c.email) & (s.c.newsletter_id == newsletter_id))
        .outerjoin(p, p.c.version == stage.c.policy_version)
        .where(s.c.id > before)
    )
    columns = ["subscriber_id", "kind", "at", "ip", "source"]
    columns += ["policy_version", "policy_sha256", "wording", "detail"]
    conn.execute(db.consent_events.insert().from_select(columns, events))


def _count_added(
    conn: sa.Connection, stage: sa.Table, new: sa.ColumnElement[bool], result: ImportResult
) -> None:
    """The readers about to be added, by status, counted from the staged rows: on PostgreSQL
    other writers' readers may commit between ours (ids above `before` are not all ours)."""
    no_policy = stage.c.policy_version.is_(None)
    counts = conn.execute(
        sa.select(no_policy, stage.c.status, sa.func.count())
        .where(new)
        .group_by(no_policy, stage.c.status)
    ).all()
    by_status: dict[str, int] = {}
    for pending, status, n in counts:
        key = "pending" if pending else status
        by_status[key] = by_status.get(key, 0) + int(n)
    result.added, result.pending = by_status.get("active", 0), by_status.get("pending", 0)
    result.inactive = sum(
        n for status, n in by_status.items() if status not in ("active", "pending")
    )


def _opt_in_mails(
    conn: sa.Connection,
    stage: sa.Table,
    before: int,
    secret: str,
    now: datetime,
    newsletter_id: int,
) -> list[Mail]:
    """A double opt-in mail for each reader this import added as pending (its own staged
    readers: another import may commit pending readers beside ours on PostgreSQL)."""
    s, e = db.subscribers, db.consent_events
    rows = conn.execute(
        sa.select(s.c.id, s.c.email, s.c.name, e.c.id)
        .join(e, e.c.subscriber_id == s.c.id)
        .join(stage, stage.c.email == s.c.email)
        .where(s.c.id > before, s.c.status == "pending", e.c.kind == "imported")
        .where(s.c.newsletter_id == newsletter_id)
        .order_by(s.c.id)
    ).all()
    return [
        Mail("confirm", sid, email, name, timed_token(secret, CONFIRM, sid, str(event), now))
        for sid, email, name, event in rows
    ]

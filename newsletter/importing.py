"""`subscribers import FILE.csv`: readers whose consent was given elsewhere, with its evidence.

Columns: email, name, consented_at, source, ip, policy_version (a header row; UTF-8
with or without BOM; comma or semicolon). Every row is checked first; then one
transaction adds the new readers and their `imported` events set-wise, so an
interrupted import leaves nothing behind and re-running a file changes nothing.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa

from . import db
from .addresses import normalise_address
from .errors import InputError
from .issues import check_line
from .subscribers import NAME_MAX, Mail, keyed_hasher
from .tokens import CONFIRM, timed_token

COLUMNS = ("email", "name", "consented_at", "source", "ip", "policy_version", "status")
KEPT_STATUSES = ("active", "unsubscribed", "bounced", "complained")  # as `export --csv` writes
SOURCE_MAX = 500
NO_EVIDENCE = "no consent evidence (consented_at and policy_version); use --pending to ask"


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str


@dataclass
class ImportResult:
    file: str
    rows: int = 0
    added: int = 0
    pending: int = 0
    inactive: int = 0  # unsubscribed, bounced or complained elsewhere: kept, never mailed
    already_present: int = 0
    duplicates: int = 0
    suppressed: int = 0
    problems: list[Problem] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        document = {k: v for k, v in self.__dict__.items() if k != "mails"}
        document["problems"] = [p.__dict__ for p in self.problems]
        return document


class Row(NamedTuple):  # a tuple: 100,000 of them are made per import
    line: int
    email: str
    name: str
    consented_at: datetime | None
    source: str
    ip: str | None
    policy_version: str | None
    status: str = "active"

    @property
    def has_evidence(self) -> bool:
        return self.consented_at is not None and self.policy_version is not None


# A row as the staging table takes it, in its column order. A plain tuple: the cyclic
# garbage collector stops tracking those, not named tuples, and walking 100,000 tracked
# rows again and again cost an import a tenth of its time.
StagedRow = tuple[int, str, str, Any, str, str | None, str | None, str | None, str]


@dataclass(frozen=True)
class Staging:
    """How a checked row is written to the staging table."""

    default_source: str  # for a row that names none: "import FILE.csv"
    stored_time: Callable[[datetime | None], Any]  # the time as the database stores it
    hashed: Callable[[str, str], str | None]  # (email, status): its keyed hash, where needed

    def stage(self, row: Row) -> StagedRow:
        return (
            row.line,
            row.email,
            row.name,
            self.stored_time(row.consented_at),
            row.source or self.default_source,
            row.ip,
            row.policy_version,
            self.hashed(row.email, row.status),
            row.status,
        )


Fields = tuple[str, str, str, str, str, str, str]  # a row's values in COLUMNS order


def read_rows(path: Path) -> Iterator[tuple[int, Fields] | Problem]:
    """The file's data rows, each as its line number and its values in COLUMNS order.

    Values are picked by position rather than put in a dict: an import reads 100,000 rows."""
    text = _read_text(path)
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    _check_header(path, header)
    width = len(header)
    position = {name: i for i, name in enumerate(header)}  # a repeated column: the last counts
    # a column the file lacks reads the "" appended to each row, at index `width`
    pick = itemgetter(*(position.get(name, width) for name in COLUMNS))
    ended = reader.line_num  # a quoted field may span lines: a row starts after the last one
    for values in reader:
        start, ended = ended + 1, reader.line_num
        if not "".join(values).strip():  # a blank line
            continue
        if len(values) != width:
            yield Problem(start, f"{len(values)} fields, the header has {width}")
            continue
        values.append("")
        yield start, pick(values)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}, line {line}: not UTF-8 ({exc.reason})") from None


def _check_header(path: Path, header: list[str]) -> None:
    if "email" not in header:
        raise InputError(f"{path}, line 1: the header has no 'email' column")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InputError(
            f"{path}, line 1: unknown column(s) {', '.join(unknown)}; expected {', '.join(COLUMNS)}"
        )


def canonical_ip(text: str) -> str:
    """An IPv4 or IPv6 address in its canonical form (inet_pton is C: an import checks 100,000).

    Only IPv6 text has a colon, so one family is tried, not both."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except OSError:
        raise InputError(f"ip: {text!r} is not an IP address") from None


def consent_time(stamp: str, now: datetime) -> datetime | None:
    """When consent was given, as an aware time; a naive one is UTC, as documented."""
    if not stamp:
        return None
    try:
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"consented_at: {stamp!r} is not an ISO 8601 time") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if at > now:
        raise InputError(f"consented_at: {stamp} is in the future")
    return at


@lru_cache(maxsize=1024)
def checked_source(text: str) -> str:
    """A row's source, checked once per distinct text: a file names only a few sources,
    and the control-character search over a URL costs a fifth of a row's check."""
    return check_line("source", text, SOURCE_MAX)


def parse_row(line: int, fields: Fields, published: set[str], now: datetime) -> Row:
    """A checked row; the first bad field, in the order below, names the reason."""
    email, name, stamp, source, ip, version, status = fields
    email = normalise_address(email)
    name = check_line("name", name, NAME_MAX)
    consented_at = consent_time(stamp.strip(), now)
    version = version.strip()
    if version and version not in published:
        raise InputError(f"policy_version: {version!r} is not a published policy version")
    ip = ip.strip()
    ip_address = canonical_ip(ip) if ip else None
    source = checked_source(source)
    status = status.strip().lower() or "active"
    if status not in KEPT_STATUSES:
        raise InputError(f"status: {status!r} is not imported; one of {', '.join(KEPT_STATUSES)}")
    return Row(line, email, name, consented_at, source, ip_address, version or None, status)


def check_file(
    path: Path,
    published: set[str],
    pending: bool,
    now: datetime,
    staging: Staging,
    result: ImportResult,
) -> list[StagedRow]:
    """Every row checked and staged; bad ones reported by line, duplicates merged (the first
    wins, unless only a later row carries the evidence)."""
    kept: dict[str, StagedRow] = {}
    proven: set[str] = set()  # addresses whose kept row carries the evidence
    for item in read_rows(path):
        result.rows += 1
        if isinstance(item, Problem):
            result.problems.append(item)
            continue
        line, fields = item
        try:
            row = parse_row(line, fields, published, now)
        except InputError as exc:
            result.problems.append(Problem(line, str(exc)))
            continue
        if not row.has_evidence:
            if not pending or row.status != "active":
                result.problems.append(Problem(line, NO_EVIDENCE))
                continue
            row = row._replace(consented_at=None, policy_version=None)
        if row.email in kept:
            result.duplicates += 1
            if row.email in proven or not row.has_evidence:
                continue
        kept[row.email] = staging.stage(row)
        if row.has_evidence:
            proven.add(row.email)
    return list(kept.values())


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
    engine: sa.Engine, path: Path, *, pending: bool, secret: str | None, now: datetime
) -> ImportResult:
    """Import a CSV file in one transaction; returns the report and the opt-in mails to send."""
    result = ImportResult(str(path))
    with engine.begin() as conn:
        published = set(conn.execute(sa.select(db.policy_versions.c.version)).scalars())
        rows = check_file(path, published, pending, now, staging_for(conn, path), result)
        stage = _staging()
        # SQLite runs DDL outside the transaction: a failed import's table may still be here
        stage.create(conn, checkfirst=True)
        conn.execute(stage.delete())
        try:
            _stage(conn, stage, rows)
            if pending and not secret and _any_pending(conn, stage):
                raise InputError("--pending: NEWSLETTER_SECRET_KEY is needed to sign opt-in links")
            before = _load(conn, stage, path, now, result)
            if pending:
                result.mails = _opt_in_mails(conn, before, secret or "", now)
        finally:
            stage.drop(conn)
    return result


def _load(
    conn: sa.Connection, stage: sa.Table, path: Path, now: datetime, result: ImportResult
) -> int:
    """Add the new readers and their events from the staged rows; returns the id they start
    after."""
    suppressed = sa.exists().where(db.suppressions.c.address_hash == stage.c.address_hash)
    present = sa.exists().where(db.subscribers.c.email == stage.c.email)
    tally = sa.select(sa.func.count()).select_from(stage)
    result.suppressed = conn.execute(tally.where(suppressed)).scalar_one()
    result.already_present = conn.execute(tally.where(present, ~suppressed)).scalar_one()
    s = db.subscribers
    before = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(s.c.id), 0))).scalar_one())
    _add_readers(conn, stage, sa.and_(~present, ~suppressed), now)
    _add_events(conn, stage, before, path, now)
    _count_added(conn, before, result)
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
    conn: sa.Connection, stage: sa.Table, new: sa.ColumnElement[bool], now: datetime
) -> None:
    """A reader for each new staged row, in file order: pending where no policy was agreed."""
    status = sa.case((stage.c.policy_version.is_(None), "pending"), else_=stage.c.status)
    new_rows = sa.select(
        stage.c.email,
        stage.c.name,
        status,
        stage.c.policy_version,
        sa.literal(now, db.UTCDateTime),
        sa.literal(now, db.UTCDateTime),
    )
    conn.execute(
        db.subscribers.insert().from_select(
            ["email", "name", "status", "policy_version", "created_at", "updated_at"],
            new_rows.where(new).order_by(stage.c.line),
        )
    )


def _add_events(
    conn: sa.Connection, stage: sa.Table, before: int, path: Path, now: datetime
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
        .join(s, s.c.email == stage.c.email)
        .outerjoin(p, p.c.version == stage.c.policy_version)
        .where(s.c.id > before)
    )
    columns = ["subscriber_id", "kind", "at", "ip", "source"]
    columns += ["policy_version", "policy_sha256", "wording", "detail"]
    conn.execute(db.consent_events.insert().from_select(columns, events))


def _count_added(conn: sa.Connection, before: int, result: ImportResult) -> None:
    s = db.subscribers
    counts = conn.execute(
        sa.select(s.c.status, sa.func.count()).where(s.c.id > before).group_by(s.c.status)
    ).all()
    by_status = {status: int(n) for status, n in counts}
    result.added, result.pending = by_status.get("active", 0), by_status.get("pending", 0)
    result.inactive = sum(
        n for status, n in by_status.items() if status not in ("active", "pending")
    )


def _opt_in_mails(conn: sa.Connection, before: int, secret: str, now: datetime) -> list[Mail]:
    """A double opt-in mail for each reader this import added as pending."""
    s, e = db.subscribers, db.consent_events
    rows = conn.execute(
        sa.select(s.c.id, s.c.email, s.c.name, e.c.id)
        .join(e, e.c.subscriber_id == s.c.id)
        .where(s.c.id > before, s.c.status == "pending", e.c.kind == "imported")
        .order_by(s.c.id)
    ).all()
    return [
        Mail("confirm", sid, email, name, timed_token(secret, CONFIRM, sid, str(event), now))
        for sid, email, name, event in rows
    ]

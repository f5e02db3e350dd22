"""An import file's rows: read, checked one by one, duplicates merged, made ready to stage.

Every row is checked before anything is written, and a bad one is reported by its line
and reason while the others go on; `importing` then writes the good ones in one
transaction. 100,000 rows are read per import, so values are picked by position and
the rows kept are plain tuples in the staging table's column order.
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

from newsletter.curation.issues import check_line
from newsletter.errors import InputError
from newsletter.readers.access import from_spreadsheet_safe
from newsletter.readers.addresses import normalise_address
from newsletter.readers.subscribers import NAME_MAX, Mail

COLUMNS = ("email", "name", "consented_at", "source", "ip", "policy_version", "status")
KEPT_STATUSES = ("active", "unsubscribed", "bounced", "complained")  # as `export --csv` writes
SOURCE_MAX = 500
MAX_FILE_BYTES = 512 * 1024 * 1024  # ten million readers' rows fit
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


class Row(NamedTuple):  # a checked row, before it is staged: made 100,000 times per import
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
# rows on every collection cost an import up to a tenth of its time.
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
    # any field as long as the file: an over-long value is reported by its column's check
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
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
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(
                f"{path}: larger than the {MAX_FILE_BYTES // (1024 * 1024)} MB an import reads"
            )
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
    email, name, stamp, source, ip, version, status = map(from_spreadsheet_safe, fields)
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

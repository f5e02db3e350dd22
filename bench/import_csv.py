"""Importing readers from CSV: `import_csv` against plain SQLite inserts, measured in one run.

    python bench/import_csv.py [ROWS]

Writes a realistic CSV (ROWS readers, default 100,000, 1% of them bad; a few thousand
domains, some of them IDN like пример.рф; Latin and Cyrillic names) to a temporary
folder, imports it into a fresh SQLite database there with `import_csv`, and prints
the imported rows/s, the time split between reading + checking the rows (`check_file`,
which also builds the rows to stage) and the database work, and a baseline measured in
the same run: plain INSERTs of as many rows through executemany into a SQLite table
with a unique index.
The target is 50,000 imported rows/s.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter.app import Desk, init_desk
from newsletter.readers.addresses import _domain
from newsletter.readers.import_rows import COLUMNS, ImportResult, check_file
from newsletter.readers.importing import import_csv, staging_for
from newsletter.settings import Settings
from newsletter.store import tables as db

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
POLICY = "2026-11-01"  # the version in privacy/
TARGET = 50_000

WEBMAIL = {  # domain: share of readers
    "gmail.com": 0.22,
    "yandex.ru": 0.07,
    "mail.ru": 0.06,
    "outlook.com": 0.04,
    "hotmail.com": 0.03,
    "yahoo.com": 0.03,
    "icloud.com": 0.02,
    "gmx.de": 0.02,
    "proton.me": 0.01,
    "rambler.ru": 0.01,
    "ukr.net": 0.01,
    "web.de": 0.01,
    "bk.ru": 0.01,
}
LATIN_FIRST = [
    "Anna", "Tom", "Maria", "Jan", "Sofia", "Lucas", "Emma", "Noah", "Olga", "Peter", "Julia",
    "David", "Sara", "Mark", "Eva",
]  # fmt: skip
LATIN_LAST = [
    "Smith", "Jansen", "Müller", "Dubois", "García", "Rossi", "Nowak", "Novak", "Larsen",
    "Bakker", "Silva", "Kowalski",
]  # fmt: skip
CYRILLIC = [  # (Cyrillic, transliteration) for names and the address built from them
    ("Анна", "anna"), ("Иван", "ivan"), ("Мария", "maria"), ("Дмитрий", "dmitry"),
    ("Елена", "elena"), ("Сергей", "sergey"), ("Ольга", "olga"), ("Алексей", "alexey"),
]  # fmt: skip
CYRILLIC_LAST = [
    ("Петрова", "petrova"), ("Иванов", "ivanov"), ("Смирнова", "smirnova"),
    ("Кузнецов", "kuznetsov"), ("Соколова", "sokolova"), ("Попов", "popov"),
]  # fmt: skip
WORDS = [
    "north", "river", "green", "city", "media", "tech", "blue", "stone", "harbor", "maple",
    "urban", "alpine", "delta", "nova", "silver", "oak", "sun", "east", "west", "pine",
]  # fmt: skip
SUFFIXES = [
    "works", "labs", "group", "news", "studio", "partners", "consulting", "digital", "systems",
    "trade", "club",
]  # fmt: skip
TLDS = [
    "com", "org", "net", "ru", "de", "nl", "fr", "co.uk", "eu", "io", "info", "ch", "at", "pl",
    "cz",
]  # fmt: skip
IDN_WORDS = [
    "пример", "почта", "москва", "новости", "книги", "журнал", "газета", "радио", "погода",
    "спорт",
]  # fmt: skip
SOURCES = [
    "https://example.org/newsletter/signup",
    "https://example.org/articles/footer-form",
    "Mailchimp export 2024",
    "book fair 2025, paper form",
    "https://example.org/support/thank-you",
]


@dataclass
class Generated:
    path: Path
    rows: int
    bad: int
    good_rows: list[list[str]]
    domains: int
    idn_domains: int


def make_domains(rng: random.Random) -> tuple[list[str], list[str]]:
    """A long tail of a few thousand company domains, some of them IDN."""
    ascii_tail = sorted({f"{a}{b}.{t}" for a in WORDS for b in SUFFIXES for t in TLDS})
    tail = rng.sample(ascii_tail, 3_000)
    idn = [f"{w}.рф" for w in IDN_WORDS] + [f"{w}-{n}.рф" for w in IDN_WORDS for n in range(12)]
    idn += [f"bücher-{n}.de" for n in range(20)] + [f"café-{n}.fr" for n in range(10)]
    return tail, idn


def reader(rng: random.Random, n: int, tail: list[str], idn: list[str]) -> list[str]:
    """One good row: a unique address, a name, and the evidence of consent."""
    pick = rng.random()
    if pick < sum(WEBMAIL.values()):
        domain = rng.choices(list(WEBMAIL), weights=list(WEBMAIL.values()))[0]
    elif pick < 0.985:
        domain = rng.choice(tail)
    else:
        domain = rng.choice(idn)
    kind = rng.random()
    if kind < 0.3:
        (first, first_l), (last, last_l) = rng.choice(CYRILLIC), rng.choice(CYRILLIC_LAST)
        name = f"{first} {last}"
    else:
        first, last = rng.choice(LATIN_FIRST), rng.choice(LATIN_LAST)
        first_l, last_l = first.lower(), last.lower().replace("ü", "ue").replace("í", "i")
        name = f"{last}, {first}" if kind > 0.95 else f"{first} {last}"
    if kind > 0.9:
        name = ""
    at = NOW - timedelta(days=22) - timedelta(seconds=rng.randrange(3 * 365 * 86_400))
    style = rng.random()
    if style < 0.5:
        stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif style < 0.8:
        stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "+00:00"
    elif style < 0.9:
        stamp = at.strftime("%Y-%m-%d %H:%M:%S")
    else:
        stamp = at.date().isoformat()
    ip_kind = rng.random()
    if ip_kind < 0.7:
        octets = (
            rng.randrange(1, 224),
            rng.randrange(256),
            rng.randrange(256),
            rng.randrange(1, 255),
        )
        ip = ".".join(map(str, octets))
    elif ip_kind < 0.8:
        ip = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    else:
        ip = ""
    return [f"{first_l}.{last_l}{n}@{domain}", name, stamp, rng.choice(SOURCES), ip, POLICY]


def spoil(rng: random.Random, row: list[str]) -> list[str]:
    """A bad row of the kinds real lists have."""
    kind = rng.randrange(6)
    if kind == 0:
        row[0] = rng.choice([row[0].replace("@", " at "), row[0] + "@", row[0].replace(".", " ")])
    elif kind == 1:
        row[2] = rng.choice(["31/12/2024", "yesterday", "2025-02-30"])
    elif kind == 2:
        row[2] = (NOW + timedelta(days=rng.randrange(1, 400))).date().isoformat()
    elif kind == 3:
        row[5] = "2019-05-25"
    elif kind == 4:
        row = row[:4]
    else:
        row[2] = row[5] = ""
    return row


def generate(path: Path, rows: int, seed: int = 20261123) -> Generated:
    rng = random.Random(seed)
    tail, idn = make_domains(rng)
    good_rows, bad = [], 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS[:6])  # the columns a list from elsewhere has
        for n in range(rows):
            row = reader(rng, n, tail, idn)
            if n % 100 == 57:  # 1% bad, spread through the file
                row, bad = spoil(rng, row), bad + 1
            else:
                good_rows.append(row)
            writer.writerow(row)
    domains = {row[0].rpartition("@")[2] for row in good_rows}
    idn_used = {d for d in domains if not d.isascii()}
    return Generated(path, rows, bad, good_rows, len(domains), len(idn_used))


def clear_domain_cache() -> None:
    """newsletter.readers.addresses asks email-validator about each domain once: each
    timing starts cold."""
    _domain.cache_clear()


def baseline(folder: Path, rows: list[list[str]]) -> float:
    """Seconds to INSERT the rows with executemany into a table with a unique index."""
    connection = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        connection.execute(
            "CREATE TABLE readers (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT, "
            "consented_at TEXT, source TEXT, ip TEXT, policy_version TEXT)"
        )
        connection.execute("CREATE UNIQUE INDEX ix_readers_email ON readers (email)")
        started = time.perf_counter()
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO readers (email, name, consented_at, source, ip, policy_version) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        made = generate(folder / "readers.csv", rows)
        generated = time.perf_counter() - started
        size = made.path.stat().st_size

        settings = Settings(
            database_url=f"sqlite:///{folder}/subscribers/newsletter.db",
            privacy_dir=ROOT / "privacy",
            templates=ROOT / "templates",
            outbox=folder / "outbox",
        )
        desk = Desk(settings)
        init_desk(desk, NOW)
        with desk.engine.begin() as conn:
            published = set(conn.execute(sa.select(db.policy_versions.c.version)).scalars())
            staging = staging_for(conn, made.path)

        clear_domain_cache()
        started = time.perf_counter()
        report = ImportResult(str(made.path))
        checked = check_file(made.path, published, False, NOW, staging, report)
        check = time.perf_counter() - started

        clear_domain_cache()
        started = time.perf_counter()
        result = import_csv(desk.engine, made.path, pending=False, secret=None, now=NOW)
        imported = time.perf_counter() - started
        desk.engine.dispose()

        plain = baseline(folder, made.good_rows)

    good = rows - made.bad
    rate, plain_rate = result.added / imported, len(made.good_rows) / plain
    print(
        f"file: {rows:,} rows, {size / 1e6:.1f} MB, {made.domains:,} distinct domains "
        f"({made.idn_domains} IDN), {made.bad:,} bad rows; written in {generated:.2f} s"
    )
    if (result.added, len(result.problems), len(checked)) != (good, made.bad, good):
        print(
            f"MISMATCH: expected {good:,} added and {made.bad:,} refused, got {result.added:,} "
            f"added and {len(result.problems):,} refused ({len(checked):,} rows passed the check)"
        )
    print(
        f"import_csv: {result.added:,} added, {len(result.problems):,} refused "
        f"in {imported:.2f} s: {rate:,.0f} imported rows/s ({rows / imported:,.0f} file rows/s)"
    )
    print(
        f"  reading + checking rows (check_file): {check:.2f} s "
        f"({check / imported:.0%}, {rows / check:,.0f} rows/s)"
    )
    db_work = imported - check
    print(
        f"  database work (import_csv minus check_file): {db_work:.2f} s ({db_work / imported:.0%})"
    )
    print(
        f"baseline: plain INSERT via executemany, unique index: {len(made.good_rows):,} rows "
        f"in {plain:.2f} s: {plain_rate:,.0f} rows/s"
    )
    print(f"ratio: import_csv runs at {rate / plain_rate:.2f}x the plain insert rate "
          f"(plain inserts are {plain_rate / rate:.1f}x faster)")  # fmt: skip
    verdict = "met" if rate >= TARGET else "NOT met"
    print(f"target: {TARGET:,} imported rows/s: {verdict} ({rate / TARGET:.0%} of target)")


if __name__ == "__main__":
    main()

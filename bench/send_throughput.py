"""The delivery engine end to end against Postfix's smtp-sink, with its ceiling in the same run.

    python bench/send_throughput.py [--readers 10000] [--connections 8] [--memory 100000,1000000]

1. A realistic issue (16 articles, about 75 KB a message) sent by `send_issue` to READERS
   readers through CONNECTIONS SMTP connections to smtp-sink on loopback: messages/s.
2. The ceiling, measured right after: smtplib with as many threads sending the same
   prepared, dot-stuffed bytes (no database, no building): messages/s, and the ratio.
3. Building per reader on one core (tokens filled into prepared MIME bytes): messages/s.
4. For each size in --memory, in a fresh process: the time to snapshot the audience into
   the ledger on SQLite, and the peak memory of a whole send to a transport that only
   counts (the audience is streamed, so the larger should cost little more).
Needs smtp-sink (Debian package postfix).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter.app import Desk, init_desk
from newsletter.compose.issue import compose
from newsletter.compose.messages import build_message, message_id
from newsletter.curation.articles import import_sources
from newsletter.curation.issues import approve, new_issue, pick, set_fields
from newsletter.delivery.ledger import snapshot_audience
from newsletter.delivery.report import SendOptions
from newsletter.delivery.send import send_issue
from newsletter.models import Reader
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope
from newsletter.transport.pool import open_transport

ROOT = Path(__file__).resolve().parent.parent
FEEDS = [
    ROOT / "tests" / "feeds" / "onliner-ru-2021.xml",
    ROOT / "newsletter" / "defaults" / "demo_feed.xml",
]
NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    port = free_port()
    sink = subprocess.Popen([binary, "-u", "nobody", f"127.0.0.1:{port}", "1000"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("smtp-sink did not start (apt-get install postfix)")


def make_settings(folder: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder}/newsletter.db",
        templates=ROOT / "templates",
        privacy_dir=ROOT / "privacy",
        outbox=folder / "outbox",
        secret_key="bench-secret",
        base_url="https://news.example.org",
        from_addr="The Weekly <weekly@example.org>",
    )


def make_desk(folder: Path) -> Desk:
    desk = Desk(make_settings(folder))
    init_desk(desk, NOW)
    return desk


def seed(engine: sa.Engine, count: int) -> None:
    """Active readers in bulk, a third of them with Cyrillic names, 100,000 at a time."""
    for start in range(0, count, 100_000):
        rows = [
            {
                "email": f"reader{n:07d}@example{n % 97}.org",
                "name": "Анна Петрова" if n % 3 else "",
                "status": "active",
                "policy_version": "2026-11-01",
                "created_at": NOW,
                "updated_at": NOW,
                "bounce_count": 0,
            }
            for n in range(start, min(count, start + 100_000))
        ]
        with engine.begin() as conn:
            db.insert_many(conn, db.subscribers, rows)


def realistic_issue(engine: sa.Engine) -> int:
    import_sources(engine, [str(f) for f in FEEDS], NOW)
    with engine.begin() as conn:
        issue = new_issue(conn, NOW.date(), NOW)
        # the demo feed's sixteen, with two long Cyrillic pieces: about 75 KB a message
        english = conn.execute(
            sa.select(db.articles.c.id).where(db.articles.c.source.contains("demo_feed"))
        ).scalars()
        cyrillic = conn.execute(
            sa.select(db.articles.c.id)
            .where(db.articles.c.source.contains("onliner"))
            .order_by(sa.func.length(db.articles.c.summary).desc())
            .limit(2)
        ).scalars()
        pick(conn, issue.id, [*english, *cyrillic], NOW)
        set_fields(
            conn,
            issue.id,
            NOW,
            subject="Главное за неделю: шестнадцать историй",
            preheader="From the budget vote to the night libraries, picked by our editors.",
            note="Доброе утро! " * 40,
        )
        return approve(conn, issue.id, NOW).id


def ceiling(port: int, data: bytes, count: int, threads: int) -> float:
    """smtplib alone, `threads` connections sending prepared dot-stuffed bytes: messages/s."""
    per_thread = count // threads

    def work() -> None:
        smtp = smtplib.SMTP("127.0.0.1", port)
        smtp.ehlo()
        for n in range(per_thread):
            smtp.mail("bounces@example.org")
            smtp.rcpt(f"reader{n}@example.org")
            smtp.putcmd("data")
            smtp.getreply()
            smtp.send(data + b".\r\n")
            smtp.getreply()
        smtp.quit()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return per_thread * threads / (time.perf_counter() - started)


def build_rate(desk: Desk, issue_id: int, count: int) -> tuple[float, int]:
    with desk.engine.connect() as conn:
        from newsletter.curation.issues import get_issue

        composed = compose(get_issue(conn, issue_id), desk.settings, NOW)
    readers = [Reader(n, f"reader{n}@example.org", "Анна Петрова") for n in range(count)]
    started = time.perf_counter()
    size = 0
    for reader in readers:
        values = composed.sender.reader_values(reader, issue_id)
        msgid = message_id(issue_id, reader.id, composed.sender)
        size += len(build_message(composed.prepared, reader, values, msgid, True))
    return count / (time.perf_counter() - started), size // count


class CountingTransport:
    """Takes every message and keeps only a count: what memory a send itself needs."""

    wants_stuffed = True

    def __init__(self) -> None:
        self.count = 0

    def send(self, envelope: Envelope) -> str:
        self.count += 1
        return "250 counted"

    def close(self) -> None:
        pass


def prepare_run(folder: Path, readers: int) -> None:
    """In a process of its own: a desk with `readers` readers and the issue's audience
    snapshotted (timed), so the sending process measures only itself."""
    desk = make_desk(folder)
    issue_id = realistic_issue(desk.engine)
    seed(desk.engine, readers)
    started = time.perf_counter()
    with desk.engine.begin() as conn:
        snapshot_audience(conn, issue_id, NOW)
        conn.execute(db.issues.update().values(status="sending"))
    print(json.dumps({"snapshot_s": time.perf_counter() - started}))


def send_run(folder: Path) -> None:
    """In a fresh process: a whole send to a transport that only counts; peak memory."""
    desk = Desk(make_settings(folder))
    started = time.perf_counter()
    report = send_issue(
        1,
        desk.engine,
        desk.settings,
        CountingTransport,
        lambda: datetime.now(UTC),
        options=SendOptions(concurrency=4),
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"sent": report.sent, "send_s": time.perf_counter() - started, "peak_mb": peak})
    )


def measure_memory(readers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        steps = {}
        for step in (["--prepare-run", tmp, str(readers)], ["--send-run", tmp]):
            out = subprocess.run(
                [sys.executable, __file__, *step], capture_output=True, text=True, check=True
            )
            steps.update(json.loads(out.stdout.strip().splitlines()[-1]))
        return {"readers": readers, **steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--memory", default="100000,1000000")
    parser.add_argument("--prepare-run", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--send-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare_run:
        return prepare_run(Path(args.prepare_run[0]), int(args.prepare_run[1]))
    if args.send_run:
        return send_run(Path(args.send_run))

    sink, port = start_sink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            desk = make_desk(Path(tmp))
            issue_id = realistic_issue(desk.engine)
            seed(desk.engine, args.readers)
            settings = replace(desk.settings, smtp_url=f"smtp://127.0.0.1:{port}")
            options = SendOptions(concurrency=args.connections)
            started = time.perf_counter()
            report = send_issue(
                issue_id,
                desk.engine,
                settings,
                lambda: open_transport(settings.smtp_url, settings.outbox),
                lambda: datetime.now(UTC),
                options=options,
            )
            end_to_end = report.sent / (time.perf_counter() - started)
            assert report.sent == args.readers and report.failed == 0, report.lines()
            rate, size = build_rate(desk, issue_id, 20_000)
            with desk.engine.connect() as conn:
                from newsletter.curation.issues import get_issue

                composed = compose(get_issue(conn, issue_id), desk.settings, NOW)
            reader = Reader(1, "reader1@example.org", "Анна Петрова")
            sample = build_message(
                composed.prepared,
                reader,
                composed.sender.reader_values(reader, issue_id),
                "<x@y>",
                True,
            )
            top = ceiling(port, sample, args.readers, args.connections)
    finally:
        sink.terminate()
        sink.wait()

    print(f"issue: {len(composed.issue.items)} articles, {size / 1024:.1f} KB per message")
    print(
        f"end to end: {args.readers:,} readers, {args.connections} connections: "
        f"{end_to_end:,.0f} messages/s (target 3,000)"
    )
    print(f"ceiling (smtplib, {args.connections} threads, prepared bytes): {top:,.0f} messages/s")
    print(f"ratio end to end / ceiling: {end_to_end / top:.2f} (target 0.6)")
    print(f"building per reader, one core: {rate:,.0f} messages/s (target 10,000)")
    sizes = [int(n) for n in args.memory.split(",") if n]
    results = [measure_memory(readers) for readers in sizes]
    for r in results:
        print(
            f"{r['readers']:,} readers: snapshot {r['snapshot_s']:.1f} s, whole send "
            f"{r['send_s']:.0f} s, peak memory {r['peak_mb']:.0f} MB"
        )
    if len(results) >= 2:
        print(
            f"peak memory ratio {results[-1]['readers']:,} / {results[0]['readers']:,}: "
            f"{results[-1]['peak_mb'] / results[0]['peak_mb']:.2f} (target at most 1.25)"
        )


if __name__ == "__main__":
    main()

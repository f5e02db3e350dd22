"""Sending an issue: the delivery ledger decides, records each outcome as it happens.

A delivery row is pending -> claimed -> sent, failed (permanent) or deferred
(retry later). A row is claimed, committed, then handed to the transport, and its
outcome committed at once; so a run that dies leaves at most the message in flight
as `claimed`, which the next run reports as uncertain instead of mailing it twice.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from time import monotonic
from typing import Any

import sqlalchemy as sa

from . import db
from .config import Settings
from .errors import (
    InputError,
    PermanentDeliveryError,
    StateError,
    TemporaryDeliveryError,
)
from .issues import get_issue
from .messages import PreparedMessage, Sender, build_message, message_id, prepare_message
from .models import Issue, Reader
from .preflight import Report, check
from .rendering import RenderedIssue, Site, personalise, render_issue
from .subscribers import record_permanent_failure
from .transports import Envelope, Transport

Clock = Callable[[], datetime]
FINAL = ("sent", "failed", "skipped")
LEASE = timedelta(minutes=10)
BATCH = 200
MAX_ATTEMPTS = 5
PAUSE_AFTER = 10  # consecutive temporary failures that mean the relay is down


@dataclass
class SendReport:
    issue_id: int
    audience: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    already_sent: int = 0
    uncertain: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    status: str = ""
    failures: list[str] = field(default_factory=list)
    paused: str | None = None
    preflight: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        rate = self.sent / self.seconds if self.seconds else 0.0
        head = "dry run: nothing sent" if self.dry_run else f"issue {self.issue_id}: {self.status}"
        out = [
            head,
            f"audience {self.audience}: sent now {self.sent}, sent before {self.already_sent}, "
            f"failed {self.failed}, deferred {self.deferred}, skipped {self.skipped}, "
            f"uncertain {self.uncertain}",
            f"{self.seconds:.2f} s, {rate:.0f} messages/s",
        ]
        out += [f"failure: {f}" for f in self.failures[:5]]
        if self.paused:
            out.append(f"paused: {self.paused} (run send again to resume)")
        return out


@dataclass(frozen=True)
class Composed:
    """An issue rendered and prepared once, ready to be filled per reader."""

    issue: Issue
    rendered: RenderedIssue
    prepared: PreparedMessage
    sender: Sender
    preflight: Report


def compose(issue: Issue, settings: Settings, now: datetime, *, test: bool = False) -> Composed:
    sender = Sender.from_settings(settings)
    rendered = render_issue(issue, Site.from_settings(settings), settings.templates, is_test=test)
    sample = Reader(id=0, email="reader@example.org", name="")
    html, text = personalise(rendered, sender.reader_values(sample, issue.id))
    report = check(rendered, html, text, settings.privacy_link)
    prepared = prepare_message(rendered, sender, issue.id, now, test=test)
    return Composed(issue, rendered, prepared, sender, report)


def envelope_sender(settings: Settings) -> str:
    return parseaddr(settings.bounce_address or "")[1] or settings.sender_address


def send_test(
    issue_ref: str | int,
    addresses: Sequence[str],
    engine: sa.Engine,
    settings: Settings,
    transport: Transport,
    now: datetime,
) -> list[str]:
    """A marked test copy to each address, outside the ledger; returns the Message-IDs."""
    with engine.connect() as conn:
        issue = get_issue(conn, issue_ref)
    composed = compose(issue, settings, now, test=True)
    ids = []
    for number, address in enumerate(addresses):
        if "@" not in address:
            raise InputError(f"--test-to: {address!r} is not an email address")
        reader = Reader(id=0, email=address.strip(), name="")
        msgid = f"<test.{issue.id}.{int(now.timestamp())}.{number}@{composed.sender.domain}>"
        values = composed.sender.reader_values(reader, issue.id)
        data = build_message(composed.prepared, reader, values, msgid)
        transport.send(Envelope(envelope_sender(settings), reader.email, msgid, data))
        ids.append(msgid)
    return ids


def snapshot_audience(conn: sa.Connection, issue_id: int, now: datetime) -> int:
    """One ledger row per active reader, in one INSERT … SELECT; returns rows added."""
    d, s = db.deliveries, db.subscribers
    already = sa.exists().where(d.c.issue_id == issue_id).where(d.c.subscriber_id == s.c.id)
    query = sa.select(
        sa.literal(issue_id), s.c.id, sa.literal("pending"), sa.literal(now, db.UTCDateTime)
    ).where(s.c.status == "active", ~already)
    result = conn.execute(
        d.insert().from_select(["issue_id", "subscriber_id", "status", "updated_at"], query)
    )
    return int(result.rowcount or 0)


def ledger_counts(conn: sa.Connection, issue_id: int) -> dict[str, int]:
    d = db.deliveries
    rows = conn.execute(
        sa.select(d.c.status, sa.func.count()).where(d.c.issue_id == issue_id).group_by(d.c.status)
    )
    return {status: int(count) for status, count in rows}


def _begin(engine: sa.Engine, issue_ref: str | int, now: datetime, resend_uncertain: bool) -> Issue:
    """Move an approved issue to sending with its audience; find expired claims."""
    d = db.deliveries
    with engine.begin() as conn:
        issue = get_issue(conn, issue_ref)
        if issue.status == "approved":
            snapshot_audience(conn, issue.id, now)
            conn.execute(
                db.issues.update().where(db.issues.c.id == issue.id).values(status="sending")
            )
        elif issue.status not in ("sending", "sent"):
            raise StateError(f"issue {issue.id} is {issue.status}: only an approved issue is sent")
        conn.execute(
            d.update()
            .where(d.c.issue_id == issue.id, d.c.status == "claimed", d.c.lease_until < now)
            .values(status="uncertain", updated_at=now)
        )
        if resend_uncertain:
            conn.execute(
                d.update()
                .where(d.c.issue_id == issue.id, d.c.status == "uncertain")
                .values(status="pending", updated_at=now)
            )
        return get_issue(conn, issue.id)


def _due(engine: sa.Engine, issue_id: int, now: datetime) -> list[tuple[int, int, str, str, str]]:
    d, s = db.deliveries, db.subscribers
    due = sa.or_(
        d.c.status == "pending", sa.and_(d.c.status == "deferred", d.c.next_attempt_at <= now)
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.subscriber_id, d.c.attempts, s.c.email, s.c.name, s.c.status)
            .join(s, s.c.id == d.c.subscriber_id)
            .where(d.c.issue_id == issue_id, due)
            .order_by(d.c.subscriber_id)
            .limit(BATCH)
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


class Ledger:
    """Writes one issue's outcomes, each in its own committed transaction."""

    def __init__(self, engine: sa.Engine, issue_id: int, clock: Clock) -> None:
        self.engine, self.issue_id, self.clock = engine, issue_id, clock
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def _set(self, subscriber_id: int, where: Any, **values: Any) -> bool:
        d = db.deliveries
        with self.engine.begin() as conn:
            result = conn.execute(
                d.update()
                .where(d.c.issue_id == self.issue_id, d.c.subscriber_id == subscriber_id, where)
                .values(updated_at=self.clock(), **values)
            )
            return bool(result.rowcount)

    def claim(self, subscriber_id: int) -> bool:
        d = db.deliveries
        return self._set(
            subscriber_id,
            d.c.status.in_(("pending", "deferred")),
            status="claimed",
            worker=self.worker,
            lease_until=self.clock() + LEASE,
        )

    def outcome(self, subscriber_id: int, status: str, **values: Any) -> None:
        self._set(subscriber_id, db.deliveries.c.status == "claimed", status=status, **values)

    def refused(self, subscriber_id: int, reply: str, attempts: int, bounce_limit: int) -> None:
        """A permanent refusal: the row fails and the reader's bounce count grows, together."""
        d = db.deliveries
        with self.engine.begin() as conn:
            conn.execute(
                d.update()
                .where(d.c.issue_id == self.issue_id, d.c.subscriber_id == subscriber_id)
                .where(d.c.status == "claimed")
                .values(status="failed", reply=reply, attempts=attempts, updated_at=self.clock())
            )
            record_permanent_failure(conn, subscriber_id, reply, bounce_limit, self.clock())

    def skip(self, subscriber_id: int, why: str) -> None:
        self._set(
            subscriber_id,
            db.deliveries.c.status.in_(("pending", "deferred")),
            status="skipped",
            reply=why,
        )


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=2 ** min(attempts, 8))


def send_issue(
    issue_ref: str | int,
    engine: sa.Engine,
    settings: Settings,
    transport: Transport,
    clock: Clock,
    *,
    dry_run: bool = False,
    resend_uncertain: bool = False,
) -> SendReport:
    """Send an approved issue to every active reader once; safe to run again."""
    started = monotonic()
    with engine.connect() as conn:
        issue = get_issue(conn, issue_ref)
    composed = compose(issue, settings, clock())
    report = SendReport(issue.id, dry_run=dry_run, preflight=composed.preflight.as_dict())
    if composed.preflight.errors:
        raise StateError(
            f"issue {issue.id} fails preflight: "
            + "; ".join(f.message for f in composed.preflight.errors)
        )
    if dry_run:
        return _dry_run(engine, issue, report, started)
    issue = _begin(engine, issue.id, clock(), resend_uncertain)
    ledger = Ledger(engine, issue.id, clock)
    report.paused = _deliver(engine, issue, composed, ledger, transport, settings, report)
    return _finish(engine, issue.id, report, clock(), started)


def _dry_run(engine: sa.Engine, issue: Issue, report: SendReport, started: float) -> SendReport:
    if issue.status not in ("approved", "sending", "sent"):
        raise StateError(f"issue {issue.id} is {issue.status}: only an approved issue is sent")
    with engine.connect() as conn:
        active = conn.execute(
            sa.select(sa.func.count()).where(db.subscribers.c.status == "active")
        ).scalar_one()
    report.audience, report.status = int(active), issue.status
    report.seconds = monotonic() - started
    return report


def _deliver(
    engine: sa.Engine,
    issue: Issue,
    composed: Composed,
    ledger: Ledger,
    transport: Transport,
    settings: Settings,
    report: SendReport,
) -> str | None:
    """Send every due row; returns why the send paused, or None when it ran out of work."""
    bounce_to, sender, domain = envelope_sender(settings), composed.sender, composed.sender.domain
    temporary_run = 0
    while rows := _due(engine, issue.id, ledger.clock()):
        for subscriber_id, attempts, email, name, status in rows:
            if status != "active":
                ledger.skip(subscriber_id, f"reader is {status}")
                report.skipped += 1
                continue
            if not ledger.claim(subscriber_id):
                continue  # another sender took it
            reader = Reader(subscriber_id, email, name)
            msgid = message_id(issue.id, subscriber_id, domain)
            data = build_message(
                composed.prepared, reader, sender.reader_values(reader, issue.id), msgid
            )
            try:
                reply = transport.send(Envelope(bounce_to, email, msgid, data))
            except PermanentDeliveryError as exc:
                ledger.refused(subscriber_id, str(exc), attempts + 1, settings.bounce_limit)
                report.failed += 1
                report.failures.append(f"{email}: {exc}")
                temporary_run = 0
                continue
            except TemporaryDeliveryError as exc:
                final = attempts + 1 >= MAX_ATTEMPTS
                ledger.outcome(
                    subscriber_id,
                    "failed" if final else "deferred",
                    reply=str(exc),
                    attempts=attempts + 1,
                    next_attempt_at=ledger.clock() + backoff(attempts),
                )
                report.failures.append(f"{email}: {exc}")
                temporary_run += 1
                if temporary_run >= PAUSE_AFTER:
                    return f"{temporary_run} temporary failures in a row, the last: {exc}"
                continue
            ledger.outcome(
                subscriber_id, "sent", reply=reply, message_id=msgid, attempts=attempts + 1
            )
            report.sent += 1
            temporary_run = 0
    return None


def _finish(
    engine: sa.Engine, issue_id: int, report: SendReport, now: datetime, started: float
) -> SendReport:
    with engine.begin() as conn:
        counts = ledger_counts(conn, issue_id)
        if sum(counts.values()) == sum(counts.get(s, 0) for s in FINAL):
            conn.execute(
                db.issues.update()
                .where(db.issues.c.id == issue_id, db.issues.c.status == "sending")
                .values(status="sent", sent_at=now, updated_at=now)
            )
        status = get_issue(conn, issue_id).status
    report.audience = sum(counts.values())
    report.already_sent = counts.get("sent", 0) - report.sent
    report.deferred = counts.get("deferred", 0)
    report.uncertain = counts.get("uncertain", 0)
    report.status = status
    report.seconds = monotonic() - started
    return report

"""Sending an issue: the ledger drives it, connections work in parallel, outcomes are
committed as they happen.

The main thread reserves due rows in batches and feeds them to one thread per SMTP
connection. A connection thread claims a row (committed), hands the prepared bytes
to its relay, and commits the outcome at once; so a send that dies leaves at most
one message per connection uncertain, and a rerun continues where it stopped.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from time import monotonic

import sqlalchemy as sa

from newsletter import publications
from newsletter.compose.issue import compose, envelope_sender
from newsletter.compose.messages import build_message
from newsletter.curation.issues import get_issue
from newsletter.delivery import ledger
from newsletter.delivery.report import SendOptions, SendReport
from newsletter.delivery.run import HANDFUL, Run, Work
from newsletter.errors import (
    InputError,
    StateError,
)
from newsletter.models import Issue, Reader
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope, Transport
from newsletter.transport.pool import RelayPool

Clock = Callable[[], datetime]


Transports = Transport | Callable[[], Transport]


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
        settings = publications.view_of(conn, settings, issue.newsletter_id)
    composed = compose(issue, settings, now, test=True)
    ids = []
    for number, address in enumerate(addresses):
        if "@" not in address:
            raise InputError(f"--test-to: {address!r} is not an email address")
        reader = Reader(id=0, email=address.strip(), name="")
        msgid = f"<test.{issue.id}.{number}.{secrets.token_hex(8)}@{composed.sender.domain}>"
        values = composed.sender.reader_values(reader, issue.id)
        data = build_message(composed.prepared, reader, values, msgid, transport.wants_stuffed)
        envelope = Envelope(
            envelope_sender(settings), reader.email, msgid, data, transport.wants_stuffed
        )
        transport.send(envelope)
        ids.append(msgid)
    return ids


def _begin(
    engine: sa.Engine, issue_ref: str | int, now: datetime, resend: bool, allow_empty: bool
) -> Issue:
    """Move an approved issue to sending with its audience; recover rows of dead workers.
    An audience of nobody is refused: the issue would be sent for good, and readers who
    confirm later would never get it."""
    with engine.begin() as conn:
        issue = get_issue(conn, issue_ref)
        started = conn.execute(  # one of two senders starting at once snapshots, not both
            db.issues.update()
            .where(db.issues.c.id == issue.id, db.issues.c.status == "approved")
            .values(status="sending")
        ).rowcount
        if started:
            ledger.snapshot_audience(conn, issue.id, now)
            if not allow_empty and not sum(ledger.counts(conn, issue.id).values()):
                raise StateError(
                    f"issue {issue.id} has no active reader to go to: nothing was sent and it "
                    "stays approved (--allow-empty sends it to nobody and marks it sent)"
                )
        elif get_issue(conn, issue.id).status not in ("sending", "sent"):
            raise StateError(f"issue {issue.id} is {issue.status}: only an approved issue is sent")
        ledger.recover(conn, issue.id, now)
        if resend:
            ledger.resend_uncertain(conn, issue.id, now)
        return get_issue(conn, issue.id)


def start_send(
    engine: sa.Engine, issue_ref: str | int, now: datetime, *, allow_empty: bool = False
) -> tuple[Issue, int]:
    """Only start: the audience snapshot and `sending`, for workers to do the rest;
    returns the issue and the readers it goes to."""
    issue = _begin(engine, issue_ref, now, resend=False, allow_empty=allow_empty)
    with engine.connect() as conn:
        return issue, sum(ledger.counts(conn, issue.id).values())


def _join(engine: sa.Engine, issue_id: int, now: datetime) -> Issue:
    """Join a send another process started: no snapshot, only the rows of dead workers."""
    with engine.begin() as conn:
        issue = get_issue(conn, issue_id)
        if issue.status != "sending":
            raise StateError(f"issue {issue.id} is {issue.status}: a worker joins only a send")
        ledger.recover(conn, issue.id, now)
        return issue


def send_issue(
    issue_ref: str | int,
    engine: sa.Engine,
    settings: Settings,
    transports: Transports,
    clock: Clock,
    *,
    dry_run: bool = False,
    resend_uncertain: bool = False,
    join: bool = False,
    allow_empty: bool = False,
    options: SendOptions | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[SendReport], None] | None = None,
) -> SendReport:
    """Send an approved issue to every active reader once; safe to run again, and in parallel.

    `transports` is one transport (then one connection) or a factory called once per
    connection (a RelayPool shares several relays). `stop`, when set (SIGINT, SIGTERM),
    finishes in-flight messages and puts the rest back. `join` works the rows of a send
    already under way (a worker on another host) and never starts one."""
    started = monotonic()
    options = options or SendOptions.from_settings(settings)
    with engine.connect() as conn:
        issue = get_issue(conn, issue_ref)
        settings = publications.view_of(conn, settings, issue.newsletter_id)  # its sender, …
    composed = compose(issue, settings, clock())
    report = SendReport(issue.id, dry_run=dry_run, preflight=composed.preflight.as_dict())
    # Gmail's clipping goes out only when the editor approved it so: the issue may have
    # grown since (a re-import's longer summaries), or been approved before the check
    refusal = composed.preflight.refusal(f"issue {issue.id}", force=issue.clip_forced)
    if refusal:
        raise StateError(refusal)
    if dry_run:
        return _dry_run(engine, issue, report, started)
    if join:
        issue = _join(engine, issue.id, clock())
    else:
        issue = _begin(engine, issue.id, clock(), resend_uncertain, allow_empty)
    with engine.connect() as conn:
        before = ledger.counts(conn, issue.id)
    report.audience, report.already_sent = sum(before.values()), before.get("sent", 0)
    events = len(transports.events) if isinstance(transports, RelayPool) else 0
    connections = _connections(transports, options.concurrency)
    run = Run(engine, settings, composed, options, clock, report, len(connections))
    if stop is not None:
        run.stop = stop  # the caller's signal handlers set it
    _feed(run, connections, progress, started)
    if isinstance(transports, RelayPool):
        report.relays = transports.events[events:]  # a worker's pool outlives one send
    report.stopped = run.stop.is_set() and not report.paused
    report.failure_alert = options.failure_alert
    return _finish(engine, issue.id, report, clock(), started)


def _connections(transports: Transports, concurrency: int) -> list[Transport]:
    """One transport for each connection thread: the one given, or `concurrency` of the
    factory's, no more than a relay pool has room for (more would only find it full)."""
    if not callable(transports):
        return [transports]
    if isinstance(transports, RelayPool) and transports.capacity is not None:
        concurrency = min(concurrency, transports.capacity)
    return [transports() for _ in range(concurrency)]


def _feed(
    run: Run,
    connections: list[Transport],
    progress: Callable[[SendReport], None] | None,
    started: float,
) -> None:
    """Reserve due rows batch by batch and hand them to the connection threads."""
    issue_id, engine = run.composed.issue.id, run.engine
    work: Work = queue.Queue(maxsize=run.options.batch * 2 // HANDFUL + 1)  # two batches
    threads = [
        threading.Thread(target=run.connection, args=(work, t), daemon=True) for t in connections
    ]
    run.writer.start()
    for thread in threads:
        thread.start()
    upkeep = 0.0  # leases renewed and dead workers' rows recovered every half minute, not per
    try:  # batch: each is a write the ledger writer would otherwise wait behind
        while not run.stop.is_set():
            with engine.begin() as conn:
                if monotonic() - upkeep > 30:
                    ledger.recover(conn, issue_id, run.clock())
                    ledger.renew(conn, issue_id, run.worker, run.clock())
                    upkeep = monotonic()
                batch = ledger.reserve(conn, issue_id, run.worker, run.options.batch, run.clock())
            if not batch and not _wait_for_retries(run, started):
                break
            for start in range(0, len(batch), HANDFUL):
                work.put(batch[start : start + HANDFUL])
            if progress:
                run.report.seconds = monotonic() - started
                progress(run.report)
    except BaseException:
        run.stop.set()  # the connections finish what is in flight and take nothing more
        raise
    finally:
        for _ in threads:
            work.put(None)
        for thread in threads:
            thread.join()
        try:
            run.writer.close()
        finally:
            with engine.begin() as conn:
                ledger.release(conn, issue_id, run.worker, run.clock())


def _wait_for_retries(run: Run, started: float) -> bool:
    """Nothing is due now. While rows are in flight, wait for them (they may be deferred);
    then wait for deferred rows as long as the options allow. False: stop feeding."""
    d = db.deliveries
    with run.engine.connect() as conn:
        soonest = ledger.next_due(conn, run.composed.issue.id)
        ours = conn.execute(  # only this process's rows: another worker finishes its own
            sa.select(sa.func.count()).where(
                d.c.issue_id == run.composed.issue.id,
                d.c.worker == run.worker,
                d.c.status.in_(("queued", "claimed")),
            )
        ).scalar_one()
    if ours:
        run.stop.wait(0.02)
        return True
    waited = timedelta(seconds=monotonic() - started)
    if soonest is None or waited >= run.options.wait_for_retries:
        return False
    delay = (soonest - run.clock()).total_seconds()
    run.stop.wait(min(max(delay, 0.05), 5.0))
    return True


def _dry_run(engine: sa.Engine, issue: Issue, report: SendReport, started: float) -> SendReport:
    if issue.status not in ("approved", "sending", "sent"):
        raise StateError(f"issue {issue.id} is {issue.status}: only an approved issue is sent")
    with engine.connect() as conn:
        active = conn.execute(
            sa.select(sa.func.count()).where(
                db.subscribers.c.status == "active",
                db.subscribers.c.newsletter_id == issue.newsletter_id,
            )
        ).scalar_one()
    report.audience, report.status = int(active), issue.status
    report.seconds = monotonic() - started
    return report


def _finish(
    engine: sa.Engine, issue_id: int, report: SendReport, now: datetime, started: float
) -> SendReport:
    with engine.begin() as conn:
        counts = ledger.counts(conn, issue_id)
        if sum(counts.values()) == sum(counts.get(s, 0) for s in ledger.FINAL):
            conn.execute(
                db.issues.update()
                .where(db.issues.c.id == issue_id, db.issues.c.status == "sending")
                .values(status="sent", sent_at=now, updated_at=now)
            )
        report.status = get_issue(conn, issue_id).status
        report.uncertain_readers = ledger.uncertain_readers(conn, issue_id)
        report.reasons = ledger.reasons(conn, issue_id)
    report.audience = sum(counts.values())
    report.already_sent = counts.get("sent", 0) - report.sent
    report.deferred = counts.get("deferred", 0)
    report.uncertain = counts.get("uncertain", 0)
    report.seconds = monotonic() - started
    return report

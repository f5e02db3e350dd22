"""Sending an issue: the ledger drives it, connections work in parallel, outcomes are
committed as they happen.

The main thread reserves due rows in batches and feeds them to one thread per SMTP
connection. A connection thread claims a row (committed), hands the prepared bytes
to its relay, and commits the outcome at once; so a send that dies leaves at most
one message per connection uncertain, and a rerun continues where it stopped.
"""

from __future__ import annotations

import queue
import random
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from typing import Any

import sqlalchemy as sa

from newsletter.compose.issue import Composed, compose, envelope_sender
from newsletter.compose.messages import build_message, message_id
from newsletter.compose.returnpath import return_paths
from newsletter.curation.issues import get_issue
from newsletter.delivery import ledger
from newsletter.delivery.writer import LedgerWriter, Outcome
from newsletter.errors import (
    Cancelled,
    InputError,
    PermanentDeliveryError,
    RelayUnavailable,
    StateError,
    TemporaryDeliveryError,
    UncertainDelivery,
)
from newsletter.models import Issue, Reader
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope, Transport
from newsletter.transport.pool import RelayPool
from newsletter.transport.rate import RateLimit

Clock = Callable[[], datetime]


Transports = Transport | Callable[[], Transport]


Work = queue.Queue[list[ledger.Due] | None]  # reserved rows for the connections, or the end


HANDFUL = 16  # rows a connection takes from the queue at once: one queue operation, not 16


@dataclass(frozen=True)
class SendOptions:
    # the settings' own defaults, not a second copy of them
    concurrency: int = Settings.concurrency
    rate: float = Settings.rate  # messages per second, 0 for no cap
    rate_per_hour: int = Settings.rate_per_hour
    pause_after: int = Settings.pause_after  # consecutive relay failures that pause the send
    max_attempts: int = 5
    retry_base: timedelta = timedelta(minutes=1)
    wait_for_retries: timedelta = timedelta(0)  # stay this long for deferred rows to come due
    batch: int = 500

    @classmethod
    def from_settings(cls, settings: Settings) -> SendOptions:
        return cls(
            concurrency=settings.concurrency,
            rate=settings.rate,
            rate_per_hour=settings.rate_per_hour,
            pause_after=settings.pause_after,
        )


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
    stopped: bool = False
    preflight: dict[str, Any] | None = None
    uncertain_readers: list[str] = field(default_factory=list)
    relays: list[str] = field(default_factory=list)  # relays taken out during the send

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        head = "dry run: nothing sent" if self.dry_run else f"issue {self.issue_id}: {self.status}"
        out = [
            head,
            f"audience {self.audience}: sent now {self.sent}, sent before {self.already_sent}, "
            f"failed {self.failed}, deferred {self.deferred}, skipped {self.skipped}, "
            f"uncertain {self.uncertain}",
            f"{self.seconds:.2f} s, {self.rate:.0f} messages/s",
        ]
        out += [f"failure: {f}" for f in self.failures[:5]]
        out += [
            f"uncertain: {r} (not re-sent; --resend-uncertain sends)"
            for r in self.uncertain_readers[:20]
        ]
        out += self.relays
        if self.paused:
            out.append(f"paused: {self.paused} (run send again to resume)")
        if self.stopped:
            out.append("stopped on request; run send again to resume")
        return out


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
        msgid = f"<test.{issue.id}.{number}.{secrets.token_hex(8)}@{composed.sender.domain}>"
        values = composed.sender.reader_values(reader, issue.id)
        data = build_message(composed.prepared, reader, values, msgid, transport.wants_stuffed)
        envelope = Envelope(
            envelope_sender(settings), reader.email, msgid, data, transport.wants_stuffed
        )
        transport.send(envelope)
        ids.append(msgid)
    return ids


class Run:
    """One send of one issue by this process: shared counters and the stop signals."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        composed: Composed,
        options: SendOptions,
        clock: Clock,
        report: SendReport,
        connections: int,
    ) -> None:
        self.engine, self.settings, self.composed = engine, settings, composed
        self.options, self.clock, self.report = options, clock, report
        self.worker = ledger.worker_name()
        self.lock = threading.Lock()
        self.stop = threading.Event()  # SIGINT/SIGTERM or a pause: finish in-flight, take no more
        self.relay_failures = 0
        self.defects = 0
        self.rate = RateLimit(options.rate, options.rate_per_hour)
        self.bounce_to = envelope_sender(settings)
        self.return_path = return_paths(
            composed.sender.secret, settings.bounce_address, composed.issue.id, self.bounce_to
        )
        self.writer = LedgerWriter(
            engine, composed.issue.id, self.worker, clock, settings.bounce_limit, connections
        )

    def count(self, outcome: str, failure: str | None = None) -> None:
        with self.lock:
            setattr(self.report, outcome, getattr(self.report, outcome) + 1)
            if failure and len(self.report.failures) < 100:
                self.report.failures.append(failure)

    def relay_trouble(self, error: RelayUnavailable) -> None:
        with self.lock:
            self.relay_failures += 1
            if self.relay_failures >= self.options.pause_after and not self.report.paused:
                self.report.paused = f"{self.relay_failures} relay failures in a row: {error}"
                self.stop.set()

    def defect(self, error: Exception) -> None:
        """An error that is not a delivery outcome (a bug, bad data): the reader's row becomes
        uncertain; several in a row pause the send rather than repeat it for every reader."""
        with self.lock:
            self.defects += 1
            if self.defects >= self.options.pause_after and not self.report.paused:
                self.report.paused = f"{self.defects} unexpected errors in a row: {error!r}"
                self.stop.set()

    def relay_ok(self) -> None:
        if self.relay_failures or self.defects:
            with self.lock:
                self.relay_failures = self.defects = 0

    def retry_at(self, attempts: int) -> datetime:
        """Exponential backoff with jitter, so deferred readers do not return in a herd."""
        delay = self.options.retry_base.total_seconds() * 2 ** min(attempts, 10)
        return self.clock() + timedelta(seconds=delay * random.uniform(0.75, 1.25))

    def deliver(
        self, due: ledger.Due, transport: Transport, previous: Outcome | None
    ) -> Outcome | None:
        """One reader: claim (settling the connection's previous message in the same commit),
        send, and return the outcome, which the next claim or the end of the run commits."""
        issue_id, sid = self.composed.issue.id, due.subscriber_id
        if due.status != "active":  # withdrew after the snapshot: nothing more is sent
            if previous is not None:
                self.writer.settle(previous)
            self.count("skipped")
            return Outcome(sid, "skipped", {"reply": f"reader is {due.status}"})
        claim = self.writer.request_claim(sid, previous)  # committed while MAIL/RCPT go out
        reader = Reader(sid, due.email, due.name)
        msgid = message_id(issue_id, sid, self.composed.sender)
        values = self.composed.sender.reader_values(reader, issue_id)
        stuffed = transport.wants_stuffed
        data = build_message(self.composed.prepared, reader, values, msgid, stuffed)
        attempts = due.attempts + 1

        def ready() -> bool:  # the body goes only once the claim is committed
            return self.writer.wait(claim) == "claimed"

        envelope = Envelope(self.return_path(sid), due.email, msgid, data, stuffed, ready)
        try:
            reply = transport.send(envelope)
        except Cancelled:
            if claim.result == "withdrawn":  # unsubscribed since the batch was reserved
                self.count("skipped")
            return None
        except RelayUnavailable as exc:  # nothing was tried: the reader waits for the relay
            self.relay_trouble(exc)
            return Outcome(sid, "pending", {"worker": None, "lease_until": None, "reply": str(exc)})
        except TemporaryDeliveryError as exc:
            self.relay_ok()
            final = attempts >= self.options.max_attempts
            if self.writer.wait(claim) == "claimed":
                self.count("failed" if final else "deferred", f"{due.email}: {exc}")
            return Outcome(
                sid,
                "failed" if final else "deferred",
                {
                    "reply": str(exc),
                    "attempts": attempts,
                    "next_attempt_at": self.retry_at(due.attempts),
                },
            )
        except PermanentDeliveryError as exc:
            self.relay_ok()
            if self.writer.wait(claim) != "claimed":
                return None
            self.count("failed", f"{due.email}: {exc}")
            return Outcome(sid, "failed", {"reply": str(exc), "attempts": attempts}, str(exc))
        except (UncertainDelivery, Exception) as exc:  # the body may have gone: never re-send
            if not isinstance(exc, UncertainDelivery):
                self.defect(exc)
            if self.writer.wait(claim) != "claimed":
                return None
            self.count("uncertain", f"{due.email}: {exc!r}")
            return Outcome(sid, "uncertain", {"reply": repr(exc), "attempts": attempts})
        self.relay_ok()
        self.count("sent")
        return Outcome(sid, "sent", {"reply": reply, "message_id": msgid, "attempts": attempts})

    def connection(self, work: Work, transport: Transport) -> None:
        """The loop of one connection thread."""
        previous: Outcome | None = None
        try:
            while True:
                try:
                    rows = work.get_nowait()
                except queue.Empty:  # idle: commit the last outcome rather than hold it
                    if previous is not None:
                        self.writer.settle(previous)
                        previous = None
                    rows = work.get()
                if rows is None:
                    break
                for due in rows:
                    self.rate.wait(self.stop)
                    if self.stop.is_set():
                        break  # drain: reserved rows are released by the main thread
                    handed, previous = previous, None  # deliver commits it with its claim
                    previous = self.deliver(due, transport, handed)
        except Exception as exc:  # a defect, not a delivery outcome: stop the whole send
            with self.lock:
                self.report.paused = f"unexpected error in a connection: {exc!r}"
            self.stop.set()
            while work.get() is not None:  # let the feeder finish its puts
                pass
        finally:
            if previous is not None:
                self.writer.settle(previous)
            transport.close()


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
    composed = compose(issue, settings, clock())
    report = SendReport(issue.id, dry_run=dry_run, preflight=composed.preflight.as_dict())
    if composed.preflight.errors:
        reasons = "; ".join(f.message for f in composed.preflight.errors)
        raise StateError(f"issue {issue.id} fails preflight: {reasons}")
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
    if callable(transports):
        count = options.concurrency
        if isinstance(transports, RelayPool) and transports.capacity is not None:
            count = min(count, transports.capacity)  # more would only find every relay full
        connections = [transports() for _ in range(count)]
    else:
        connections = [transports]
    run = Run(engine, settings, composed, options, clock, report, len(connections))
    if stop is not None:
        run.stop = stop  # the caller's signal handlers set it
    _feed(run, connections, progress, started)
    if isinstance(transports, RelayPool):
        report.relays = transports.events[events:]  # a worker's pool outlives one send
    report.stopped = run.stop.is_set() and not report.paused
    return _finish(engine, issue.id, report, clock(), started)


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
            sa.select(sa.func.count()).where(db.subscribers.c.status == "active")
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
    report.audience = sum(counts.values())
    report.already_sent = counts.get("sent", 0) - report.sent
    report.deferred = counts.get("deferred", 0)
    report.uncertain = counts.get("uncertain", 0)
    report.seconds = monotonic() - started
    return report

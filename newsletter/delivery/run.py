"""One send of one issue by this process, seen from a connection thread: each reader's
row claimed, the message built and handed to the relay, the outcome recorded; the
counters, the pause after relay failures in a row, and the backoff of deferred readers.
`delivery.send` starts a run and feeds it."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.compose.issue import Composed, envelope_sender
from newsletter.compose.messages import build_message, message_id
from newsletter.compose.returnpath import return_paths
from newsletter.delivery import ledger
from newsletter.delivery.report import SendOptions, SendReport
from newsletter.delivery.writer import Claim, LedgerWriter, Outcome
from newsletter.errors import (
    Cancelled,
    DeliveryError,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
    UncertainDelivery,
)
from newsletter.models import Reader
from newsletter.reasons import HARD, SENDER
from newsletter.settings import Settings
from newsletter.transport.base import Envelope, Transport
from newsletter.transport.rate import RateLimit

Clock = Callable[[], datetime]
Work = queue.Queue[list[ledger.Due] | None]  # reserved rows for the connections, or the end


SENDER_RUN = 3  # readers in a row refused for the same reason of ours: the send pauses
HANDFUL = 16  # rows a connection takes from the queue at once: one queue operation, not 16


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
        self.refused_us: dict[int, str] = {}  # readers refused in a row for a reason of ours
        self.put_back: set[int] = set()  # readers whose row went back to wait for us once
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

    def sender_refused(self, error: DeliveryError, subscriber_id: int) -> None:
        """A refusal of our mail, not of the reader's address (our sender at MAIL FROM,
        our reputation, authentication or content): at MAIL FROM the send pauses at once,
        otherwise when SENDER_RUN different readers in a row met one; no reader is touched."""
        with self.lock:
            self.refused_us[subscriber_id] = error.reason
            run = len(self.refused_us) >= SENDER_RUN
            if (error.phase == "MAIL" or run) and not self.report.paused:
                where = (
                    "at MAIL FROM"
                    if error.phase == "MAIL"
                    else f"for {SENDER_RUN} readers in a row"
                )
                self.report.paused = (
                    f"the relay refuses our mail {where} ({error.reason}): {error}; no reader "
                    "was marked failed or bounced. Check NEWSLETTER_FROM, "
                    "NEWSLETTER_BOUNCE_ADDRESS, the domain's SPF and DKIM, and the relay's "
                    "limits, then send again"
                )
                self.stop.set()

    def first_put_back(self, subscriber_id: int) -> bool:
        """True the first time a reader's row goes back to wait: a reader refused for a
        reason of ours again in the same send is recorded failed (no bounce) instead, so
        one row cannot come round for ever."""
        with self.lock:
            if subscriber_id in self.put_back:
                return False
            self.put_back.add(subscriber_id)
            return True

    def relay_ok(self) -> None:
        if self.relay_failures or self.defects or self.refused_us:
            with self.lock:
                self.relay_failures = self.defects = 0
                self.refused_us = {}

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
        except Exception as exc:
            return self._not_sent(exc, due, claim)
        self.relay_ok()
        self.count("sent")
        return Outcome(sid, "sent", {"reply": reply, "message_id": msgid, "attempts": attempts})

    def _not_sent(self, error: Exception, due: ledger.Due, claim: Claim) -> Outcome | None:
        """What an error of the relay (or of ours) makes of the reader's row; None when
        the claim was lost (withdrawn, or taken by another worker): nothing to write."""
        sid, attempts = due.subscriber_id, due.attempts + 1
        if isinstance(error, Cancelled):
            if claim.result == "withdrawn":  # unsubscribed since the batch was reserved
                self.count("skipped")
            return None
        if isinstance(error, RelayUnavailable):  # nothing was tried: it waits for the relay
            self.relay_trouble(error)
            return Outcome(
                sid, "pending", {"worker": None, "lease_until": None, "reply": str(error)}
            )
        ours = isinstance(error, DeliveryError) and (
            error.phase == "MAIL" or error.reason in SENDER
        )
        if isinstance(error, TemporaryDeliveryError):
            if ours:  # it waits for us: the reader's attempts are not spent on it
                self.sender_refused(error, sid)
                attempts = due.attempts
            else:
                self.relay_ok()
            final = attempts >= self.options.max_attempts
            if self.writer.wait(claim) == "claimed":
                self.count("failed" if final else "deferred", f"{due.email}: {error}")
            retry = {"attempts": attempts, "next_attempt_at": self.retry_at(due.attempts)}
            values = {"reply": str(error), "reason": error.reason or None, **retry}
            return Outcome(sid, "failed" if final else "deferred", values)
        if isinstance(error, PermanentDeliveryError) and ours:
            self.sender_refused(error, sid)
            if self.first_put_back(sid):  # our fault: it waits for the next send
                back = {"worker": None, "lease_until": None, "reply": str(error)}
                return Outcome(sid, "pending", {**back, "reason": error.reason})
        elif isinstance(error, PermanentDeliveryError):
            self.relay_ok()
        if isinstance(error, PermanentDeliveryError):
            if self.writer.wait(claim) != "claimed":
                return None
            self.count("failed", f"{due.email}: {error}")
            values = {"reply": str(error), "attempts": attempts, "reason": error.reason or None}
            # only the reader's address failing counts toward the reader's bounces
            bounce = str(error) if error.reason in HARD else None
            return Outcome(sid, "failed", values, bounce)
        if not isinstance(error, UncertainDelivery):  # the body may have gone: never re-send
            self.defect(error)
        if self.writer.wait(claim) != "claimed":
            return None
        self.count("uncertain", f"{due.email}: {error!r}")
        return Outcome(sid, "uncertain", {"reply": repr(error), "attempts": attempts})

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

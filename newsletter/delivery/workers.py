"""`newsletter worker`: join the sends under way, on as many hosts as the database serves.

The scheduler (or `newsletter send`) starts a send: it snapshots the audience into the
ledger and moves the issue to `sending`. A worker finds every issue in `sending`,
reserves batches of its due rows (SKIP LOCKED on PostgreSQL, so workers never take the
same row), sends them and commits outcomes as they happen, exactly as `send` does. A
worker that dies leaves its rows to the others: reserved ones go back to pending, the
one in flight per connection becomes uncertain (ledger.recover).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from time import monotonic

import sqlalchemy as sa

from newsletter.delivery import ledger
from newsletter.delivery.notice_queue import drain as drain_notices
from newsletter.delivery.report import SendOptions, SendReport
from newsletter.delivery.send import Transports, send_issue
from newsletter.errors import StateError
from newsletter.settings import Settings
from newsletter.store import tables as db

Clock = Callable[[], datetime]
log = logging.getLogger("newsletter.worker")


class WorkerStop:
    """A stop request (SIGTERM, SIGINT) for the worker, passed on to the send under way.
    Each send gets its own event, so a send that pauses (its relays are down) does not
    stop the worker: it tries again at a later poll. A stop reaches every send under way
    (a scheduler runs one per newsletter at once)."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self._sends: weakref.WeakSet[threading.Event] = weakref.WeakSet()  # the live ones
        self._lock = threading.Lock()

    def set(self) -> None:
        with self._lock:
            self.asked.set()
            for event in list(self._sends):
                event.set()

    def for_send(self) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._sends.add(event)
            if self.asked.is_set():  # asked between two sends
                event.set()
        return event


def sends_under_way(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(db.issues.c.id)
                .where(db.issues.c.status == "sending")
                .order_by(db.issues.c.send_date, db.issues.c.id)
            ).scalars()
        )


def has_due_rows(engine: sa.Engine, issue_id: int, now: datetime) -> bool:
    """Recover the rows of dead workers, then: is anything pending or due for a retry?
    Cheap, so an idle worker polls without rendering the issue."""
    d = db.deliveries
    due = sa.or_(
        d.c.status == "pending", sa.and_(d.c.status == "deferred", d.c.next_attempt_at <= now)
    )
    with engine.begin() as conn:
        ledger.recover(conn, issue_id, now)
        found = conn.execute(sa.select(d.c.subscriber_id).where(d.c.issue_id == issue_id, due))
        return found.first() is not None


class Worker:
    """Polls for sends under way and works them until stopped (or once)."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        transports: Transports,
        clock: Clock,
        stop: WorkerStop,
        progress: Callable[[SendReport], None] | None = None,
        on_report: Callable[[SendReport], None] | None = None,
    ) -> None:
        self.engine, self.settings, self.transports = engine, settings, transports
        self.clock, self.stop, self.progress = clock, stop, progress
        self.on_report = on_report or (lambda _report: None)
        self.options = SendOptions.from_settings(settings)
        self.resting: dict[int, float] = {}  # paused sends wait a relay cool-down

    def run(self, once: bool = False) -> list[SendReport]:
        """Work every send with due rows; with `once` stop when none is left, else poll."""
        reports: list[SendReport] = []
        while not self.stop.asked.is_set():
            # the notices a web process queued and could not send (it stopped, the relay
            # failed): a worker is a second sender for them
            try:
                drain_notices(self.engine, self.settings, self.transports, self.clock)
            except Exception:  # the sends go on; the queue keeps its rows for the next pass
                log.exception("worker: the notices could not be sent")
            reports += self.work_pass()
            if once or self.stop.asked.wait(self.settings.worker_poll.total_seconds()):
                break
        return reports

    def work_pass(self) -> list[SendReport]:
        reports = []
        for issue_id in sends_under_way(self.engine):
            while not self.stop.asked.is_set() and self._ready(issue_id):
                try:
                    report = self._work(issue_id)
                except StateError:  # finished or cancelled since it was listed
                    break
                reports.append(report)
                self.on_report(report)
                if report.paused:
                    self.resting[issue_id] = monotonic() + self._rest()
                if report.paused or not _progressed(report):
                    break
        return reports

    def _work(self, issue_id: int) -> SendReport:
        return send_issue(
            issue_id,
            self.engine,
            self.settings,
            self.transports,
            self.clock,
            join=True,
            options=self.options,
            stop=self.stop.for_send(),
            progress=self.progress,
        )

    def _ready(self, issue_id: int) -> bool:
        if self.resting.get(issue_id, 0.0) > monotonic():
            return False
        return has_due_rows(self.engine, issue_id, self.clock())

    def _rest(self) -> float:
        return self.settings.relay_cooldown.total_seconds()


def _progressed(report: SendReport) -> bool:
    return bool(report.sent + report.failed + report.deferred + report.skipped + report.uncertain)

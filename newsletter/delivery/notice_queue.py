"""The notices the web app owes (confirmation, welcome), sent off the request's path.

A sign-up's answer must not tell, by its time or the time of the next request on the same
worker, whether the address was mailed. So a request only adds a row here, in the
transaction it commits anyway; composing (premailer) and sending happen on a thread of
their own (`Drainer`), never on a request's thread. The queue is a table, so a web process
that stops with mail queued leaves it to the next start or to `newsletter worker`, which
drains it on every poll. A failed mail is tried again later, four times, then given up and
logged: the reader may sign up again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.delivery.notices import NoticeReport, send_notices
from newsletter.readers.subscribers import Mail
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Transport

RETRY_AFTER = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
CLAIM = timedelta(minutes=5)  # a drainer that died holding rows lets go of them after this
BATCH = 50

log = logging.getLogger("newsletter.notices")


def queue_mails(conn: sa.Connection, mails: Sequence[Mail], now: datetime) -> None:
    """Queue the mails in the caller's transaction: they go if, and once, it commits."""
    for mail in mails:
        conn.execute(
            db.notice_queue.insert().values(
                kind=mail.kind,
                subscriber_id=mail.subscriber_id,
                email=mail.email,
                name=mail.name,
                token=mail.token,
                queued_at=now,
                next_try_at=now,
            )
        )


def _claim(engine: sa.Engine, now: datetime) -> list[tuple[int, int, Mail]]:
    """Up to BATCH due rows, each claimed by a compare-and-set, so that two drainers (two
    web processes, a worker) never send the same row."""
    q = db.notice_queue
    claimed = []
    free = sa.or_(q.c.claimed_until.is_(None), q.c.claimed_until < now)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(q).where(q.c.next_try_at <= now, free).order_by(q.c.id).limit(BATCH)
        ).all()
        for row in rows:
            taken = conn.execute(
                q.update().where(q.c.id == row.id, free).values(claimed_until=now + CLAIM)
            ).rowcount
            if taken == 1:
                mail = Mail(row.kind, row.subscriber_id, row.email, row.name, row.token)
                claimed.append((row.id, row.attempts, mail))
    return claimed


def drain(
    engine: sa.Engine,
    settings: Settings,
    transport: Transport | Callable[[], Transport],
    now: Callable[[], datetime],
) -> NoticeReport:
    """Send every due notice; sent ones leave the queue, failed ones wait for their retry."""
    sent, failures = 0, list[str]()
    while claimed := _claim(engine, now()):
        # a factory opens a connection for the batch; a transport given is the caller's
        connection = transport() if callable(transport) else transport
        try:
            for kind in dict.fromkeys(mail.kind for _, _, mail in claimed):
                rows = [row for row in claimed if row[2].kind == kind]
                outcomes = _send_kind(engine, settings, connection, [m for _, _, m in rows], now())
                for (row_id, attempts, _mail), (problem, final) in zip(rows, outcomes, strict=True):
                    if problem is None:
                        sent += 1
                    else:
                        failures.append(problem)
                    _settle(engine, row_id, attempts, problem, final, now())
        finally:
            if connection is not transport:
                connection.close()
    return NoticeReport(sent, tuple(failures))


def _send_kind(
    engine: sa.Engine, settings: Settings, connection: Transport, mails: list[Mail], now: datetime
) -> list[tuple[str | None, bool]]:
    """Each mail's (problem, or None when sent or no longer due; whether trying again is
    pointless). The mails of one kind share one rendering; a failure to make it (a
    template) holds back that kind's rows, and a relay's refusal only its own."""
    with engine.connect() as conn:  # erased (or changed) since it was queued: not sent
        s = db.subscribers
        ids = [mail.subscriber_id for mail in mails]
        current = dict(conn.execute(sa.select(s.c.id, s.c.email).where(s.c.id.in_(ids))).all())
    due = [m for m in mails if current.get(m.subscriber_id) == m.email]
    made: dict[int, tuple[str | None, bool]]
    try:
        report = send_notices(due, engine, settings, connection, now)
    except Exception as exc:
        log.exception("notices: the %s mails could not be made", mails[0].kind)
        made = {id(m): (f"{m.kind} mail to {m.email}: {exc!r}", False) for m in due}
    else:
        problems = dict(zip(report.failed, report.failures, strict=True))
        made = {
            id(m): (problems.get(i), i not in problems or i in report.permanent)
            for i, m in enumerate(due)
        }
    return [made.get(id(m), (None, True)) for m in mails]


def _settle(
    engine: sa.Engine, row_id: int, attempts: int, problem: str | None, final: bool, now: datetime
) -> None:
    q = db.notice_queue
    with engine.begin() as conn:
        if problem is not None and not final and attempts < len(RETRY_AFTER):
            conn.execute(
                q.update()
                .where(q.c.id == row_id)
                .values(
                    attempts=attempts + 1,
                    next_try_at=now + RETRY_AFTER[attempts],
                    claimed_until=None,
                    last_error=problem[:2000],
                )
            )
            log.warning("%s (tried again in %s)", problem, RETRY_AFTER[attempts])
            return
        if problem is not None:
            log.warning("given up after %d tries: %s", attempts + 1, problem)
        conn.execute(q.delete().where(q.c.id == row_id))


def next_retry(engine: sa.Engine) -> datetime | None:
    with engine.connect() as conn:
        q = db.notice_queue  # a claimed row is due when its claim runs out
        due = sa.case(
            (q.c.claimed_until > q.c.next_try_at, q.c.claimed_until), else_=q.c.next_try_at
        )
        found: datetime | None = conn.execute(sa.select(sa.func.min(due))).scalar()
    return found


class Drainer:
    """A web process's sender of notices: `wake()` after a request queued some; a thread
    drains the queue and ends when nothing is due, and a timer wakes it for a retry."""

    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        transport: Callable[[], Transport],
        now: Callable[[], datetime],
    ) -> None:
        self.engine, self.settings, self.transport, self.now = engine, settings, transport, now
        self._lock = threading.Lock()
        self._again = False
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    def wake(self) -> None:
        with self._lock:
            self._again = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="notices", daemon=True)
                self._thread.start()

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is being sent (for a clean stop); False if still busy."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        self.idle()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._again:
                    self._thread = None
                    break
                self._again = False
            try:
                drain(self.engine, self.settings, self.transport, self.now)
            except Exception:  # the database or the templates: logged, the queue keeps it
                log.exception("notices: the queue could not be drained")
        self._plan_retry()

    def _plan_retry(self) -> None:
        try:
            due = next_retry(self.engine)
            if due is None:
                return
            wait = max((due - self.now()).total_seconds(), 1.0)
        except sa.exc.SQLAlchemyError:  # the database is away: look again in a minute
            log.exception("notices: cannot read the queue")
            wait = 60.0
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(wait, self.wake)
            self._timer.daemon = True
            self._timer.start()

"""One thread writes the ledger for all connections of a send, committing in groups.

A connection thread asks to claim its next row and hands over the outcome of its
previous one in the same request; the writer gathers whatever requests are waiting,
applies them in one transaction (executemany where it can) and commits, then tells
each claimer whether its row is now in flight. So every message is claimed in a
committed transaction before its bytes leave, each connection has at most one
message whose outcome is not yet committed, and there is one writer to the database
instead of a crowd waiting on its lock.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from time import monotonic
from typing import Any

import sqlalchemy as sa

from newsletter.delivery.ledger import FLIGHT_LEASE
from newsletter.readers.subscribers import record_permanent_failure
from newsletter.store import tables as db


@dataclass
class Outcome:
    subscriber_id: int
    status: str  # sent, failed, deferred, skipped, or pending (put back: the relay was down)
    values: dict[str, Any] = field(default_factory=dict)
    bounce: str | None = None  # a permanent refusal that counts toward the reader's bounces


@dataclass
class Claim:
    subscriber_id: int
    done: threading.Event = field(default_factory=threading.Event)
    result: str = ""  # claimed, withdrawn (skipped: the reader left) or taken


_STOP = object()


class LedgerWriter:
    # How long a commit waits for more claims to join it, unless every connection has asked:
    # one commit per message would cost this thread more than the message, and the wait
    # hides behind the MAIL/RCPT/DATA round trip the claimer is in meanwhile. Longer than
    # that round trip, connections wait on it: with 8 connections to smtp-sink on loopback,
    # 1 ms gave 3,350-3,430 messages/s and 0.3 ms 3,640-3,940 (about 6 claims a commit).
    GROUP_WINDOW = 0.0003

    def __init__(
        self,
        engine: sa.Engine,
        issue_id: int,
        worker: str,
        clock: Any,
        bounce_limit: int,
        connections: int = 1,
    ) -> None:
        self.engine, self.issue_id, self.worker, self.clock = engine, issue_id, worker, clock
        self.bounce_limit, self.connections = bounce_limit, connections
        self.requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._to_db = db.UTCDateTime().bind_processor(engine.dialect) or (lambda value: value)
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._mark = mark
        # The two statements of every message, as plain driver SQL: SQLAlchemy's per-statement
        # work cost more than SQLite's, and this thread is what every connection waits on.
        self._sent_sql = (
            f"UPDATE deliveries SET status = 'sent', reply = {mark}, attempts = {mark}, "
            f"message_id = {mark}, updated_at = {mark} WHERE issue_id = {mark} "
            f"AND subscriber_id = {mark} AND worker = {mark} AND status IN ('claimed', 'queued')"
        )
        self._claim_sql = (
            f"UPDATE deliveries SET status = 'claimed', lease_until = {mark}, updated_at = {mark} "
            # `status || ''`: look rows up by key; an index on status would scan every queued row
            f"WHERE issue_id = {mark} AND worker = {mark} AND status || '' = 'queued' "
            "AND subscriber_id IN ({ids}) AND EXISTS (SELECT 1 FROM subscribers "
            "WHERE subscribers.id = deliveries.subscriber_id AND subscribers.status = 'active') "
            "RETURNING subscriber_id"
        )

    def start(self) -> LedgerWriter:
        self.thread.start()
        return self

    def request_claim(self, subscriber_id: int, previous: Outcome | None = None) -> Claim:
        """Ask to settle `previous` and claim this row, committed together; does not wait."""
        request = Claim(subscriber_id)
        if previous is not None:
            self.requests.put(previous)
        self.requests.put(request)
        return request

    def wait(self, request: Claim) -> str:
        """The claim's result once committed: claimed, withdrawn or taken."""
        request.done.wait()
        if self.error is not None:
            raise RuntimeError(f"the ledger could not be written: {self.error!r}")
        return request.result

    def settle(self, outcome: Outcome) -> None:
        """Record an outcome with the next commit (the last message of a connection, a skip)."""
        self.requests.put(outcome)

    def close(self) -> None:
        """Commit everything handed over, then stop."""
        self.requests.put(_STOP)
        self.thread.join()
        if self.error is not None:
            raise RuntimeError(f"the ledger could not be written: {self.error!r}")

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _gather(self) -> list[Any]:
        """The next group: what is waiting, and what arrives within the window while fewer
        claims than connections are in it (each connection has at most one claim open)."""
        batch = [self.requests.get()]
        claims = int(isinstance(batch[0], Claim))
        deadline = monotonic() + self.GROUP_WINDOW
        while len(batch) < 1000 and batch[-1] is not _STOP:
            wait = deadline - monotonic() if claims < self.connections else 0
            try:
                batch.append(
                    self.requests.get(timeout=wait) if wait > 0 else self.requests.get_nowait()
                )
            except queue.Empty:
                break
            claims += isinstance(batch[-1], Claim)
        return batch

    def _serve(self) -> None:
        stopping = False
        while not stopping:
            batch = self._gather()
            stopping = any(item is _STOP for item in batch)
            work = [item for item in batch if item is not _STOP]
            try:
                if work and self.error is None:
                    self._write(work)
            except BaseException as exc:  # claimers must not wait forever on a dead writer
                self.error = exc
            finally:
                for item in work:
                    if isinstance(item, Claim):
                        item.done.set()

    def _connection(self) -> sa.Connection:
        """One connection for the writer's life: no pool round trip per commit."""
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _write(self, work: list[Outcome | Claim]) -> None:
        now = self.clock()
        outcomes = [item for item in work if isinstance(item, Outcome)]
        claims = [item for item in work if isinstance(item, Claim)]
        conn = self._connection()
        with conn.begin():
            # the driver's own cursor for the statements of every message: SQLAlchemy's work
            # per statement cost this thread more than SQLite's
            cursor = conn.connection.cursor()
            try:
                self._settle_sent(cursor, [o for o in outcomes if o.status == "sent"], now)
                for outcome in outcomes:
                    if outcome.status != "sent":
                        self._settle_other(conn, outcome, now)
                if claims:
                    self._claim_all(conn, cursor, claims, now)
            finally:
                cursor.close()

    def _settle_sent(self, cursor: Any, sent: list[Outcome], now: datetime) -> None:
        if not sent:
            return
        stamp = self._to_db(now)
        cursor.executemany(
            self._sent_sql,
            [
                (
                    o.values["reply"],
                    o.values["attempts"],
                    o.values["message_id"],
                    stamp,
                    self.issue_id,
                    o.subscriber_id,
                    self.worker,
                )
                for o in sent
            ],
        )

    def _settle_other(self, conn: sa.Connection, outcome: Outcome, now: datetime) -> None:
        d = db.deliveries
        matched = conn.execute(
            d.update()
            .where(
                d.c.issue_id == self.issue_id,
                d.c.subscriber_id == outcome.subscriber_id,
                d.c.worker == self.worker,
                d.c.status.in_(("claimed", "queued")),
            )
            .values(status=outcome.status, updated_at=now, **outcome.values)
        ).rowcount
        if outcome.bounce is not None and matched:  # a refusal counts once, with its row
            record_permanent_failure(
                conn, outcome.subscriber_id, outcome.bounce, self.bounce_limit, now
            )

    def _claim_all(
        self, conn: sa.Connection, cursor: Any, claims: list[Claim], now: datetime
    ) -> None:
        d = db.deliveries
        ids = [c.subscriber_id for c in claims]
        sql = self._claim_sql.replace("{ids}", ", ".join([self._mark] * len(ids)))
        params = (self._to_db(now + FLIGHT_LEASE), self._to_db(now), self.issue_id, self.worker)
        cursor.execute(sql, (*params, *ids))
        claimed = {row[0] for row in cursor.fetchall()}
        for claim in claims:
            if claim.subscriber_id in claimed:
                claim.result = "claimed"
                claimed.discard(claim.subscriber_id)  # granted once, even if asked twice
                continue
            row = conn.execute(
                sa.select(d.c.status, d.c.worker).where(
                    d.c.issue_id == self.issue_id, d.c.subscriber_id == claim.subscriber_id
                )
            ).first()
            if row is None or row.status != "queued" or row.worker != self.worker:
                claim.result = "taken"
                continue
            reader = conn.execute(  # still reserved by us: the reader is not active any more
                sa.select(db.subscribers.c.status).where(db.subscribers.c.id == claim.subscriber_id)
            ).scalar()
            conn.execute(
                d.update()
                .where(
                    d.c.issue_id == self.issue_id,
                    d.c.subscriber_id == claim.subscriber_id,
                    d.c.status == "queued",
                )
                .values(status="skipped", reply=f"reader is {reader or 'erased'}", updated_at=now)
            )
            claim.result = "withdrawn"

"""The delivery ledger: one row per (issue, reader), written as outcomes happen.

pending -> queued (reserved by a worker, not yet handed to a relay)
        -> claimed (handed to a connection: in flight) -> sent | failed | deferred
A worker that dies leaves `queued` rows, which go back to pending, and at most one
`claimed` row per connection, which becomes `uncertain`: the relay may or may not
have taken it, so it is reported and not re-sent unless asked.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from newsletter.store import tables as db

FINAL = ("sent", "failed", "skipped")
RESERVE_LEASE = timedelta(minutes=5)
FLIGHT_LEASE = timedelta(minutes=10)


class Due(NamedTuple):
    """A reserved row with what its message needs (a tuple: a send makes one per reader)."""

    subscriber_id: int
    attempts: int
    email: str
    name: str
    status: str  # the reader's status now: anything but active is skipped


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def alive_here(worker: str) -> bool:
    """False for a worker of this host whose process is gone; True when it may be alive."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def snapshot_audience(conn: sa.Connection, issue_id: int, now: datetime) -> int:
    """One ledger row per active reader of the issue's newsletter, in one INSERT … SELECT;
    returns rows added."""
    d, s = db.deliveries, db.subscribers
    already = sa.exists().where(d.c.issue_id == issue_id).where(d.c.subscriber_id == s.c.id)
    newsletter = (
        sa.select(db.issues.c.newsletter_id).where(db.issues.c.id == issue_id).scalar_subquery()
    )
    query = sa.select(
        sa.literal(issue_id), s.c.id, sa.literal("pending"), sa.literal(now, db.UTCDateTime)
    ).where(s.c.status == "active", s.c.newsletter_id == newsletter, ~already)
    result = conn.execute(
        d.insert().from_select(["issue_id", "subscriber_id", "status", "updated_at"], query)
    )
    return int(result.rowcount or 0)


def recover(conn: sa.Connection, issue_id: int, now: datetime) -> None:
    """Rows left by workers that are gone: reserved ones back to pending, in-flight uncertain."""
    d = db.deliveries
    held = conn.execute(
        sa.select(d.c.worker)
        .where(d.c.issue_id == issue_id, d.c.status.in_(("queued", "claimed")))
        .group_by(d.c.worker)
    ).scalars()
    dead = [w for w in held if w and not alive_here(w)]
    gone = sa.or_(d.c.lease_until < now, d.c.worker.in_(dead))
    mine = (d.c.issue_id == issue_id, gone)
    conn.execute(
        d.update().where(*mine, d.c.status == "claimed").values(status="uncertain", updated_at=now)
    )
    conn.execute(
        d.update()
        .where(*mine, d.c.status == "queued")
        .values(status="pending", worker=None, lease_until=None, updated_at=now)
    )


def resend_uncertain(conn: sa.Connection, issue_id: int, now: datetime) -> int:
    d = db.deliveries
    result = conn.execute(
        d.update()
        .where(d.c.issue_id == issue_id, d.c.status == "uncertain")
        .values(status="pending", worker=None, lease_until=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def reserve(
    conn: sa.Connection, issue_id: int, worker: str, limit: int, now: datetime
) -> list[Due]:
    """Take up to `limit` due rows for this worker, in key order; other workers skip them."""
    d, s = db.deliveries, db.subscribers
    taken: list[tuple[int, int]] = []
    for due in (
        d.c.status == "pending",
        sa.and_(d.c.status == "deferred", d.c.next_attempt_at <= now),
    ):
        if len(taken) >= limit:
            break
        pick = (
            sa.select(d.c.subscriber_id)
            .where(d.c.issue_id == issue_id, due)
            .order_by(d.c.status, d.c.subscriber_id)  # the index's order: no sort, no scan
            .limit(limit - len(taken))
        )
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        # the ids first, then the update: as a subquery PostgreSQL may re-run the LIMIT per row
        ids = list(conn.execute(pick).scalars())
        if not ids:
            continue
        rows = conn.execute(
            d.update()
            .where(d.c.issue_id == issue_id, d.c.subscriber_id.in_(ids), due)
            .values(status="queued", worker=worker, lease_until=now + RESERVE_LEASE)
            .returning(d.c.subscriber_id, d.c.attempts)
        ).all()
        taken += [(int(row[0]), int(row[1])) for row in rows]
    if not taken:
        return []
    attempts = dict(taken)
    readers = conn.execute(
        sa.select(s.c.id, s.c.email, s.c.name, s.c.status).where(s.c.id.in_(list(attempts)))
    ).all()
    found = [
        Due(sid, attempts[sid], email or "", name, status) for sid, email, name, status in readers
    ]
    return sorted(found)  # by subscriber_id, the first field


def renew(conn: sa.Connection, issue_id: int, worker: str, now: datetime) -> None:
    d = db.deliveries
    conn.execute(
        d.update()
        .where(d.c.issue_id == issue_id, d.c.worker == worker, d.c.status == "queued")
        .values(lease_until=now + RESERVE_LEASE)
    )


def release(conn: sa.Connection, issue_id: int, worker: str, now: datetime) -> int:
    """A clean stop: reserved rows that were never handed over go back to pending."""
    d = db.deliveries
    result = conn.execute(
        d.update()
        .where(d.c.issue_id == issue_id, d.c.worker == worker, d.c.status == "queued")
        .values(status="pending", worker=None, lease_until=None, updated_at=now)
    )
    return int(result.rowcount or 0)


def counts(conn: sa.Connection, issue_id: int) -> dict[str, int]:
    d = db.deliveries
    rows = conn.execute(
        sa.select(d.c.status, sa.func.count()).where(d.c.issue_id == issue_id).group_by(d.c.status)
    )
    return {status: int(count) for status, count in rows}


def reasons(conn: sa.Connection, issue_id: int) -> dict[str, int]:
    """The readers not (yet) reached, by the reason their last refusal gave."""
    d = db.deliveries
    rows = conn.execute(
        sa.select(d.c.reason, sa.func.count())
        .where(d.c.issue_id == issue_id, d.c.reason.is_not(None), d.c.status != "sent")
        .group_by(d.c.reason)
    )
    return {reason: int(count) for reason, count in rows}


def uncertain_readers(conn: sa.Connection, issue_id: int) -> list[str]:
    d, s = db.deliveries, db.subscribers
    return [
        email or f"(erased reader {sid})"
        for sid, email in conn.execute(
            sa.select(d.c.subscriber_id, s.c.email)
            .join(s, s.c.id == d.c.subscriber_id)
            .where(d.c.issue_id == issue_id, d.c.status == "uncertain")
            .order_by(d.c.subscriber_id)
        )
    ]


def next_due(conn: sa.Connection, issue_id: int) -> datetime | None:
    """When the earliest deferred row may be tried again."""
    d = db.deliveries
    value = conn.execute(
        sa.select(sa.func.min(d.c.next_attempt_at)).where(
            d.c.issue_id == issue_id, d.c.status == "deferred"
        )
    ).scalar()
    return value if isinstance(value, datetime) else None

"""Who sends: a lease row in the database, held and renewed while a job sends, so two
schedulers (a second server, a restart while the old process hangs) never both send.
A running scheduler also keeps a heartbeat row, so the desk can say whether one runs."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.delivery.ledger import alive_here, worker_name
from newsletter.errors import LeaseHeld
from newsletter.store import tables as db

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

SEND_LEASE = "send"  # the first newsletter's; another's is send_lease(its id)


def send_lease(newsletter_id: int) -> str:
    """Each newsletter's sends are held apart: two schedules due at one hour both send."""
    return SEND_LEASE if newsletter_id == 1 else f"{SEND_LEASE}:{newsletter_id}"


LEASE_TTL = timedelta(seconds=60)  # a process killed while sending blocks others this long


def take_lease(engine: sa.Engine, name: str, holder: str, now: datetime, ttl: timedelta) -> None:
    """Hold the lease `name` until now + ttl, unless another live holder has it (LeaseHeld).
    A holder on this host whose process is gone is not waited for."""
    lease = db.leases
    for _attempt in range(2):  # two takers inserting at once: one wins, the other looks again
        try:
            with engine.begin() as conn:
                row = conn.execute(sa.select(lease).where(lease.c.name == name)).first()
                if row is None:
                    conn.execute(
                        lease.insert().values(
                            name=name, holder=holder, acquired_at=now, expires_at=now + ttl
                        )
                    )
                    return
                if row.holder != holder and row.expires_at > now and alive_here(row.holder):
                    raise LeaseHeld(
                        f"{row.holder} holds the {name} lease until {row.expires_at:%H:%M:%S} UTC"
                    )
                taken = conn.execute(  # compare and set: the row as we read it, or nothing
                    lease.update()
                    .where(lease.c.name == name, lease.c.holder == row.holder)
                    .where(lease.c.expires_at == row.expires_at)
                    .values(holder=holder, acquired_at=now, expires_at=now + ttl)
                ).rowcount
                if taken:
                    return
        except sa.exc.IntegrityError:
            continue
    raise LeaseHeld(f"another process took the {name} lease just now")


def renew_lease(engine: sa.Engine, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Extend a lease we hold; False when it was lost (it expired and another took it)."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                db.leases.update()
                .where(db.leases.c.name == name, db.leases.c.holder == holder)
                .values(expires_at=now + ttl)
            ).rowcount
        )


def drop_lease(engine: sa.Engine, name: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            db.leases.delete().where(db.leases.c.name == name, db.leases.c.holder == holder)
        )


@contextmanager
def holding(
    engine: sa.Engine, name: str, clock: Clock, lost: threading.Event, ttl: timedelta = LEASE_TTL
) -> Iterator[str]:
    """Hold a lease for the block, renewed by a thread; if it is ever lost (this process
    hung past its lease), `lost` is set so the send stops. Raises LeaseHeld."""
    holder = worker_name()
    take_lease(engine, name, holder, clock(), ttl)
    done = threading.Event()

    def keep() -> None:
        held_until = clock() + ttl
        while not done.wait(ttl.total_seconds() / 4):
            try:
                renewed = renew_lease(engine, name, holder, clock(), ttl)
            except sa.exc.SQLAlchemyError as exc:  # locked, or a failover: try again soon
                log.warning("could not renew the %s lease: %s", name, exc)
                if clock() < held_until:
                    continue
                renewed = False  # expired meanwhile: another process may have taken it
            if not renewed:
                log.error("lost the %s lease to another process: stopping", name)
                lost.set()
                return
            held_until = clock() + ttl

    keeper = threading.Thread(target=keep, name=f"lease-{name}", daemon=True)
    keeper.start()
    try:
        yield holder
    finally:
        done.set()
        keeper.join()
        drop_lease(engine, name, holder)


HEARTBEAT = "scheduler:"  # a heartbeat row's name starts so; the rest is its own
HEARTBEAT_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class Heartbeat:
    holder: str  # host:pid:…
    since: datetime
    last_seen: datetime


def beat(engine: sa.Engine, name: str, holder: str, now: datetime) -> None:
    """The scheduler `holder` is alive now (its row, made on the first beat)."""
    lease = db.leases
    with engine.begin() as conn:
        kept = conn.execute(
            lease.update().where(lease.c.name == name).values(expires_at=now + 2 * HEARTBEAT_EVERY)
        ).rowcount
        if not kept:
            conn.execute(
                lease.insert().values(name=name, holder=holder, acquired_at=now,
                                      expires_at=now + 2 * HEARTBEAT_EVERY)
            )  # fmt: skip


def heartbeats(conn: sa.Connection) -> list[Heartbeat]:
    """Every scheduler heard from, the most recent first (a row past its expiry is a
    scheduler that stopped without a word: killed, or its machine down)."""
    lease = db.leases
    rows = conn.execute(
        sa.select(lease)
        .where(lease.c.name.startswith(HEARTBEAT))
        .order_by(lease.c.expires_at.desc())
    ).all()
    return [Heartbeat(r.holder, r.acquired_at, r.expires_at - 2 * HEARTBEAT_EVERY) for r in rows]


@contextmanager
def beating(engine: sa.Engine, clock: Clock) -> Iterator[None]:
    """A heartbeat every HEARTBEAT_EVERY for the block; its row is gone after it."""
    name, holder = HEARTBEAT + secrets.token_hex(8), worker_name()
    done = threading.Event()

    def keep() -> None:
        while True:
            try:
                beat(engine, name, holder, clock())
            except sa.exc.SQLAlchemyError as exc:  # the database away for a moment
                log.warning("could not record the scheduler's heartbeat: %s", exc)
            if done.wait(HEARTBEAT_EVERY.total_seconds()):
                return

    keeper = threading.Thread(target=keep, name="scheduler-heartbeat", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
        try:
            drop_lease(engine, name, holder)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not clear the scheduler's heartbeat: %s", exc)

"""Who sends: a lease row in the database, held and renewed while a job sends, so two
schedulers (a second server, a restart while the old process hangs) never both send."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.delivery.ledger import alive_here, worker_name
from newsletter.errors import LeaseHeld
from newsletter.store import tables as db

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]

SEND_LEASE = "send"
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

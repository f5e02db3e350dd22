"""Desk accounts: editors log in with an address and a password (hashed with werkzeug's
scrypt); failed logins are counted per address and per IP, and after a few in a
quarter of an hour that address or IP waits. The counts live in the database, so two
web processes behind a proxy slow down the same guesser."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from . import db
from .addresses import normalise_address
from .errors import InputError, NewsletterError

PASSWORD_MIN = 12
FAILURES_ALLOWED = 5
FAILURE_WINDOW = timedelta(minutes=15)
# compared against when the address is unknown, so a miss costs as long as a wrong password
_DUMMY_HASH = generate_password_hash("not a password of anyone")


class LoginRefused(NewsletterError):
    status = 401


class TooManyFailures(NewsletterError):
    status = 429


@dataclass(frozen=True)
class Editor:
    id: int
    email: str


def add_editor(conn: sa.Connection, email: str, password: str, now: datetime) -> Editor:
    """A new account, or a new password for an existing one."""
    address = normalise_address(email)
    if len(password) < PASSWORD_MIN:
        raise InputError(f"password: at least {PASSWORD_MIN} characters, got {len(password)}")
    hashed = generate_password_hash(password)
    e = db.editors
    found = conn.execute(sa.select(e.c.id).where(e.c.email == address)).scalar()
    if found is None:
        key = conn.execute(
            e.insert().values(email=address, password_hash=hashed, created_at=now)
        ).inserted_primary_key
        assert key is not None
        return Editor(int(key[0]), address)
    conn.execute(e.update().where(e.c.id == found).values(password_hash=hashed))
    return Editor(int(found), address)


def get_editor(conn: sa.Connection, editor_id: int) -> Editor | None:
    e = db.editors
    row = conn.execute(sa.select(e.c.id, e.c.email).where(e.c.id == editor_id)).first()
    return None if row is None else Editor(row.id, row.email)


def _failures(conn: sa.Connection, column: sa.Column[str], value: str, since: datetime) -> int:
    f = db.login_failures
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(column == value, f.c.at >= since)
        ).scalar_one()
    )


def log_in(conn: sa.Connection, email: str, password: str, ip: str, now: datetime) -> Editor:
    """The editor for these credentials; LoginRefused (the same words whether the address
    or the password was wrong) or TooManyFailures. A failure is recorded in `conn`'s
    transaction, so the caller commits it even when refusing."""
    address = email.strip().lower()
    f, e = db.login_failures, db.editors
    since = now - FAILURE_WINDOW
    if (
        _failures(conn, f.c.email, address, since) >= FAILURES_ALLOWED
        or _failures(conn, f.c.ip, ip, since) >= FAILURES_ALLOWED
    ):
        raise TooManyFailures("too many failed logins: try again in a quarter of an hour")
    row = conn.execute(sa.select(e).where(e.c.email == address)).first()
    if row is not None and check_password_hash(row.password_hash, password):
        conn.execute(e.update().where(e.c.id == row.id).values(last_login_at=now))
        return Editor(row.id, row.email)
    if row is None:
        check_password_hash(_DUMMY_HASH, password)
    conn.execute(f.insert().values(email=address[:320], ip=ip[:64], at=now))
    raise LoginRefused("wrong address or password")

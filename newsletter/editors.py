"""Desk accounts: editors log in with an address and a password (hashed with werkzeug's
scrypt); failed logins are counted per address and per IP, and after a few in a
quarter of an hour that address or IP waits. The counts live in the database, so two
web processes behind a proxy slow down the same guesser."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from newsletter.errors import InputError, NewsletterError, NotFound, StateError
from newsletter.readers.addresses import normalise_address
from newsletter.store import tables as db

PASSWORD_MIN = 12
STRENGTH_MIN = 4  # zxcvbn's score: at least 10^10 guesses
STRENGTH_CHARS = 100  # zxcvbn's time grows with length; the rest only adds strength
FAILURES_ALLOWED = 5
FAILURE_WINDOW = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)  # a signed-in browser signs in again after this


# compared against when the address is unknown, so a miss costs as long as a wrong password
@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not a password of anyone")


class LoginRefused(NewsletterError):
    status = 401


class TooManyFailures(NewsletterError):
    status = 429


@dataclass(frozen=True)
class Editor:
    id: int
    email: str
    role: str = "editor"  # editor: curates and approves; admin: also readers' data, editors

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _refuse_guessable(password: str, address: str) -> None:
    """An editor's password sends mail to every reader: refused when zxcvbn estimates fewer
    than 10^10 guesses (its score 4), against common passwords, words, keyboard runs,
    dates and the editor's own address."""
    from zxcvbn import zxcvbn  # its word lists take 150 ms to load: only when a password is set

    local = address.split("@", 1)[0]
    estimate = zxcvbn(password[:STRENGTH_CHARS], user_inputs=[address, local])
    if estimate["score"] < STRENGTH_MIN:
        feedback = estimate["feedback"]
        why = (feedback["warning"] or "it is made of guessable parts").rstrip(".")
        tips = " ".join(feedback["suggestions"])
        raise InputError(f"password: too easy to guess: {why}. {tips}".rstrip())


ROLES = ("editor", "admin")


def add_editor(
    conn: sa.Connection, email: str, password: str, now: datetime, role: str | None = None
) -> Editor:
    """A new account, or a new password (and, if given, a new role) for an existing one.
    A new account is an editor, except the desk's first, which is its admin."""
    if role is not None and role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    address = normalise_address(email)
    if len(password) < PASSWORD_MIN:
        raise InputError(f"password: at least {PASSWORD_MIN} characters, got {len(password)}")
    _refuse_guessable(password, address)
    hashed = generate_password_hash(password)
    e = db.editors
    found = conn.execute(sa.select(e.c.id, e.c.role).where(e.c.email == address)).first()
    if found is None:
        first = conn.execute(sa.select(sa.func.count()).select_from(e)).scalar_one() == 0
        role = role or ("admin" if first else "editor")
        key = conn.execute(
            e.insert().values(email=address, password_hash=hashed, created_at=now, role=role)
        ).inserted_primary_key
        assert key is not None
        return Editor(int(key[0]), address, role)
    role = role or found.role
    conn.execute(e.update().where(e.c.id == found.id).values(password_hash=hashed, role=role))
    end_sessions(conn, int(found.id))  # a new password signs every browser out
    return Editor(int(found.id), address, role)


def open_session(conn: sa.Connection, editor: Editor, now: datetime) -> str:
    """A new signed-in session for the editor; returns its token, for the cookie only (the
    database keeps its hash). Sessions that expired are cleared on the way."""
    token = secrets.token_urlsafe(32)
    d = db.desk_sessions
    conn.execute(d.delete().where(d.c.expires_at <= now))
    conn.execute(
        d.insert().values(token_hash=_hashed(token), editor_id=editor.id, created_at=now,
                          expires_at=now + SESSION_LIFETIME)
    )  # fmt: skip
    return token


def session_editor(conn: sa.Connection, token: str, now: datetime) -> Editor | None:
    """The editor of a session token that is open and unexpired."""
    d, e = db.desk_sessions, db.editors
    row = conn.execute(
        sa.select(e.c.id, e.c.email, e.c.role)
        .join(d, d.c.editor_id == e.c.id)
        .where(d.c.token_hash == _hashed(token), d.c.expires_at > now)
    ).first()
    return None if row is None else Editor(row.id, row.email, row.role)


def close_session(conn: sa.Connection, token: str) -> None:
    """Log out: the token stops working, wherever a copy of the cookie went."""
    d = db.desk_sessions
    conn.execute(d.delete().where(d.c.token_hash == _hashed(token)))


def sign_out_everywhere(conn: sa.Connection, email: str) -> int:
    """End every session of the editor with this address (a lost laptop); returns how many
    ended. NotFound for an address with no account."""
    e = db.editors
    found = conn.execute(sa.select(e.c.id).where(e.c.email == normalise_address(email))).scalar()
    if found is None:
        raise NotFound(f"no editor {email.strip()}")
    return end_sessions(conn, int(found))


def end_sessions(conn: sa.Connection, editor_id: int) -> int:
    """Sign the editor out of every browser; returns how many sessions ended."""
    d = db.desk_sessions
    return int(conn.execute(d.delete().where(d.c.editor_id == editor_id)).rowcount)


def _hashed(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def get_editor(conn: sa.Connection, editor_id: int) -> Editor | None:
    e = db.editors
    row = conn.execute(sa.select(e.c.id, e.c.email, e.c.role).where(e.c.id == editor_id)).first()
    return None if row is None else Editor(row.id, row.email, row.role)


def _failures(conn: sa.Connection, column: sa.Column[str], value: str, since: datetime) -> int:
    f = db.login_failures
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(column == value, f.c.at >= since)
        ).scalar_one()
    )


def begin_attempt(engine: sa.Engine, email: str, ip: str, now: datetime) -> int:
    """Record a login attempt before its password is checked, and commit it: attempts
    that run at once all count, so no burst of them gets past the limit (each sees at
    least the attempts committed before its own). TooManyFailures past the limit; else
    the attempt's id, for `log_in` to clear when the password was right."""
    address, f = email.strip().lower(), db.login_failures
    with engine.begin() as conn:
        attempt = conn.execute(
            f.insert().values(email=address[:320], ip=ip[:64], at=now)
        ).inserted_primary_key
    assert attempt is not None
    since = now - FAILURE_WINDOW
    with engine.begin() as conn:
        over = (
            _failures(conn, f.c.email, address[:320], since) > FAILURES_ALLOWED
            or _failures(conn, f.c.ip, ip[:64], since) > FAILURES_ALLOWED
        )
        if over:  # refused unchecked: it takes its own row back, the earlier ones still count
            conn.execute(f.delete().where(f.c.id == attempt[0]))
    if over:
        raise TooManyFailures("too many failed logins: try again in a quarter of an hour")
    return int(attempt[0])


def log_in(
    conn: sa.Connection,
    email: str,
    password: str,
    ip: str,
    now: datetime,
    attempt: int | None = None,
) -> Editor:
    """The editor for these credentials; LoginRefused (the same words whether the address
    or the password was wrong) or TooManyFailures. With an `attempt` from `begin_attempt`
    that row is the failure, and a right password clears it; without one, the limit is
    checked here and a failure recorded in `conn`'s transaction (the caller commits it
    even when refusing)."""
    address = email.strip().lower()
    f, e = db.login_failures, db.editors
    since = now - FAILURE_WINDOW
    if attempt is None and (
        _failures(conn, f.c.email, address, since) >= FAILURES_ALLOWED
        or _failures(conn, f.c.ip, ip, since) >= FAILURES_ALLOWED
    ):
        raise TooManyFailures("too many failed logins: try again in a quarter of an hour")
    row = conn.execute(sa.select(e).where(e.c.email == address)).first()
    if row is not None and check_password_hash(row.password_hash, password):
        # only while the password checked is still the account's: a new one set meanwhile
        # (the check takes a while) signed every session out, this one included
        still = e.update().where(e.c.id == row.id, e.c.password_hash == row.password_hash)
        if conn.execute(still.values(last_login_at=now)).rowcount == 1:
            if attempt is not None:
                conn.execute(f.delete().where(f.c.id == attempt))
            return Editor(row.id, row.email)
    if row is None:
        check_password_hash(_dummy_hash(), password)
    if attempt is None:
        conn.execute(f.insert().values(email=address[:320], ip=ip[:64], at=now))
    raise LoginRefused("wrong address or password")


@dataclass(frozen=True)
class Account:
    """An editor as the admins' page lists them."""

    id: int
    email: str
    role: str
    created_at: datetime
    last_login_at: datetime | None


def list_editors(conn: sa.Connection) -> list[Account]:
    e = db.editors
    rows = conn.execute(
        sa.select(e.c.id, e.c.email, e.c.role, e.c.created_at, e.c.last_login_at).order_by(
            e.c.email
        )
    )
    return [Account(r.id, r.email, r.role, r.created_at, r.last_login_at) for r in rows]


def set_role(conn: sa.Connection, editor_id: int, role: str) -> Account:
    """Make an account an editor or an admin; the desk's last admin stays one, or nobody
    could manage the desk from it again."""
    if role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    e = db.editors
    found = conn.execute(sa.select(e.c.role).where(e.c.id == editor_id)).scalar()
    if found is None:
        raise NotFound(f"no editor {editor_id}")
    # the admins' rows locked (PostgreSQL), and the check made in the update itself (one
    # statement, under SQLite's write lock): two admins demoting each other at once
    # leave one
    conn.execute(sa.select(e.c.id).where(e.c.role == "admin").with_for_update()).all()
    others = sa.select(sa.func.count()).where(e.c.role == "admin", e.c.id != editor_id)
    keeps = sa.or_(sa.literal(role) == "admin", e.c.role != "admin", others.scalar_subquery() > 0)
    done = conn.execute(e.update().where(e.c.id == editor_id, keeps).values(role=role)).rowcount
    if not done:
        raise StateError("the desk's last admin stays an admin: make another account admin first")
    [account] = [a for a in list_editors(conn) if a.id == editor_id]
    return account

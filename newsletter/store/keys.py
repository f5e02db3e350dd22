"""The secret key that signs readers' links: made once by `newsletter init`, kept in the
database, read by every process of the desk (a second shell, the web app, the Friday job
and the workers all sign and verify alike).

`NEWSLETTER_SECRET_KEY`, when set, overrides the kept key. `newsletter secret rotate`
makes a new key for signing and keeps the old one verifying links for a set time: mail
already sent must keep working (an unsubscribe link for months).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.errors import StateError
from newsletter.store import tables as db

KEEP_OLD = timedelta(days=400)  # an old issue's unsubscribe link works for over a year


def new_key() -> str:
    return secrets.token_urlsafe(32)  # 32 random bytes


def ensure_key(conn: sa.Connection, now: datetime) -> bool:
    """Make the desk's key unless one is kept; True when it was made now."""
    k = db.signing_keys
    if conn.execute(sa.select(k.c.id).where(k.c.retired_at.is_(None))).first() is not None:
        return False
    conn.execute(k.insert().values(value=new_key(), created_at=now))
    return True


def kept_keys(conn: sa.Connection, now: datetime) -> tuple[str, ...]:
    """The current key first, then retired ones that still verify; () before `init`."""
    if not sa.inspect(conn).has_table("signing_keys"):
        return ()  # a database from before migration 0008: `init` upgrades it
    k = db.signing_keys
    rows = conn.execute(
        sa.select(k.c.value, k.c.retired_at)
        .where(sa.or_(k.c.retired_at.is_(None), k.c.verify_until > now))
        .order_by(k.c.retired_at.is_not(None), k.c.id.desc())
    ).all()
    current = [value for value, retired in rows if retired is None]
    return (*current[:1], *(value for value, retired in rows if retired is not None))


def rotate_key(conn: sa.Connection, now: datetime, keep: timedelta = KEEP_OLD) -> datetime:
    """A new key signs from now on; the old one verifies until the returned time."""
    k = db.signing_keys
    retired = conn.execute(
        k.update().where(k.c.retired_at.is_(None)).values(retired_at=now, verify_until=now + keep)
    ).rowcount
    if not retired:
        raise StateError("no key is kept in the database yet: run newsletter init first")
    conn.execute(k.insert().values(value=new_key(), created_at=now))
    return now + keep

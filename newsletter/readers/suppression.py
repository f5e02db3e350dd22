"""Suppression: the keyed hashes of addresses that are never mailed or imported again
(erased, complained), and the per-desk keys those hashes (and the sign-up counters') use.
A hash, not the address: erasure keeps nothing that names the reader."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from newsletter.store import tables as db


def desk_key(conn: sa.Connection, name: str) -> str:
    """A random key made once per desk and kept in its database (e.g. for suppression hashes)."""
    k = db.desk_keys
    value = conn.execute(sa.select(k.c.value).where(k.c.name == name)).scalar()
    if value is None:
        value = secrets.token_hex(32)
        conn.execute(k.insert().values(name=name, value=value))
    return str(value)


def keyed_hasher(conn: sa.Connection, purpose: str = "suppression") -> Callable[[str], str]:
    """HMAC-SHA256 under one desk key, the key read once (an import hashes every row)."""
    key = desk_key(conn, purpose).encode()

    def digest(value: str) -> str:
        return hmac.digest(key, value.casefold().encode("utf-8"), "sha256").hex()

    return digest


def keyed_hash(conn: sa.Connection, value: str, purpose: str = "suppression") -> str:
    return keyed_hasher(conn, purpose)(value)


def is_suppressed(conn: sa.Connection, address: str) -> bool:
    digest = keyed_hash(conn, address)
    found = conn.execute(
        sa.select(db.suppressions.c.address_hash).where(db.suppressions.c.address_hash == digest)
    ).first()
    return found is not None


def suppress(conn: sa.Connection, address: str, reason: str, now: datetime) -> None:
    digest = keyed_hash(conn, address)
    if not is_suppressed(conn, address):
        conn.execute(db.suppressions.insert().values(address_hash=digest, reason=reason, at=now))

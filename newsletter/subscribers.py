"""Readers: addresses, their status, and the consent events behind it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from . import db
from .consent import Evidence, Policy, record_consent
from .errors import InputError, StateError
from .issues import check_line

NAME_MAX = 300


def normalise_address(address: str) -> str:
    """The canonical form of an address (domain lower-cased and IDNA-checked); no DNS."""
    try:
        valid = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InputError(f"email: {address!r} is not a valid address: {exc}") from None
    return str(valid.normalized)


def add_active_reader(
    conn: sa.Connection,
    email: str,
    name: str,
    evidence: Evidence,
    policy: Policy,
    now: datetime,
    kind: str = "imported",
) -> int:
    """A reader whose consent was given elsewhere (import, demo): active, with evidence."""
    address = normalise_address(email)
    clean_name = check_line("name", name, NAME_MAX)
    s = db.subscribers
    if conn.execute(sa.select(s.c.id).where(s.c.email == address)).scalar() is not None:
        raise StateError(f"{address} is already a subscriber")
    inserted = conn.execute(
        s.insert().values(
            email=address,
            name=clean_name,
            status="active",
            policy_version=policy.version,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    assert inserted is not None
    record_consent(conn, inserted[0], kind, evidence, now, policy)
    return int(inserted[0])


def count_by_status(conn: sa.Connection) -> dict[str, int]:
    s = db.subscribers
    rows = conn.execute(sa.select(s.c.status, sa.func.count()).group_by(s.c.status))
    return {status: int(count) for status, count in rows}

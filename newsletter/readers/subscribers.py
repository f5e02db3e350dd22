"""Readers and their status, kept beside the consent ledger in the same transaction.

pending (awaits double opt-in) -> active -> unsubscribed, bounced or complained;
active -> reconsent (a new policy awaits agreement) -> active. Erasure leaves only
a keyed hash of the address, so it is never mailed or imported again.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.curation.issues import check_line
from newsletter.errors import InputError, NotFound, StateError
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import Evidence, Policy, current_policy, get_policy, record_consent
from newsletter.readers.tokens import (
    CONFIRM,
    RECONSENT,
    Keys,
    TokenError,
    read_timed_token,
    timed_token,
)
from newsletter.settings import Settings
from newsletter.store import tables as db

NAME_MAX = 300
STATUSES = ("pending", "active", "reconsent", "unsubscribed", "bounced", "complained", "erased")
MAILABLE_AGAIN = ("pending", "unsubscribed", "bounced", "reconsent")
RECONSENT_TTL = timedelta(days=365)


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str | None
    name: str
    status: str
    policy_version: str | None
    created_at: datetime
    updated_at: datetime
    bounce_count: int
    offered_name: str | None = None  # a sign-up's name, until the address confirms it


@dataclass(frozen=True)
class SignUp:
    """One sign-up as a person made it: the address, the explicit yes, and where from."""

    email: str
    consent: bool
    name: str = ""
    evidence: Evidence = field(default_factory=lambda: Evidence(source="cli"))


@dataclass(frozen=True)
class Limits:
    confirm_ttl: timedelta = Settings.confirm_ttl
    confirm_mails_per_day: int = Settings.confirm_mails_per_day
    signups_per_hour: int = Settings.signups_per_hour

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.confirm_ttl, settings.confirm_mails_per_day, settings.signups_per_hour)


@dataclass(frozen=True)
class Mail:
    """A notice the caller sends once the transaction has committed."""

    kind: str  # "confirm", "welcome" or "reconsent"
    subscriber_id: int
    email: str
    name: str
    token: str = ""


class RateLimited(InputError):
    status = 429


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


def _row(conn: sa.Connection, where: Any) -> Subscriber | None:
    row = conn.execute(sa.select(db.subscribers).where(where)).mappings().first()
    return Subscriber(**row) if row else None


def get_subscriber(conn: sa.Connection, ref: str | int) -> Subscriber:
    """By id or by address."""
    s = db.subscribers
    text = str(ref).strip()
    found = _row(conn, s.c.id == int(text)) if text.isdigit() else None
    if found is None and "@" in text:
        found = _row(conn, s.c.email == normalise_address(text))
    if found is None:
        raise NotFound(f"no subscriber {text}")
    return found


def set_status(
    conn: sa.Connection, subscriber_id: int, status: str, now: datetime, **extra: Any
) -> None:
    conn.execute(
        db.subscribers.update()
        .where(db.subscribers.c.id == subscriber_id)
        .values(status=status, updated_at=now, **extra)
    )


def _attempts(
    conn: sa.Connection,
    column: sa.ColumnElement[Any],
    value: str,
    since: datetime,
    mailed_only: bool = False,
) -> int:
    a = db.signup_attempts
    query = sa.select(sa.func.count()).where(column == value, a.c.at > since)
    if mailed_only:
        query = query.where(a.c.mailed.is_(True))
    return int(conn.execute(query).scalar_one())


def sign_up(
    conn: sa.Connection, request: SignUp, limits: Limits, secret: str, now: datetime
) -> Mail | None:
    """Record an explicit yes and ask for confirmation; the same outcome whoever the address is.

    Returns the confirmation mail to send, or None when none is due (already active,
    suppressed, or mailed too often today); the caller answers the person alike either way.
    """
    if request.consent is not True:
        raise InputError("consent: tick the box to agree to the privacy policy; nothing was stored")
    address = normalise_address(request.email)
    name = check_line("name", request.name, NAME_MAX)
    a = db.signup_attempts
    ip_hash = keyed_hash(conn, request.evidence.ip, "ip") if request.evidence.ip else None
    if (
        ip_hash
        and _attempts(conn, a.c.ip_hash, ip_hash, now - timedelta(hours=1))
        >= limits.signups_per_hour
    ):
        raise RateLimited("too many sign-ups from your network in the last hour: try again later")
    address_hash = keyed_hash(conn, address, "address")
    mail = _sign_up(conn, address, name, request.evidence, secret, now)
    if (
        mail
        and _attempts(
            conn, a.c.address_hash, address_hash, now - timedelta(days=1), mailed_only=True
        )
        >= limits.confirm_mails_per_day
    ):
        mail = None
    conn.execute(
        a.insert().values(
            address_hash=address_hash, ip_hash=ip_hash, at=now, mailed=mail is not None
        )
    )
    return mail


def _sign_up(
    conn: sa.Connection, address: str, name: str, evidence: Evidence, secret: str, now: datetime
) -> Mail | None:
    if is_suppressed(conn, address):
        return None
    policy = current_policy(conn)
    found = _row(conn, db.subscribers.c.email == address)
    if found is not None and found.status not in MAILABLE_AGAIN:
        return None  # active or complained: nothing changes, nothing is sent
    # the name waits for the confirmation: until the address's owner clicks, it is a
    # stranger's words, and neither greets them nor replaces the name they gave before
    offered = {"offered_name": name or None}
    if found is None:
        inserted = conn.execute(
            db.subscribers.insert().values(
                email=address, name="", status="pending", created_at=now, updated_at=now, **offered
            )
        ).inserted_primary_key
        assert inserted is not None
        subscriber_id = int(inserted[0])
    else:
        subscriber_id = found.id
        set_status(conn, subscriber_id, "pending", now, **offered)
    event_id = record_consent(conn, subscriber_id, "given", evidence, now, policy)
    token = timed_token(secret, CONFIRM, subscriber_id, str(event_id), now)
    return Mail("confirm", subscriber_id, address, found.name if found else "", token)


def confirm_target(
    conn: sa.Connection, token: str, keys: Keys, ttl: timedelta, now: datetime
) -> tuple[Subscriber, Policy]:
    """Who a confirmation link confirms, and to which policy; TokenError if it cannot."""
    subscriber_id, event_ref = read_timed_token(keys, CONFIRM, token, now, ttl)
    found = _row(conn, db.subscribers.c.id == subscriber_id)
    e = db.consent_events
    given = (
        conn.execute(
            sa.select(e).where(
                e.c.id == int(event_ref),
                e.c.subscriber_id == subscriber_id,
                e.c.kind.in_(("given", "imported")),
            )
        )
        .mappings()
        .first()
    )
    if found is None or found.email is None or given is None:
        raise TokenError("this link is no longer valid")
    later = conn.execute(
        sa.select(sa.func.count()).where(
            e.c.subscriber_id == subscriber_id,
            e.c.id > given["id"],
            e.c.kind.in_(("withdrawn", "erased", "complained")),
        )
    ).scalar_one()
    if later:
        raise TokenError("this link is no longer valid: the subscription was ended since")
    # an import without evidence offered today's policy in its opt-in mail
    version = given["policy_version"]
    return found, get_policy(conn, version) if version else current_policy(conn)


def confirm(
    conn: sa.Connection, token: str, evidence: Evidence, keys: Keys, ttl: timedelta, now: datetime
) -> Mail | None:
    """The double opt-in: a pending reader becomes active; replays change nothing."""
    found, policy = confirm_target(conn, token, keys, ttl, now)
    if found.status != "pending" or found.email is None:
        return None  # already confirmed: a replayed link changes nothing
    offered = conn.execute(
        sa.select(db.subscribers.c.offered_name).where(db.subscribers.c.id == found.id)
    ).scalar()
    name = offered or found.name  # the owner of the address confirms the name they gave
    set_status(conn, found.id, "active", now, policy_version=policy.version, name=name,
               offered_name=None)  # fmt: skip
    if not _has_consent(conn, found.id):  # imported without evidence: this click is the consent
        record_consent(conn, found.id, "given", evidence, now, policy)
    record_consent(conn, found.id, "confirmed", evidence, now, policy)
    return Mail("welcome", found.id, found.email, name)


def _has_consent(conn: sa.Connection, subscriber_id: int) -> bool:
    e = db.consent_events
    found = conn.execute(
        sa.select(e.c.id).where(
            e.c.subscriber_id == subscriber_id,
            e.c.kind.in_(("given", "imported")),
            e.c.policy_version.is_not(None),
        )
    ).first()
    return found is not None


def unsubscribe(conn: sa.Connection, subscriber_id: int, evidence: Evidence, now: datetime) -> bool:
    """Withdrawal, at once; returns False when there was nothing to withdraw."""
    found = _row(conn, db.subscribers.c.id == subscriber_id)
    if found is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    if found.status in ("unsubscribed", "complained", "erased"):
        return False
    set_status(conn, subscriber_id, "unsubscribed", now)
    record_consent(conn, subscriber_id, "withdrawn", evidence, now)
    return True


def record_permanent_failure(
    conn: sa.Connection,
    subscriber_id: int,
    diagnostic: str,
    limit: int,
    now: datetime,
    source: str = "delivery",
) -> bool:
    """Count a hard bounce; at `limit` an active reader becomes bounced. True when it did."""
    s = db.subscribers
    conn.execute(
        s.update().where(s.c.id == subscriber_id).values(bounce_count=s.c.bounce_count + 1)
    )
    found = _row(conn, s.c.id == subscriber_id)
    if found is None or found.bounce_count < limit:
        return False
    return mark_bounced(conn, subscriber_id, diagnostic, source, now)


def mark_bounced(
    conn: sa.Connection, subscriber_id: int, diagnostic: str, source: str, now: datetime
) -> bool:
    """An active reader becomes bounced, with an event carrying the diagnostic."""
    found = _row(conn, db.subscribers.c.id == subscriber_id)
    if found is None or found.status != "active":
        return False
    set_status(conn, subscriber_id, "bounced", now)
    record_consent(conn, subscriber_id, "bounced", Evidence(source=source, detail=diagnostic), now)
    return True


def record_complaint(conn: sa.Connection, subscriber_id: int, detail: str, now: datetime) -> bool:
    """A spam complaint: never mailed again, and never re-added by a sign-up or an import.
    True when it changed the reader."""
    found = _row(conn, db.subscribers.c.id == subscriber_id)
    if found is None or found.email is None or found.status == "complained":
        return False
    set_status(conn, subscriber_id, "complained", now)
    suppress(conn, found.email, "complained", now)
    record_consent(
        conn, subscriber_id, "complained", Evidence(source="complaint", detail=detail), now
    )
    return True


def request_reconsent(
    conn: sa.Connection, policy: Policy, secret: str, now: datetime
) -> list[Mail]:
    """After a policy change: active readers on an older version stop getting the newsletter
    until they agree again; returns the notices to send."""
    s = db.subscribers
    rows = conn.execute(
        sa.select(s.c.id, s.c.email, s.c.name).where(
            s.c.status.in_(("active", "reconsent")),  # those still waiting get the newer link
            sa.or_(s.c.policy_version.is_(None), s.c.policy_version != policy.version),
        )
    ).all()
    mails = []
    evidence = Evidence(source="policy publish --reconsent")
    for row in rows:
        set_status(conn, row.id, "reconsent", now)
        record_consent(conn, row.id, "reconsent_requested", evidence, now, policy)
        token = timed_token(secret, RECONSENT, row.id, policy.version, now)
        mails.append(Mail("reconsent", row.id, row.email, row.name, token))
    return mails


def reconsent_target(
    conn: sa.Connection, token: str, keys: Keys, now: datetime
) -> tuple[Subscriber | None, Policy]:
    """Who a re-consent link is for (None: nobody waits on it any more), and the policy."""
    subscriber_id, version = read_timed_token(keys, RECONSENT, token, now, RECONSENT_TTL)
    policy = current_policy(conn)
    if version != policy.version:
        raise TokenError(
            "a newer privacy policy has been published: use the link in the latest notice"
        )
    found = _row(conn, db.subscribers.c.id == subscriber_id)
    return (found if found is not None and found.status == "reconsent" else None), policy


def reconsent(
    conn: sa.Connection, token: str, evidence: Evidence, keys: Keys, now: datetime
) -> bool:
    """A reader agrees to the new policy; True when that made them active again."""
    found, policy = reconsent_target(conn, token, keys, now)
    if found is None:
        return False
    set_status(conn, found.id, "active", now, policy_version=policy.version)
    record_consent(conn, found.id, "confirmed", evidence, now, policy)
    return True


def add_active_reader(
    conn: sa.Connection,
    email: str,
    name: str,
    evidence: Evidence,
    policy: Policy,
    now: datetime,
    kind: str = "imported",
) -> int:
    """A reader whose consent was given elsewhere (the demo, an import): active, with evidence."""
    address = normalise_address(email)
    if is_suppressed(conn, address):
        raise StateError(f"{address} is suppressed (erased or complained) and is never re-added")
    if _row(conn, db.subscribers.c.email == address) is not None:
        raise StateError(f"{address} is already a subscriber")
    inserted = conn.execute(
        db.subscribers.insert().values(
            email=address,
            name=check_line("name", name, NAME_MAX),
            status="active",
            policy_version=policy.version,
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    assert inserted is not None
    record_consent(conn, int(inserted[0]), kind, evidence, now, policy)
    return int(inserted[0])


def count_by_status(conn: sa.Connection) -> dict[str, int]:
    s = db.subscribers
    rows = conn.execute(sa.select(s.c.status, sa.func.count()).group_by(s.c.status))
    return {status: int(count) for status, count in rows}


def list_subscribers(
    conn: sa.Connection,
    status: str | None = None,
    search: str | None = None,
    limit: int = 100,
    *,
    newest_first: bool = False,
) -> list[Subscriber]:
    """The readers, by status and part of the address; erased ones only when asked for
    by status (they keep no address to show)."""
    s = db.subscribers
    order = s.c.id.desc() if newest_first else s.c.id
    query = sa.select(s).order_by(order).limit(limit)
    if status:
        if status not in STATUSES:
            raise InputError(f"--status: one of {', '.join(STATUSES)}, not {status!r}")
        query = query.where(s.c.status == status)
    else:
        query = query.where(s.c.status != "erased")
    if search:
        query = query.where(s.c.email.contains(search.strip().lower(), autoescape=True))
    return [Subscriber(**row) for row in conn.execute(query).mappings()]

"""Readers and their status, kept beside the consent ledger in the same transaction.

pending (awaits double opt-in) -> active -> unsubscribed, bounced or complained;
active -> reconsent (a new policy awaits agreement) -> active. Erasure leaves only
a keyed hash of the address, so it is never mailed or imported again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.curation.issues import check_line
from newsletter.errors import InputError, NotFound, StateError
from newsletter.language import N_
from newsletter.publications import Newsletter, list_newsletters
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import Evidence, Policy, current_policy, record_consent
from newsletter.readers.suppression import is_suppressed, suppress
from newsletter.readers.tokens import (
    RECONSENT,
    Keys,
    TokenError,
    read_timed_token,
    timed_token,
)
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
    newsletter_id: int = 1  # the newsletter this subscription is to


@dataclass(frozen=True)
class Mail:
    """A notice the caller sends once the transaction has committed."""

    kind: str  # "confirm", "welcome" or "reconsent"
    subscriber_id: int
    email: str
    name: str
    token: str = ""


def find_subscriber(conn: sa.Connection, where: Any) -> Subscriber | None:
    """The reader a condition on the subscribers table finds, or None."""
    row = conn.execute(sa.select(db.subscribers).where(where)).mappings().first()
    return Subscriber(**row) if row else None


def _matching(
    conn: sa.Connection, ref: str | int, newsletter_id: int | None = None
) -> list[Subscriber]:
    """What a reference finds: the subscription with that id, else the address's
    subscriptions (to the newsletter, where one is named), first made first."""
    s = db.subscribers
    text = str(ref).strip()
    if text.isdigit() and text.isascii() and len(text) <= 10:
        found = find_subscriber(conn, s.c.id == int(text))
        if found is not None and newsletter_id in (None, found.newsletter_id):
            return [found]
    if "@" not in text:
        return []
    where = s.c.email == normalise_address(text)
    if newsletter_id is not None:
        where = sa.and_(where, s.c.newsletter_id == newsletter_id)
    rows = conn.execute(sa.select(s).where(where).order_by(s.c.id)).mappings()
    return [Subscriber(**row) for row in rows]


def get_subscriber(
    conn: sa.Connection, ref: str | int, newsletter_id: int | None = None
) -> Subscriber:
    """By id, or by address: the address's subscription to the newsletter (with several
    newsletters, one must be named)."""
    found = _matching(conn, ref, newsletter_id)
    if len(found) > 1:
        raise InputError(f"{str(ref).strip()} subscribes to several newsletters: name one "
                         "(--newsletter)")  # fmt: skip
    if not found:
        raise NotFound(f"no subscriber {str(ref).strip()}")
    return found[0]


def set_status(
    conn: sa.Connection, subscriber_id: int, status: str, now: datetime, **extra: Any
) -> None:
    conn.execute(
        db.subscribers.update()
        .where(db.subscribers.c.id == subscriber_id)
        .values(status=status, updated_at=now, **extra)
    )


def unsubscribe(conn: sa.Connection, subscriber_id: int, evidence: Evidence, now: datetime) -> bool:
    """Withdrawal, at once; returns False when there was nothing to withdraw."""
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
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
    found = find_subscriber(conn, s.c.id == subscriber_id)
    if found is None or found.bounce_count < limit:
        return False
    return mark_bounced(conn, subscriber_id, diagnostic, source, now)


def mark_bounced(
    conn: sa.Connection, subscriber_id: int, diagnostic: str, source: str, now: datetime
) -> bool:
    """An active reader becomes bounced, with an event carrying the diagnostic; an address
    that does not take mail bounces in every newsletter it subscribes to (the bounce of a
    new subscription's confirmation too). True when a subscription changed."""
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
    if found is None:
        return False
    changed = False
    for one in _same_address(conn, found):
        if one.status == "active":
            set_status(conn, one.id, "bounced", now)
            evidence = Evidence(source=source, detail=diagnostic)
            record_consent(conn, one.id, "bounced", evidence, now)
            changed = True
    return changed


def _same_address(conn: sa.Connection, found: Subscriber) -> list[Subscriber]:
    """The address's subscriptions, to every newsletter (the one found among them)."""
    if found.email is None:
        return [found]
    s = db.subscribers
    rows = conn.execute(sa.select(s).where(s.c.email == found.email).order_by(s.c.id))
    return [Subscriber(**row) for row in rows.mappings()]


def record_complaint(conn: sa.Connection, subscriber_id: int, detail: str, now: datetime) -> bool:
    """A spam complaint: never mailed again, and never re-added by a sign-up or an import.
    True when it changed the reader."""
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
    if found is None or found.email is None or found.status == "complained":
        return False
    suppress(conn, found.email, "complained", now)  # never mailed again, by any newsletter
    for one in _same_address(conn, found):
        if one.status not in ("complained", "erased"):
            set_status(conn, one.id, "complained", now)
            evidence = Evidence(source="complaint", detail=detail)
            record_consent(conn, one.id, "complained", evidence, now)
    return True


def request_reconsent(
    conn: sa.Connection, policy: Policy, secret: str, now: datetime
) -> list[Mail]:
    """After a policy change: active readers on an older version stop getting the newsletter
    until they agree again; returns the notices to send, one per address (its first
    subscription's: agreeing there agrees for each newsletter of the address)."""
    s = db.subscribers
    rows = conn.execute(
        sa.select(s.c.id, s.c.email, s.c.name)
        .where(
            s.c.status.in_(("active", "reconsent")),  # those still waiting get the newer link
            sa.or_(s.c.policy_version.is_(None), s.c.policy_version != policy.version),
        )
        .order_by(s.c.id)
    ).all()
    mails, mailed = [], set()
    evidence = Evidence(source="policy publish --reconsent")
    for row in rows:
        set_status(conn, row.id, "reconsent", now)
        record_consent(conn, row.id, "reconsent_requested", evidence, now, policy)
        if row.email in mailed:
            continue
        mailed.add(row.email)
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
            N_("a newer privacy policy has been published: use the link in the latest notice")
        )
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
    return (found if found is not None and found.status == "reconsent" else None), policy


def reconsent(
    conn: sa.Connection, token: str, evidence: Evidence, keys: Keys, now: datetime
) -> bool:
    """A reader agrees to the new policy, for every newsletter of the address that waits on
    it; True when that made them active again."""
    found, policy = reconsent_target(conn, token, keys, now)
    if found is None:
        return False
    for one in _same_address(conn, found):
        if one.status == "reconsent":
            set_status(conn, one.id, "active", now, policy_version=policy.version)
            record_consent(conn, one.id, "confirmed", evidence, now, policy)
    return True


def add_active_reader(
    conn: sa.Connection,
    email: str,
    name: str,
    evidence: Evidence,
    policy: Policy,
    now: datetime,
    kind: str = "imported",
    newsletter_id: int = db.FIRST_NEWSLETTER,
) -> int:
    """A reader whose consent was given elsewhere (the demo, an import): active, with evidence."""
    address = normalise_address(email)
    if is_suppressed(conn, address):
        raise StateError(f"{address} is suppressed (erased or complained) and is never re-added")
    s = db.subscribers
    if find_subscriber(conn, (s.c.email == address) & (s.c.newsletter_id == newsletter_id)):
        raise StateError(f"{address} is already a subscriber")
    inserted = conn.execute(
        db.subscribers.insert().values(
            newsletter_id=newsletter_id,
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


def count_by_status(conn: sa.Connection, newsletter_id: int | None = None) -> dict[str, int]:
    """Subscriptions by status: to one newsletter, or to any."""
    s = db.subscribers
    query = sa.select(s.c.status, sa.func.count()).group_by(s.c.status)
    if newsletter_id is not None:
        query = query.where(s.c.newsletter_id == newsletter_id)
    rows = conn.execute(query)
    return {status: int(count) for status, count in rows}


def list_subscribers(
    conn: sa.Connection,
    status: str | None = None,
    search: str | None = None,
    limit: int = 100,
    *,
    newest_first: bool = False,
    newsletter_id: int | None = None,
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
    if newsletter_id is not None:
        query = query.where(s.c.newsletter_id == newsletter_id)
    if search:
        query = query.where(s.c.email.contains(search.strip().lower(), autoescape=True))
    return [Subscriber(**row) for row in conn.execute(query).mappings()]


def subscriptions(
    conn: sa.Connection, subscriber_id: int
) -> list[tuple[Newsletter, Subscriber | None]]:
    """Every newsletter of the desk, with the address's subscription to it (None: never
    subscribed), for the address of this subscription; empty if it is gone (erased)."""
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
    if found is None or found.email is None:
        return []
    mine = {one.newsletter_id: one for one in _same_address(conn, found)}
    return [(newsletter, mine.get(newsletter.id)) for newsletter in list_newsletters(conn)]


def of_address(conn: sa.Connection, ref: str | int) -> list[Subscriber]:
    """Every subscription of the address a reference (an id, or the address) finds: what
    an export or an erasure covers, since it is the person's, not one newsletter's."""
    found = _matching(conn, ref)
    if not found:
        raise NotFound(f"no subscriber {str(ref).strip()}")
    return _same_address(conn, found[0])

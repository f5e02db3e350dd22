"""Sign-up and the double opt-in: an explicit yes recorded as evidence, the confirmation
mail asked for (rate-limited per network and per address, the same answer whoever the
address is), and the click that makes a pending reader active."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.curation.issues import check_line
from newsletter.errors import InputError
from newsletter.language import N_
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import (
    Evidence,
    Policy,
    get_policy,
    newsletter_policy,
    record_consent,
)
from newsletter.readers.subscribers import (
    MAILABLE_AGAIN,
    NAME_MAX,
    Mail,
    Subscriber,
    find_subscriber,
    set_status,
)
from newsletter.readers.suppression import is_suppressed, keyed_hash
from newsletter.readers.tokens import CONFIRM, Keys, TokenError, read_timed_token, timed_token
from newsletter.settings import Settings
from newsletter.store import tables as db


@dataclass(frozen=True)
class SignUp:
    """One sign-up as a person made it: the address, the explicit yes, and where from."""

    email: str
    consent: bool
    name: str = ""
    evidence: Evidence = field(default_factory=lambda: Evidence(source="cli"))
    newsletter_id: int = db.FIRST_NEWSLETTER  # the newsletter it subscribes to


@dataclass(frozen=True)
class Limits:
    confirm_ttl: timedelta = Settings.confirm_ttl
    confirm_mails_per_day: int = Settings.confirm_mails_per_day
    signups_per_hour: int = Settings.signups_per_hour

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.confirm_ttl, settings.confirm_mails_per_day, settings.signups_per_hour)


class RateLimited(InputError):
    status = 429


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
    mail = _sign_up(conn, address, name, request, secret, now)
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
    conn: sa.Connection, address: str, name: str, request: SignUp, secret: str, now: datetime
) -> Mail | None:
    if is_suppressed(conn, address):
        return None
    evidence, newsletter_id = request.evidence, request.newsletter_id
    policy = newsletter_policy(conn, newsletter_id)
    s = db.subscribers
    found = find_subscriber(conn, (s.c.email == address) & (s.c.newsletter_id == newsletter_id))
    if found is not None and found.status not in MAILABLE_AGAIN:
        return None  # active or complained: nothing changes, nothing is sent
    # the name waits for the confirmation: until the address's owner clicks, it is a
    # stranger's words, and neither greets them nor replaces the name they gave before
    offered = {"offered_name": name or None}
    if found is None:
        inserted = conn.execute(
            db.subscribers.insert().values(
                newsletter_id=newsletter_id,
                email=address,
                name=_known_name(conn, address),
                status="pending",
                created_at=now,
                updated_at=now,
                **offered,
            )
        ).inserted_primary_key
        assert inserted is not None
        subscriber_id = int(inserted[0])
    else:
        subscriber_id = found.id
        set_status(conn, subscriber_id, "pending", now, **offered)
    event_id = record_consent(conn, subscriber_id, "given", evidence, now, policy)
    token = timed_token(secret, CONFIRM, subscriber_id, str(event_id), now)
    known = found.name if found else _known_name(conn, address)
    return Mail("confirm", subscriber_id, address, known, token)


def _known_name(conn: sa.Connection, address: str) -> str:
    """The name the address confirmed for another newsletter: theirs, not a stranger's."""
    s = db.subscribers
    found = conn.execute(
        sa.select(s.c.name)
        .where(s.c.email == address, s.c.status.in_(("active", "reconsent")), s.c.name != "")
        .order_by(s.c.id)
        .limit(1)
    ).scalar()
    return str(found or "")


def confirm_target(
    conn: sa.Connection, token: str, keys: Keys, ttl: timedelta, now: datetime
) -> tuple[Subscriber, Policy]:
    """Who a confirmation link confirms, and to which policy; TokenError if it cannot."""
    subscriber_id, event_ref = read_timed_token(keys, CONFIRM, token, now, ttl)
    found = find_subscriber(conn, db.subscribers.c.id == subscriber_id)
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
        raise TokenError(N_("this link is no longer valid"))
    later = conn.execute(
        sa.select(sa.func.count()).where(
            e.c.subscriber_id == subscriber_id,
            e.c.id > given["id"],
            e.c.kind.in_(("withdrawn", "erased", "complained")),
        )
    ).scalar_one()
    if later:
        raise TokenError(N_("this link is no longer valid: the subscription was ended since"))
    # an import without evidence offered today's policy in its opt-in mail
    version = given["policy_version"]
    if not version:
        return found, newsletter_policy(conn, found.newsletter_id)
    policy = get_policy(conn, version)  # with the words that sign-up showed
    return found, replace(policy, wording=given["wording"] or policy.wording)


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

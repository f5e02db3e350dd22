"""Consent as evidence: published policy texts and the append-only consent ledger."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter.errors import InputError, NotFound, StateError
from newsletter.store import tables as db

WORDING_FILE = "wording.txt"


@dataclass(frozen=True)
class Policy:
    version: str
    text: str
    sha256: str
    wording: str
    published_at: datetime


@dataclass(frozen=True)
class Evidence:
    """What is kept of the moment a person agreed: where, how, and what they saw."""

    source: str  # form URL, import file, "cli"
    ip: str | None = None
    user_agent: str | None = None
    detail: str | None = None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def publish_policy(
    conn: sa.Connection, version: str, text: str, wording: str, now: datetime
) -> Policy:
    """Record a policy text; a version, once published, is never edited."""
    version, wording = version.strip(), " ".join(wording.split())
    if not version:
        raise InputError("--version: must not be empty")
    if not text.strip():
        raise InputError(f"policy {version}: the text is empty")
    if not wording:
        raise InputError(f"policy {version}: the sign-up wording is empty")
    digest = sha256_text(text)
    existing = conn.execute(
        sa.select(db.policy_versions.c.sha256, db.policy_versions.c.wording).where(
            db.policy_versions.c.version == version
        )
    ).first()
    if existing is not None:
        if (existing.sha256, existing.wording) != (digest, wording):
            raise StateError(
                f"policy {version} is already published with other text; "
                "publish the change as a new version"
            )
        return get_policy(conn, version)
    conn.execute(
        db.policy_versions.insert().values(
            version=version, text=text, sha256=digest, wording=wording, published_at=now
        )
    )
    return get_policy(conn, version)


def get_policy(conn: sa.Connection, version: str) -> Policy:
    row = (
        conn.execute(sa.select(db.policy_versions).where(db.policy_versions.c.version == version))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no privacy policy version {version!r}")
    return Policy(**row)


def current_policy(conn: sa.Connection) -> Policy:
    version = conn.execute(
        sa.select(db.policy_versions.c.version)
        .order_by(db.policy_versions.c.published_at.desc(), db.policy_versions.c.version.desc())
        .limit(1)
    ).scalar()
    if version is None:
        raise NotFound("no privacy policy is published: run `newsletter init` or `policy publish`")
    return get_policy(conn, version)


def newsletter_policy(conn: sa.Connection, newsletter_id: int) -> Policy:
    """The current policy as a newsletter's sign-up shows it: with the newsletter's own
    wording, if it has one (the evidence keeps the words the person saw)."""
    policy = current_policy(conn)
    wording = conn.execute(
        sa.select(db.newsletters.c.wording).where(db.newsletters.c.id == newsletter_id)
    ).scalar()
    return replace(policy, wording=wording) if wording else policy


def load_policy_folder(conn: sa.Connection, folder: Path, now: datetime) -> list[Policy]:
    """Publish every policy text in privacy/ (VERSION.md) not published yet, oldest first."""
    wording_path = folder / WORDING_FILE
    if not wording_path.is_file():
        return []
    wording = wording_path.read_text(encoding="utf-8")
    return [
        publish_policy(conn, path.stem, path.read_text(encoding="utf-8"), wording, now)
        for path in sorted(folder.glob("*.md"))
    ]


def record_consent(
    conn: sa.Connection,
    subscriber_id: int,
    kind: str,
    evidence: Evidence,
    now: datetime,
    policy: Policy | None = None,
) -> int:
    """Append one event to the consent ledger (events are never updated); returns its id."""
    inserted = conn.execute(
        db.consent_events.insert().values(
            subscriber_id=subscriber_id,
            kind=kind,
            at=now,
            ip=evidence.ip,
            user_agent=evidence.user_agent,
            source=evidence.source,
            detail=evidence.detail,
            policy_version=policy.version if policy else None,
            policy_sha256=policy.sha256 if policy else None,
            wording=policy.wording if policy else None,
        )
    ).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


CONSENTING = ("given", "confirmed", "imported")  # the events that say a reader agreed


def consent_dates(conn: sa.Connection, subscriber_ids: list[int]) -> dict[int, datetime]:
    """When each reader last agreed (signed up, confirmed, or was imported with consent
    given elsewhere), for the readers named."""
    if not subscriber_ids:
        return {}
    e = db.consent_events
    rows = conn.execute(
        sa.select(e.c.subscriber_id, sa.func.max(e.c.at))
        .where(e.c.subscriber_id.in_(subscriber_ids), e.c.kind.in_(CONSENTING))
        .group_by(e.c.subscriber_id)
    )
    return {int(sid): at for sid, at in rows}

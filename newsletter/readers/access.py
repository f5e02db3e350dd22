"""Access, export and erasure: what a reader may ask of the data kept about them."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.readers.consent import Evidence, record_consent
from newsletter.readers.subscribers import Subscriber, of_address, set_status
from newsletter.readers.suppression import suppress
from newsletter.store import tables as db

EXPORT_COLUMNS = ("email", "name", "status", "consented_at", "source", "ip", "policy_version")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell


def spreadsheet_safe(value: str) -> str:
    """A cell a spreadsheet shows as text: a reader's name `=HYPERLINK(…)` is not run when
    the list is opened (OWASP's CSV injection advice); `subscribers import` takes it off."""
    return "'" + value if value.startswith(FORMULA_START) else value


def from_spreadsheet_safe(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_START) else value


def export_subscriber(conn: sa.Connection, ref: str | int) -> dict[str, Any]:
    """Everything held about one reader: the record (the first subscription's, and every
    subscription's with its newsletter), the whole consent ledger, deliveries."""
    rows = of_address(conn, ref)
    found, ids = rows[0], [one.id for one in rows]
    slugs = dict(conn.execute(sa.select(db.newsletters.c.id, db.newsletters.c.slug)).all())
    e, d = db.consent_events, db.deliveries
    events = conn.execute(
        sa.select(e).where(e.c.subscriber_id.in_(ids)).order_by(e.c.id)
    ).mappings()
    deliveries = conn.execute(
        sa.select(
            d.c.issue_id,
            d.c.status,
            d.c.message_id,
            d.c.reason,
            d.c.reply,
            d.c.outcome,
            d.c.outcome_detail,
            d.c.updated_at,
        )
        .where(d.c.subscriber_id.in_(ids))
        .order_by(d.c.issue_id)
    ).mappings()
    return {
        "subscriber": asdict(found),
        "subscriptions": [
            {**asdict(one), "newsletter": slugs.get(one.newsletter_id)} for one in rows
        ],
        "consent_events": [dict(row) for row in events],
        "deliveries": [dict(row) for row in deliveries],
    }


def export_csv(conn: sa.Connection, newsletter_id: int | None = None) -> str:
    """The whole list (of one newsletter, or of all), one row per subscription with the
    evidence of consent, for moving elsewhere.

    The columns are the ones `subscribers import` reads, plus status."""
    s, e = db.subscribers, db.consent_events
    first = (
        sa.select(e.c.subscriber_id, sa.func.min(e.c.id).label("event_id"))
        .where(e.c.kind.in_(("given", "imported")))
        .group_by(e.c.subscriber_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(s.c.email, s.c.name, s.c.status, e.c.at, e.c.source, e.c.ip, s.c.policy_version)
        .select_from(s)
        .outerjoin(first, first.c.subscriber_id == s.c.id)
        .outerjoin(e, e.c.id == first.c.event_id)
        .where(s.c.status != "erased")
        .where(s.c.newsletter_id == newsletter_id if newsletter_id is not None else sa.true())
        .order_by(s.c.id)
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for email, name, status, at, source, ip, version in rows:
        stamp = at.isoformat() if at else ""
        cells = [email, name, status, stamp, source or "", ip or "", version or ""]
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()


def forget(conn: sa.Connection, ref: str | int, now: datetime, channel: str = "cli") -> int:
    """Erase a reader's personal data; keep a keyed hash so the address is never mailed again.

    The consent events stay (blanked of address, IP and user agent) as the record that
    consent existed and ended; an `erased` event is added. Every newsletter's subscription
    of the address is erased: it is the person's data. Returns the first subscription's id."""
    rows = of_address(conn, ref)
    for found in rows:
        _erase(conn, found, now, channel)
    return rows[0].id


def _erase(conn: sa.Connection, found: Subscriber, now: datetime, channel: str) -> None:
    if found.email is not None:
        suppress(conn, found.email, "erased", now)
    e, d = db.consent_events, db.deliveries
    blank: dict[str, Any] = {"ip": None, "user_agent": None}
    if found.email is not None:  # diagnostics quote the address: "550 <ann@…> unknown"
        blank["detail"] = sa.func.replace(e.c.detail, found.email, "[erased]")
    conn.execute(e.update().where(e.c.subscriber_id == found.id).values(**blank))
    conn.execute(d.update().where(d.c.subscriber_id == found.id).values(reply=None))
    set_status(conn, found.id, "erased", now, email=None, name="", offered_name=None)
    conn.execute(db.notice_queue.delete().where(db.notice_queue.c.subscriber_id == found.id))
    record_consent(conn, found.id, "erased", Evidence(source=channel), now)

"""What the edges show of a send, read once for the desk and the command line alike: the
delivery ledger's counts, the rate, the first failures, who is uncertain, and what came
back later by bounce mail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.record import Hygiene, hygiene
from newsletter.curation.issues import get_issue, issue_id_for_day, list_issues
from newsletter.delivery.ledger import counts as ledger_counts
from newsletter.delivery.ledger import reasons as ledger_reasons
from newsletter.delivery.ledger import uncertain_readers
from newsletter.models import Issue
from newsletter.readers.subscribers import count_by_status
from newsletter.schedule.lease import HEARTBEAT_EVERY, Heartbeat, heartbeats, send_lease
from newsletter.schedule.when import next_fire
from newsletter.settings import Settings
from newsletter.store import tables as db

FIRST_FAILURES = 10


@dataclass(frozen=True)
class SendStatus:
    issue: Issue
    document: dict[str, Any]  # what `status --json` prints and the desk's page shows
    hygiene: Hygiene  # the bounce ledger's findings, with their lines and their warning


def send_status(conn: sa.Connection, issue_ref: str | int) -> SendStatus:
    """One send's status: the counts by outcome, the rate so far, the first failures, the
    uncertain readers, and the bounces and complaints that came back by mail since."""
    d, s = db.deliveries, db.subscribers
    found = get_issue(conn, issue_ref)
    counts = ledger_counts(conn, found.id)
    first, last = conn.execute(
        sa.select(sa.func.min(d.c.updated_at), sa.func.max(d.c.updated_at)).where(
            d.c.issue_id == found.id, d.c.status == "sent"
        )
    ).one()
    failures = conn.execute(
        sa.select(s.c.email, d.c.reply, d.c.reason)
        .join(s, s.c.id == d.c.subscriber_id)
        .where(d.c.issue_id == found.id, d.c.status == "failed")
        .order_by(d.c.updated_at)
        .limit(FIRST_FAILURES)
    ).all()
    later = hygiene(conn, found.id)
    seconds = (last - first).total_seconds() if first and last else 0.0
    rate = counts.get("sent", 0) / seconds if seconds > 0 else None
    document = {
        "issue": found.id,
        "send_date": str(found.send_date),
        "status": found.status,
        "counts": counts,
        "total": sum(counts.values()),
        "done": sum(counts.get(k, 0) for k in ("sent", "failed", "skipped")),
        "messages_per_second": round(rate, 1) if rate else None,
        "failures": [{"reader": f.email, "reply": f.reply, "reason": f.reason} for f in failures],
        "reasons": ledger_reasons(conn, found.id),  # the readers not reached, by reason
        "hygiene": later.as_dict(),
        "uncertain": uncertain_readers(conn, found.id),
    }
    return SendStatus(found, document, later)


@dataclass(frozen=True)
class Week:
    """The desk's top line: when the next send is, what it would send, to how many, and
    whether a scheduler is there to send it."""

    send_at: datetime  # the next send time to come, in the site's time zone
    zone: str
    issue: Issue | None  # the issue for that send, if started
    audience: int  # readers it would go to if it went now (or the send's own ledger)
    scheduler: Heartbeat | None  # the most recent heartbeat heard
    scheduler_alive: bool
    sending: str | None  # who holds the send lease now, if anyone

    def until(self, now: datetime) -> timedelta:
        return self.send_at - now


def week(conn: sa.Connection, settings: Settings, now: datetime, issue_id: int | None) -> Week:
    """The week as the desk shows it above an issue (or above the calendar)."""
    zone = settings.timezone
    if issue_id is not None:
        found: Issue | None = get_issue(conn, issue_id)
        assert found is not None
        send_at = datetime.combine(found.send_date, settings.send_at.at, tzinfo=zone)
    else:
        send_at = next_fire(settings.send_at, zone, now).astimezone(zone)
        day_id = issue_id_for_day(conn, send_at.date(), settings.newsletter_id)
        found = None if day_id is None else get_issue(conn, day_id)
    in_ledger = sum(ledger_counts(conn, found.id).values()) if found else 0
    audience = in_ledger or count_by_status(conn, settings.newsletter_id).get("active", 0)
    beats = heartbeats(conn)
    latest = beats[0] if beats else None
    alive = latest is not None and now - latest.last_seen <= 2 * HEARTBEAT_EVERY
    lease = conn.execute(
        sa.select(db.leases.c.holder).where(
            db.leases.c.name == send_lease(settings.newsletter_id), db.leases.c.expires_at > now
        )
    ).scalar()
    return Week(send_at, str(zone), found, audience, latest, alive, lease)


@dataclass(frozen=True)
class Day:
    """One send day of the calendar: its issue, or none yet."""

    day: date
    issue: Issue | None
    counts: dict[str, int]


def calendar(conn: sa.Connection, settings: Settings, now: datetime, ahead: int = 6) -> list[Day]:
    """The coming send days (`ahead` of them, started or not, and any later issue), the
    next first, then every issue before them, the newest first: the whole run of the
    newsletter on one page."""
    first = settings.next_send_day(now)
    coming = {first + settings.send_at.period * n for n in range(ahead)}
    issues = {
        i.send_date: i for i in list_issues(conn, limit=500, newsletter_id=settings.newsletter_id)
    }
    later = sorted(d for d in coming | set(issues) if d >= first)
    days = later + sorted((d for d in issues if d < first), reverse=True)
    return [
        Day(day, issues.get(day), ledger_counts(conn, issues[day].id) if day in issues else {})
        for day in days
    ]


def live(conn: sa.Connection, issue_id: int, now: datetime) -> dict[str, Any]:
    """A send as it goes, for the desk's progress bar: sent in the last minute, and at
    that pace the time left for the readers still to go."""
    d = db.deliveries
    counts = ledger_counts(conn, issue_id)
    recent = conn.execute(
        sa.select(sa.func.count()).where(
            d.c.issue_id == issue_id, d.c.status == "sent", d.c.updated_at > now - MINUTE
        )
    ).scalar_one()
    left = sum(counts.get(k, 0) for k in ("pending", "queued", "claimed", "deferred"))
    per_second = recent / MINUTE.total_seconds()
    return {
        "sent_last_minute": int(recent),
        "per_second_last_minute": round(per_second, 1),
        "left": left,
        "seconds_left": round(left / per_second) if per_second and left else None,
    }


MINUTE = timedelta(minutes=1)

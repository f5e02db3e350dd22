"""What the edges show of a send, read once for the desk and the command line alike: the
delivery ledger's counts, the rate, the first failures, who is uncertain, and what came
back later by bounce mail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.record import Hygiene, hygiene
from newsletter.curation.issues import get_issue
from newsletter.delivery.ledger import counts as ledger_counts
from newsletter.delivery.ledger import reasons as ledger_reasons
from newsletter.delivery.ledger import uncertain_readers
from newsletter.models import Issue
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

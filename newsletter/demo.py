"""`newsletter demo`: a whole week on the embedded default, with nothing configured."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from newsletter.app import DEFAULTS, Desk, init_desk
from newsletter.curation.articles import import_sources, list_articles
from newsletter.curation.issues import (
    approve,
    get_issue,
    issue_id_for_day,
    new_issue,
    pick,
    set_fields,
)
from newsletter.delivery.report import SendReport
from newsletter.delivery.send import send_issue
from newsletter.models import Issue
from newsletter.readers.consent import Evidence, current_policy
from newsletter.readers.subscribers import add_active_reader
from newsletter.store import tables as db

DEMO_FEED = DEFAULTS / "demo_feed.xml"
DEMO_READERS = (
    ("anna.petrova@example.org", "Анна Петрова"),
    ("tom.baker@example.org", "Tom Baker"),
    ("reader@example.net", ""),
)
PICKS = 10
NOTE = (
    "Good morning. This week we followed the budget vote to its last hour, "
    "went to the reading rooms that stay open all night, and asked three economists "
    "what the new rates mean for your rent.\n\n"
    "Thank you for reading, and for writing back: every reply reaches the editors."
)


@dataclass(frozen=True)
class DemoResult:
    issue_id: int
    send_date: str
    report: SendReport | None
    outbox: str


def run_demo(desk: Desk, now: datetime) -> DemoResult:
    """Seed articles, readers and this week's issue, approve it and send it to the outbox."""
    init_desk(desk, now)
    import_sources(desk.engine, [str(DEMO_FEED)], now)
    with desk.engine.begin() as conn:
        _seed_readers(conn, now)
        issue = _this_weeks_issue(desk, conn, now)
    report = None
    if issue.status in ("approved", "sending"):
        report = send_issue(issue.id, desk.engine, desk.settings, desk.transport(), desk.now)
    return DemoResult(issue.id, issue.send_date.isoformat(), report, str(desk.settings.outbox))


def _seed_readers(conn: sa.Connection, now: datetime) -> None:
    policy = current_policy(conn)
    known = set(conn.execute(sa.select(db.subscribers.c.email)).scalars())
    for email, name in DEMO_READERS:
        if email not in known:
            evidence = Evidence(source="newsletter demo", detail="sample reader")
            add_active_reader(conn, email, name, evidence, policy, now)


def _this_weeks_issue(desk: Desk, conn: sa.Connection, now: datetime) -> Issue:
    send_date = desk.settings.send_day(now)
    existing = issue_id_for_day(conn, send_date)
    issue = get_issue(conn, existing) if existing else new_issue(conn, send_date, now)
    if issue.status != "draft":
        return issue
    if not issue.items:
        picks = [a.id for a in list_articles(conn, limit=PICKS)]
        pick(conn, issue.id, picks, now)
    set_fields(
        conn,
        issue.id,
        now,
        subject=f"The week in review, {send_date:%-d %B}: budget vote, night libraries",
        preheader="Ten stories our editors picked for you this week, from the budget to books.",
        note=NOTE,
    )
    return approve(conn, issue.id, now)

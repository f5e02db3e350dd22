"""What bounce mail changes: readers' statuses, delivery rows, and the list's hygiene.

Each message is recorded once (by Message-ID, else by its bytes) in the same transaction
as what it changed, so reading a mailbox twice changes nothing. A reader becomes
`bounced` at the first hard bounce whose code says the address does not exist, after
BOUNCE_LIMIT other hard bounces, or after SOFT_BOUNCE_LIMIT soft ones within the window;
a complaint makes the reader `complained` at once. Every change is an event in the
reader's consent ledger with the diagnostic text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.verdict import (
    ACTIONABLE,
    COMPLAINT,
    HARD,
    OURS,
    SOFT,
    UNRECOGNISED,
    Verdict,
)
from newsletter.errors import ListHygieneError
from newsletter.readers.consent import Evidence
from newsletter.readers.subscribers import (
    mark_bounced,
    record_complaint,
    record_permanent_failure,
    unsubscribe,
)
from newsletter.reasons import HARD as HARD_REASONS
from newsletter.settings import Settings
from newsletter.store import tables as db

# Mailbox providers throttle senders past these (Gmail and Yahoo: 0.3% complaints).
COMPLAINT_RATE_LIMIT = 0.003
HARD_BOUNCE_RATE_LIMIT = 0.05
# Mail refused for a reason of ours (a listing, authentication, content): past this the
# receivers are refusing the newsroom, and sending again deepens the hole.
OUR_SIDE_RATE_LIMIT = 0.02
SEVERITY = {OURS: 1, SOFT: 1, HARD: 2, COMPLAINT: 3}
NOTED = (*ACTIONABLE, OURS)  # the kinds a delivery keeps as its later outcome
UNMATCHED, DUPLICATE, UNSUBSCRIBE = "unmatched", "duplicate", "unsubscribe"
ASIDE = (UNRECOGNISED, UNMATCHED)  # kept for a person to read


@dataclass(frozen=True)
class Policy:
    # the settings' own defaults, not a second copy of them
    bounce_limit: int = Settings.bounce_limit
    at_once: tuple[str, ...] = Settings.bounce_at_once
    soft_limit: int = Settings.soft_bounce_limit
    soft_window: timedelta = Settings.soft_bounce_window

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            settings.bounce_limit,
            settings.bounce_at_once,
            settings.soft_bounce_limit,
            settings.soft_bounce_window,
        )


@dataclass(frozen=True)
class Recorded:
    """What one message came to: its kind (or duplicate/unmatched) and whom it changed."""

    kind: str
    changed: tuple[str, ...] = ()  # "anna@example.org: bounced"

    @property
    def aside(self) -> bool:
        return self.kind in ASIDE


def record_mail(
    conn: sa.Connection, key: str, verdict: Verdict, source: str, policy: Policy, now: datetime
) -> Recorded:
    """Apply one classified message, once."""
    b = db.bounce_mail
    seen = conn.execute(sa.select(b.c.kind).where(b.c.key == key)).scalar()
    if seen is not None:
        return Recorded(UNRECOGNISED if seen in ASIDE else DUPLICATE)
    targets = _targets(conn, verdict) if verdict.kind in NOTED else []
    kind = verdict.kind if targets or verdict.kind not in ACTIONABLE else UNMATCHED
    first = targets[0] if targets else (None, None)
    conn.execute(
        b.insert().values(
            key=key,
            received_at=now,
            kind=kind,
            subscriber_id=first[0],
            issue_id=first[1],
            code=verdict.code,
            diagnostic=verdict.diagnostic,
            source=source,
            reason=verdict.reason or None,
        )
    )
    changed = []
    for subscriber_id, issue_id in targets:
        if issue_id is not None:
            _note_outcome(conn, issue_id, subscriber_id, verdict, now)
        if verdict.kind in ACTIONABLE and _apply(conn, subscriber_id, verdict, policy, now):
            email = conn.execute(
                sa.select(db.subscribers.c.email, db.subscribers.c.status).where(
                    db.subscribers.c.id == subscriber_id
                )
            ).one()
            changed.append(f"{email.email}: {email.status}")
    return Recorded(kind, tuple(changed))


def record_unsubscribe(
    conn: sa.Connection, key: str, subscriber_id: int, source: str, now: datetime
) -> Recorded:
    """A reader's request by mail (the List-Unsubscribe mailto), once: withdrawn at once."""
    b, s = db.bounce_mail, db.subscribers
    if conn.execute(sa.select(b.c.kind).where(b.c.key == key)).scalar() is not None:
        return Recorded(DUPLICATE)
    email = conn.execute(sa.select(s.c.email).where(s.c.id == subscriber_id)).scalar()
    conn.execute(
        b.insert().values(key=key, received_at=now, kind=UNSUBSCRIBE, source=source,
                          subscriber_id=subscriber_id if email is not None else None)
    )  # fmt: skip
    if email is None:
        return Recorded(UNSUBSCRIBE)
    evidence = Evidence(source="mail: List-Unsubscribe mailto", detail=source)
    changed = unsubscribe(conn, subscriber_id, evidence, now)
    return Recorded(UNSUBSCRIBE, (f"{email}: unsubscribed",) if changed else ())


def _targets(conn: sa.Connection, verdict: Verdict) -> list[tuple[int, int | None]]:
    """(reader, issue) pairs: the return path's, else the readers the addresses name (in
    the form readers are stored: classify normalised them), each with the issue last
    sent to them."""
    s, d = db.subscribers, db.deliveries
    if verdict.target is not None:
        found = conn.execute(
            sa.select(s.c.id).where(s.c.id == verdict.target.subscriber_id)
        ).scalar()
        issue = verdict.target.issue_id or None  # NO_ISSUE: a notice's bounce, no delivery
        return [(verdict.target.subscriber_id, issue)] if found else []
    if not verdict.addresses:
        return []
    readers = conn.execute(
        sa.select(s.c.id).where(s.c.email.in_(verdict.addresses)).order_by(s.c.id)
    ).scalars()
    targets: list[tuple[int, int | None]] = []
    for subscriber_id in readers:
        last = conn.execute(
            sa.select(d.c.issue_id)
            .where(d.c.subscriber_id == subscriber_id, d.c.status == "sent")
            .order_by(d.c.issue_id.desc())
            .limit(1)
        ).scalar()
        targets.append((subscriber_id, last))
    return targets


def _note_outcome(
    conn: sa.Connection, issue_id: int, subscriber_id: int, verdict: Verdict, now: datetime
) -> None:
    """The delivery row keeps the worst later outcome and its reason; its status (sent)
    stays as the relay answered, so the send's accounting is untouched."""
    d = db.deliveries
    mine = (d.c.issue_id == issue_id, d.c.subscriber_id == subscriber_id)
    before = conn.execute(sa.select(d.c.outcome).where(*mine)).first()
    if before is None or SEVERITY.get(before.outcome or "", 0) > SEVERITY[verdict.kind]:
        return
    detail = f"{verdict.kind}: {verdict.diagnostic}" if verdict.diagnostic else verdict.kind
    conn.execute(
        d.update()
        .where(*mine)
        .values(
            outcome=verdict.kind,
            outcome_detail=detail,
            outcome_at=now,
            outcome_reason=verdict.reason or None,
        )
    )


def _apply(
    conn: sa.Connection, subscriber_id: int, verdict: Verdict, policy: Policy, now: datetime
) -> bool:
    detail = verdict.diagnostic or verdict.kind
    if verdict.kind == COMPLAINT:
        return record_complaint(conn, subscriber_id, detail, now)
    if verdict.kind == HARD:
        # at once only where the reason is the address itself: a 5.1.1 that says our IP is
        # listed was judged ours already; one that says nothing more is taken at its code
        at_once = verdict.code in policy.at_once and verdict.reason in ("", *HARD_REASONS)
        limit = 1 if at_once else policy.bounce_limit
        return record_permanent_failure(conn, subscriber_id, detail, limit, now, "bounce mail")
    b = db.bounce_mail
    recent = conn.execute(
        sa.select(sa.func.count()).where(
            b.c.subscriber_id == subscriber_id,
            b.c.kind == SOFT,
            b.c.received_at > now - policy.soft_window,
        )
    ).scalar_one()
    if recent < policy.soft_limit:
        return False
    days = policy.soft_window.days or 1
    summary = f"{recent} temporary failures in {days} days; the last: {detail}"
    return mark_bounced(conn, subscriber_id, summary, "bounce mail", now)


@dataclass(frozen=True)
class Hygiene:
    """One issue's later outcomes against the messages the relay took, each kind also
    counted by reason: an address that does not exist is the list's hygiene, a block
    list or a failed SPF check is the newsroom's, and they call for different work."""

    issue_id: int
    delivered: int
    hard: int
    soft: int
    complaints: int
    our_side: int = 0  # refused later for a reason of ours; the readers untouched
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # kind: reason: n

    def rate(self, count: int) -> float:
        return count / self.delivered if self.delivered else 0.0

    def as_dict(self) -> dict[str, Any]:
        rates = {
            "hard_rate": self.rate(self.hard),
            "soft_rate": self.rate(self.soft),
            "complaint_rate": self.rate(self.complaints),
            "our_side_rate": self.rate(self.our_side),
        }
        return {**asdict(self), **rates}

    def by_reason(self, kind: str) -> str:
        counts = self.reasons.get(kind, {})
        return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(), key=_most))

    def lines(self) -> list[str]:
        lines = []
        for name, kind, count in (
            ("hard", HARD, self.hard),
            ("soft", SOFT, self.soft),
            ("complaints", COMPLAINT, self.complaints),
            ("our side", OURS, self.our_side),
        ):
            why = self.by_reason(kind)
            lines.append(
                f"{name:>10}: {count} ({self.rate(count):.2%} of {self.delivered} delivered)"
                + (f": {why}" if why and kind != COMPLAINT else "")
            )
        return lines

    def problem(self) -> str | None:
        """Why the next send should not start, or None."""
        for what, kind, count, limit, then in (
            ("complaint", COMPLAINT, self.complaints, COMPLAINT_RATE_LIMIT, ""),
            ("hard-bounce", HARD, self.hard, HARD_BOUNCE_RATE_LIMIT, ""),
            ("our-side refusal", OURS, self.our_side, OUR_SIDE_RATE_LIMIT,
             "; the receivers refuse the newsroom's mail, not the readers' addresses: "
             "fix the listing, the authentication or the content first"),
        ):  # fmt: skip
            rate = self.rate(count)
            if rate > limit:
                why = self.by_reason(kind) if kind != COMPLAINT else ""
                return (
                    f"issue {self.issue_id} had {_a(what)} rate of {rate:.2%} ({count} of "
                    f"{self.delivered}{': ' + why if why else ''}), above {limit:.1%}{then}"
                )
        return None


def _most(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _a(what: str) -> str:
    return f"an {what}" if what[0] in "aeiou" else f"a {what}"


def hygiene(conn: sa.Connection, issue_id: int) -> Hygiene:
    d = db.deliveries
    rows = conn.execute(
        sa.select(d.c.status, d.c.outcome, d.c.outcome_reason, sa.func.count())
        .where(d.c.issue_id == issue_id)
        .group_by(d.c.status, d.c.outcome, d.c.outcome_reason)
    ).all()
    by_outcome: dict[str, int] = {}
    reasons: dict[str, dict[str, int]] = {}
    for _status, outcome, reason, count in rows:
        by_outcome[outcome or ""] = by_outcome.get(outcome or "", 0) + int(count)
        if outcome:
            of_kind = reasons.setdefault(outcome, {})
            of_kind[reason or "undefined"] = of_kind.get(reason or "undefined", 0) + int(count)
    delivered = sum(int(count) for status, _outcome, _reason, count in rows if status == "sent")
    return Hygiene(
        issue_id,
        delivered,
        by_outcome.get(HARD, 0),
        by_outcome.get(SOFT, 0),
        by_outcome.get(COMPLAINT, 0),
        by_outcome.get(OURS, 0),
        reasons,
    )


def check_last_issue(conn: sa.Connection, issue_id: int) -> None:
    """Refuse to start sending `issue_id` while the last sent issue's rates are too high."""
    i = db.issues
    last = conn.execute(
        sa.select(i.c.id)
        .where(i.c.status == "sent", i.c.id != issue_id)
        .order_by(i.c.sent_at.desc(), i.c.id.desc())
        .limit(1)
    ).scalar()
    if last is None:
        return
    problem = hygiene(conn, last).problem()
    if problem:
        raise ListHygieneError(
            f"send refused: {problem}; look at `newsletter status {last}` and the readers "
            "it names, or pass --force"
        )

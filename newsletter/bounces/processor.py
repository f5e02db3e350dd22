"""One piece of mail to the bounce address, or one provider's batch of events, classified
and recorded once; what a run read and what it changed. Used by `process` (mailboxes),
`listen` (the SMTP listener) and the providers' webhooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.classify import classify, message_key, unsubscribe_token
from newsletter.bounces.providers import events, parse_events
from newsletter.bounces.record import Policy, record_mail, record_unsubscribe
from newsletter.compose.returnpath import ReturnPathReader
from newsletter.readers.tokens import TokenError, read_reader_token
from newsletter.settings import Settings


@dataclass
class BounceReport:
    """What a run read and what it changed."""

    read: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    aside: list[str] = field(default_factory=list)  # source and name of each message kept aside
    left: list[str] = field(default_factory=list)  # read and recorded, but not moved: why

    def add(self, kind: str) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.kinds.items())) or "nothing"
        out = [f"read {self.read} messages: {kinds}"]
        out += [f"changed: {line}" for line in self.changed]
        out += [f"kept aside: {line}" for line in self.aside]
        out += [f"left in place: {line}" for line in self.left]
        return out


class BounceProcessor:
    """Classifies and records mail to the bounce address; used by `process` and `listen`."""

    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self.engine, self.policy = engine, Policy.from_settings(settings)
        address = settings.bounce_address
        keys = self.keys = settings.verify_keys()
        self.reader = ReturnPathReader(keys, address) if address else None

    def _unsubscribing(self, raw: bytes) -> int | None:
        """The reader asking to leave by mail, when the subject carries a valid token."""
        token = unsubscribe_token(raw)
        if token is None:
            return None
        try:
            return read_reader_token(self.keys, token)
        except TokenError:
            return None  # not a request of ours: classified like any other mail

    def take_events(self, body: bytes, source: str, now: datetime, report: BounceReport) -> None:
        """Record every event of a provider's JSON (SES, Mailgun, SendGrid, Postmark) once."""
        found = events(parse_events(body, source), self.reader)
        with self.engine.begin() as conn:
            for event in found:
                where = f"{source} ({event.provider})"
                recorded = record_mail(conn, event.key, event.verdict, where, self.policy, now)
                report.read += 1
                report.add(recorded.kind)
                report.changed += recorded.changed

    def take(
        self,
        raw: bytes,
        source: str,
        now: datetime,
        report: BounceReport,
        envelope_to: tuple[str, ...] = (),
    ) -> bool:
        """Record one message; True when it is to be kept aside."""
        requester = self._unsubscribing(raw)
        with self.engine.begin() as conn:
            if requester is not None:
                recorded = record_unsubscribe(conn, message_key(raw), requester, source, now)
            else:
                verdict = classify(raw, self.reader, envelope_to)
                recorded = record_mail(conn, message_key(raw), verdict, source, self.policy, now)
        report.read += 1
        report.add(recorded.kind)
        report.changed += recorded.changed
        return recorded.aside

"""Mail to the editors when the Friday job cannot do what they expect: nothing approved,
a send missed, a send that failed; and the reminder the day before.

Each alert goes out once per kind and send day, however often a job runs (cron runs
`send.py --once` every few minutes; two schedulers may fire together).
"""

from __future__ import annotations

import email.policy
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import sqlalchemy as sa

from newsletter.compose.issue import envelope_sender
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope, Transport, opened

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    kind: str  # not-ready, missed, failed, reminder
    day: date  # the send day it is about
    subject: str
    body: str


def alert_message(alert: Alert, settings: Settings, editor: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.from_addr
    message["To"] = editor
    message["Subject"] = f"[{settings.site_name}] {alert.subject}"
    message["Date"] = format_datetime(now)
    domain = settings.sender_address.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<alert.{alert.kind}.{alert.day}.{secrets.token_hex(6)}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(alert.body)
    return message


def alert_editors(
    alert: Alert,
    engine: sa.Engine,
    settings: Settings,
    transport: Callable[[], Transport],
    now: datetime,
) -> str:
    """Mail the alert to every editor once (once per newsletter: `settings` are its view,
    and the subject carries its name); returns a line saying what happened."""
    kind = alert.kind if settings.newsletter_id == 1 else f"{alert.kind}:{settings.newsletter_id}"
    if not settings.editors:
        log.warning("%s (NEWSLETTER_EDITORS is unset: nobody was mailed)", alert.subject)
        return f"{alert.subject} (NEWSLETTER_EDITORS is unset: nobody was mailed)"
    try:
        with engine.begin() as conn:
            conn.execute(
                db.alerts.insert().values(
                    kind=kind, day=alert.day, reason=alert.subject, sent_at=now
                )
            )
    except sa.exc.IntegrityError:
        return f"{alert.subject} (editors were alerted before)"
    try:
        _mail(alert, settings, transport, now)
    except Exception as exc:  # whatever stopped it, the editors were not told: try next run
        with engine.begin() as conn:
            conn.execute(
                db.alerts.delete().where(db.alerts.c.kind == kind, db.alerts.c.day == alert.day)
            )
        log.error("could not mail the editors: %s", exc)
        return f"{alert.subject} (could not mail the editors: {exc})"
    log.warning("alerted %s: %s", ", ".join(settings.editors), alert.subject)
    return f"{alert.subject} (editors alerted: {', '.join(settings.editors)})"


def _mail(
    alert: Alert, settings: Settings, transport: Callable[[], Transport], now: datetime
) -> None:
    with opened(transport) as relay:
        for editor in settings.editors:
            message = alert_message(alert, settings, editor, now)
            data = message.as_bytes(policy=email.policy.SMTP)
            relay.send(Envelope(envelope_sender(settings), editor, message["Message-ID"], data))

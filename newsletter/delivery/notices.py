"""The mails around a subscription: confirmation, welcome, and the notice of a new policy.

Each kind is rendered once per batch and filled per reader, like the newsletter; they
are sent after the transaction that decided them has committed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.compose.issue import envelope_sender
from newsletter.compose.messages import PreparedMessage, Sender, build_message, prepare_message
from newsletter.compose.rendering import Site, render_mail
from newsletter.compose.returnpath import NO_ISSUE, return_paths
from newsletter.errors import DeliveryError, PermanentDeliveryError
from newsletter.language import every_weekday, weekday_name
from newsletter.models import Reader
from newsletter.publications import view_of
from newsletter.readers.consent import current_policy
from newsletter.readers.subscribers import Mail
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope, Transport


@dataclass(frozen=True)
class NoticeReport:
    sent: int
    failures: tuple[str, ...]
    failed: tuple[int, ...] = ()  # the positions in `mails` of the mails that failed
    permanent: tuple[int, ...] = ()  # those of them the relay refused for good (5xx)


def notice_context(conn: sa.Connection, settings: Settings, now: datetime) -> dict[str, Any]:
    return {
        "policy": current_policy(conn),
        "send_weekday": settings.send_at.weekday,  # every_weekday(send_weekday): "every Friday"
        "send_day": (  # "Friday"; a daily newsletter's: "every day"
            every_weekday(None, settings.language)
            if settings.send_at.weekday is None
            else weekday_name(settings.send_at.weekday, settings.language)
        ),
        "next_send": settings.next_send_day(now),
        "confirm_days": settings.confirm_ttl.days or 1,
    }


def send_notices(
    mails: Sequence[Mail],
    engine: sa.Engine,
    settings: Settings,
    transport: Transport,
    now: datetime,
) -> NoticeReport:
    """Send each mail, in the name of the newsletter its reader subscribes to; a failure
    is reported, never raised: the decision is already recorded."""
    if not mails:
        return NoticeReport(0, ())
    s = db.subscribers
    groups: dict[int, list[int]] = {}
    with engine.connect() as conn:
        ids = [mail.subscriber_id for mail in mails]
        of = dict(conn.execute(sa.select(s.c.id, s.c.newsletter_id).where(s.c.id.in_(ids))).all())
        for position, mail in enumerate(mails):
            newsletter_id = of.get(mail.subscriber_id, settings.newsletter_id)
            groups.setdefault(newsletter_id, []).append(position)
        views = {one: view_of(conn, settings, one) for one in groups}
    sent, failures, failed, permanent = 0, list[str](), list[int](), list[int]()
    for one, positions in groups.items():
        report = _send_notices([mails[p] for p in positions], engine, views[one], transport, now)
        sent += report.sent
        failures += report.failures
        failed += [positions[i] for i in report.failed]
        permanent += [positions[i] for i in report.permanent]
    return NoticeReport(sent, tuple(failures), tuple(failed), tuple(permanent))


def _send_notices(
    mails: Sequence[Mail],
    engine: sa.Engine,
    settings: Settings,
    transport: Transport,
    now: datetime,
) -> NoticeReport:
    """One newsletter's notices: `settings` are its view of the desk's."""
    sender = Sender.from_settings(settings)
    with engine.connect() as conn:
        context = notice_context(conn, settings, now)
    prepared: dict[str, PreparedMessage] = {}
    # signed like a newsletter's, with no issue (0): a bounce of a notice names its reader
    return_path = return_paths(
        sender.secret, settings.bounce_address, NO_ISSUE, envelope_sender(settings)
    )
    sent, failures, failed, permanent = 0, [], [], []
    for position, mail in enumerate(mails):
        if mail.kind not in prepared:
            rendered = render_mail(
                mail.kind, context, Site.from_settings(settings), settings.templates
            )
            lists = mail.kind != "confirm"  # a sign-up is not on the list yet
            prepared[mail.kind] = prepare_message(
                rendered, sender, 0, now, list_headers=lists, notice=True
            )
        reader = Reader(mail.subscriber_id, mail.email, mail.name)
        values = sender.reader_values(reader, 0)
        if mail.kind == "confirm":
            values = replace(values, confirm_url=f"{sender.base_url}/confirm/{mail.token}")
        elif mail.kind == "reconsent":
            values = replace(values, reconsent_url=f"{sender.base_url}/reconsent/{mail.token}")
        msgid = f"<{mail.kind}.{mail.subscriber_id}.{secrets.token_hex(8)}@{sender.domain}>"
        data = build_message(prepared[mail.kind], reader, values, msgid)
        try:
            transport.send(Envelope(return_path(mail.subscriber_id), mail.email, msgid, data))
            sent += 1
        except DeliveryError as exc:
            failures.append(f"{mail.kind} mail to {mail.email}: {exc}")
            failed.append(position)
            if isinstance(exc, PermanentDeliveryError):
                permanent.append(position)
    return NoticeReport(sent, tuple(failures), tuple(failed), tuple(permanent))

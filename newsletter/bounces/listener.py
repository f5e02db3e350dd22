"""`bounces listen`: an SMTP receiver (aiosmtpd) for a bounce domain whose MX points here.

It takes mail for the bounce address and its `+token` forms only, records each message
as `bounces process` does, and answers 250 once that is committed (451 when it could
not be, so the sending server tries again later).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from newsletter.bounces.processor import BounceProcessor, BounceReport
from newsletter.compose.returnpath import ReturnPathReader
from newsletter.errors import ConfigError, NewsletterError
from newsletter.settings import Settings
from newsletter.store.engine import now_utc

log = logging.getLogger(__name__)


class BounceHandler:
    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        if not settings.bounce_address:
            raise ConfigError(
                "NEWSLETTER_BOUNCE_ADDRESS", "is not set; the listener takes mail for it only"
            )
        self.processor = BounceProcessor(engine, settings)
        self.ours = ReturnPathReader(settings.verify_keys(), settings.bounce_address)
        self.report = BounceReport()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if not self.ours.is_ours(address):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        try:
            self.processor.take(raw, "smtp", now_utc(), self.report, tuple(envelope.rcpt_tos))
        except (NewsletterError, sa.exc.SQLAlchemyError) as exc:
            log.error("bounce not recorded, asked to retry: %s", exc)
            return "451 4.3.0 not recorded, try again later"
        return "250 2.0.0 recorded"


def start_listener(engine: sa.Engine, settings: Settings, host: str, port: int) -> Any:
    """A started aiosmtpd Controller; the caller stops it."""
    from aiosmtpd.controller import Controller

    controller = Controller(BounceHandler(engine, settings), hostname=host, port=port)
    controller.start()
    return controller

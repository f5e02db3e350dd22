"""The composition root: settings in, a working desk (database, folders, transport) out."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa

from .config import Settings
from .consent import Policy, load_policy_folder
from .db import create_db_engine, upgrade_database
from .relays import open_transports
from .transports import Transport, open_transport

DEFAULTS = Path(__file__).parent / "defaults"
DEMO_SECRET = "demo-only-secret-set-NEWSLETTER_SECRET_KEY-in-production"

SUBSCRIBERS_README = """\
# subscribers/

The embedded default's data: the SQLite database `newsletter.db` (readers, their
consent ledger, issues and the delivery ledger). It is personal data: keep it out
of version control and back it up like any other database.
"""


@dataclass
class Desk:
    settings: Settings

    @cached_property
    def engine(self) -> sa.Engine:
        return create_db_engine(self.settings.database_url)

    def transport(self) -> Transport:
        return open_transport(self.settings.smtp_url, self.settings.outbox)

    def transports(self) -> Callable[[], Transport]:
        """The connections of one send: several relays share one pool (weights, cool-downs)."""
        s = self.settings
        return open_transports(s.smtp_url, s.outbox, s.relay_cooldown, s.relay_failures)


def demo_settings(settings: Settings) -> Settings:
    """The demo runs with nothing configured: it signs its links with a demo key."""
    return settings if settings.secret_key else replace(settings, secret_key=DEMO_SECRET)


def lay_out_folders(settings: Settings) -> list[Path]:
    """Give a site that installed the package its own templates/, privacy/ and subscribers/."""
    made = []
    for source, target in (
        (DEFAULTS / "templates", settings.templates),
        (DEFAULTS / "privacy", settings.privacy_dir),
    ):
        if not target.exists():
            shutil.copytree(source, target)
            made.append(target)
    if settings.database_url.startswith("sqlite:///subscribers/"):
        folder = Path("subscribers")
        if not (folder / "README.md").exists():
            folder.mkdir(exist_ok=True)
            (folder / "README.md").write_text(SUBSCRIBERS_README, encoding="utf-8")
            made.append(folder)
    return made


def init_desk(desk: Desk, now: datetime) -> tuple[list[Path], list[Policy]]:
    """Create or upgrade the database and load the policy texts; harmless to run twice."""
    made = lay_out_folders(desk.settings)
    upgrade_database(desk.engine)
    with desk.engine.begin() as conn:
        policies = load_policy_folder(conn, desk.settings.privacy_dir, now)
    return made, policies

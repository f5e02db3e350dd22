"""The composition root: settings in, a working desk (database, folders, transport) out."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from newsletter.curation.articles import ImportReport
    from newsletter.models import Issue
from newsletter.errors import StateError
from newsletter.readers.consent import Policy, load_policy_folder
from newsletter.settings import Settings
from newsletter.store.engine import create_db_engine, upgrade_database
from newsletter.store.keys import ensure_key, kept_keys
from newsletter.transport.base import Transport
from newsletter.transport.pool import open_transport, open_transports

DEFAULTS = Path(__file__).parent / "defaults"

SUBSCRIBERS_README = DEFAULTS / "subscribers_README.md"  # the repository's subscribers/README.md


@dataclass
class Desk:
    settings: Settings
    # NEWSLETTER_CLOCK: the clock starts at that time when the desk is made, and runs on
    _clock_offset: timedelta = field(init=False, repr=False)

    def __post_init__(self) -> None:
        start = self.settings.clock
        self._clock_offset = start - datetime.now(UTC) if start else timedelta(0)

    def now(self) -> datetime:
        """The desk's clock, read only at the edges (CLI, web, workers) and passed in."""
        return datetime.now(UTC) + self._clock_offset

    @cached_property
    def engine(self) -> sa.Engine:
        return create_db_engine(self.settings.database_url)

    def use_kept_key(self) -> Desk:
        """Without NEWSLETTER_SECRET_KEY, sign with the key the database keeps (made by
        `init`), and verify with the rotated ones that still count. A database that does
        not exist yet is not created here."""
        if self.settings.secret_key or not database_exists(self.settings.database_url):
            return self
        try:
            with self.engine.connect() as conn:
                keys = kept_keys(conn, self.now())
        except sa.exc.OperationalError:
            return self  # no server, no file: the command itself says so, or needs none
        if keys:
            self.settings = replace(self.settings, secret_key=keys[0], older_secret_keys=keys[1:])
        return self

    def settings_of(self, newsletter_id: int) -> Settings:
        """The settings as one newsletter sees them (its name, sender, schedule, templates)."""
        from newsletter.publications import view_of

        with self.engine.connect() as conn:
            return view_of(conn, self.settings, newsletter_id)

    def transport(self) -> Transport:
        return open_transport(self.settings.smtp_url, self.settings.outbox)

    def import_feeds(self, sources: Sequence[str]) -> list[ImportReport]:
        """Import feeds within the settings' limits, their images measured as they allow."""
        from newsletter.curation.articles import import_sources  # feedparser: when used
        from newsletter.curation.fetch import FetchLimits

        limits = FetchLimits.from_settings(self.settings)
        return import_sources(
            self.engine, sources, self.now(), limits, self.settings.feed_image_sizes
        )

    def approve(self, ref: str | int, *, force: bool = False, revision: int | None = None) -> Issue:
        """Approve an issue that passes preflight (rendered as it will go out): a missing
        unsubscribe or privacy link refuses it always, Gmail's clipping unless `force`;
        `revision`: only if the issue is still as the approving editor saw it."""
        from newsletter.compose.copies import composed_for_preview  # rendering: when used
        from newsletter.curation.issues import approve, expect_revision, get_issue

        with self.engine.begin() as conn:
            if revision is not None:
                expect_revision(conn, ref, revision)
            issue = get_issue(conn, ref)
            clipped = False
            if issue.status == "draft" and issue.items:  # else approve says what is wrong
                settings = self.settings_of(issue.newsletter_id)
                report = composed_for_preview(issue, settings, self.now()).preflight
                refusal = report.refusal(f"issue {issue.id}", force)
                if refusal:
                    raise StateError(f"{refusal}: it stays a draft")
                clipped = bool(report.errors)  # only a forcible one is left: it was forced
            return approve(conn, issue.id, self.now(), clip_forced=clipped)

    def transports(self) -> Callable[[], Transport]:
        """The connections of one send: several relays share one pool (weights, cool-downs)."""
        s = self.settings
        return open_transports(s.smtp_url, s.outbox, s.relay_cooldown, s.relay_failures)


def database_exists(url: str) -> bool:
    """False only for an SQLite file that is not there (connecting would create it)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return True
    return Path(parsed.database or "").is_file()


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
            shutil.copyfile(SUBSCRIBERS_README, folder / "README.md")
            made.append(folder)
    return made


@dataclass(frozen=True)
class InitResult:
    made: list[Path]  # folders laid out for a site that installed the package
    policies: list[Policy]
    key_made: bool  # the secret key, made now and kept in the database


def init_desk(desk: Desk, now: datetime) -> InitResult:
    """Create or upgrade the database, load the policy texts and make the secret key;
    harmless to run twice."""
    made = lay_out_folders(desk.settings)
    upgrade_database(desk.engine)
    with desk.engine.begin() as conn:
        policies = load_policy_folder(conn, desk.settings.privacy_dir, now)
        key_made = ensure_key(conn, now)
    desk.use_kept_key()
    return InitResult(made, policies, key_made)

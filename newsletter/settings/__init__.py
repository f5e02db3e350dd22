"""Settings from NEWSLETTER_* environment variables and an optional newsletter.toml.

The environment wins over the file. Every setting is declared once, in `table.SETTINGS`
(name, default, help, parser); `Settings` takes its defaults from there, the README
lists them all, and a test keeps it so. The values' parsers are `values`, the relays'
`relays`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.errors import ConfigError
from newsletter.settings.table import _FIELD, SETTINGS, declared
from newsletter.settings.values import PREFIX, SendAt


@dataclass(frozen=True)
class Settings:
    """Every setting, typed; the defaults are the declarations' (table.SETTINGS), parsed."""

    database_url: str = declared("database_url")
    smtp_url: str | None = declared("smtp_url")
    outbox: Path = declared("outbox")
    templates: Path = declared("templates")
    privacy_dir: Path = declared("privacy_dir")
    base_url: str = declared("base_url")
    secret_key: str | None = declared("secret_key")
    site_name: str = declared("site_name")
    language: str = declared("language")
    site_url: str = declared("site_url")
    support_url: str = declared("support_url")
    privacy_url: str = declared("privacy_url")
    from_addr: str = declared("from")
    reply_to: str | None = declared("reply_to")
    list_id: str = declared("list_id")
    postal_address: str = declared("postal_address")
    timezone: ZoneInfo = declared("timezone")
    send_at: SendAt = declared("send_at")
    remind_at: SendAt | None = declared("remind_at")
    misfire_grace: timedelta = declared("misfire_grace")
    editors: tuple[str, ...] = declared("editors")
    bounce_address: str | None = declared("bounce_address")
    ses_topic_arn: str | None = declared("ses_topic_arn")
    sns_host: str | None = declared("sns_host")
    mailgun_signing_key: str | None = declared("mailgun_signing_key")
    sendgrid_public_key: str | None = declared("sendgrid_public_key")
    postmark_webhook_auth: str | None = declared("postmark_webhook_auth")
    feed_url: str | None = declared("feed_url")
    feed_deadline: timedelta = declared("feed_deadline")
    feed_private_hosts: tuple[str, ...] = declared("feed_private_hosts")
    feed_image_sizes: int = declared("feed_image_sizes")
    confirm_ttl: timedelta = declared("confirm_ttl")
    confirm_mails_per_day: int = declared("confirm_mails_per_day")
    signups_per_hour: int = declared("signups_per_hour")
    bounce_limit: int = declared("bounce_limit")
    bounce_at_once: tuple[str, ...] = declared("bounce_at_once")
    failure_alert: float = declared("failure_alert")  # per cent of the audience
    soft_bounce_limit: int = declared("soft_bounce_limit")
    soft_bounce_window: timedelta = declared("soft_bounce_window")
    dkim_domain: str | None = declared("dkim_domain")
    dkim_selector: str | None = declared("dkim_selector")
    dkim_key: Path | None = declared("dkim_key")
    concurrency: int = declared("concurrency")
    rate: float = declared("rate")
    rate_per_hour: int = declared("rate_per_hour")
    pause_after: int = declared("pause_after")
    relay_cooldown: timedelta = declared("relay_cooldown")
    relay_failures: int = declared("relay_failures")
    worker_poll: timedelta = declared("worker_poll")
    clock: datetime | None = declared("clock")
    older_secret_keys: tuple[str, ...] = ()  # still verify links: kept by `secret rotate`
    # the newsletter these settings are seen from (publications.view puts its own name,
    # sender, schedule and templates over the desk's); the first one, unless told
    newsletter_id: int = 1

    def send_day(self, now: datetime) -> date:
        """The send day of the week `now` is in: today's, if today is one, else the next
        (the issue editors are working on)."""
        return self.send_at.day_on_or_after(now.astimezone(self.timezone).date())

    def next_send_day(self, now: datetime) -> date:
        """The day of the next send still to come: after today's send time, next week's."""
        local = now.astimezone(self.timezone)
        day = self.send_day(now)
        if day == local.date() and local.time() >= self.send_at.at:
            day += self.send_at.period
        return day

    def require_secret(self) -> str:
        """The signing key; refused when unset, because tokens signed without it are forgeable."""
        if not self.secret_key:
            raise ConfigError(
                PREFIX + "SECRET_KEY",
                "is not set and the database keeps no key; it signs unsubscribe and "
                "confirmation links: run `newsletter init`, which makes one and keeps it",
            )
        return self.secret_key

    def verify_keys(self) -> tuple[str, ...]:
        """The keys a link may be signed with: the current one first, then older ones."""
        return (self.require_secret(), *self.older_secret_keys)

    @property
    def privacy_link(self) -> str:
        return self.privacy_url or self.base_url.rstrip("/") + "/privacy"

    @property
    def sender_address(self) -> str:
        return parseaddr(self.from_addr)[1]


def load_settings(
    environ: Mapping[str, str] | None = None, toml_path: Path | None = None
) -> Settings:
    """Read every setting; a malformed one fails with its variable's name and the problem."""
    environ = os.environ if environ is None else environ
    if toml_path is None:
        toml_path = Path(environ.get(PREFIX + "CONFIG", "newsletter.toml"))
    from_file = _read_toml(toml_path)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.variable in environ:
            raw, where = environ[setting.variable], setting.variable
        elif setting.name in from_file:
            raw, where = str(from_file[setting.name]), f"{toml_path}: {setting.name}"
        else:
            continue
        try:
            values[_FIELD.get(setting.name, setting.name)] = setting.parse(raw.strip())
        except ValueError as exc:
            raise ConfigError(where, str(exc)) from None
    unknown = sorted(set(from_file) - {s.name for s in SETTINGS})
    if unknown:
        raise ConfigError(str(toml_path), f"unknown setting(s): {', '.join(unknown)}")
    return Settings(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None

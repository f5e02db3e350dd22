"""Settings from NEWSLETTER_* environment variables and an optional newsletter.toml.

The environment wins over the file. Every setting is declared once in SETTINGS
(name, default, help); the README lists them all and a test keeps it so.
"""

from __future__ import annotations

import email.policy
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ConfigError

PREFIX = "NEWSLETTER_"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SendAt:
    weekday: int  # Monday is 0, as in datetime.weekday()
    at: time

    def __str__(self) -> str:
        at = f"{self.at:%H:%M:%S}" if self.at.second else f"{self.at:%H:%M}"
        return f"{WEEKDAYS[self.weekday]} {at}"

    def day_on_or_after(self, day: date) -> date:
        """The first date on or after `day` that falls on this weekday."""
        return day + timedelta(days=(self.weekday - day.weekday()) % 7)


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///subscribers/newsletter.db"
    smtp_url: str | None = None
    outbox: Path = Path("outbox")
    templates: Path = Path("templates")
    privacy_dir: Path = Path("privacy")
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str | None = None
    site_name: str = "The Weekly"
    site_url: str = "https://example.org"
    support_url: str = "https://example.org/support"
    privacy_url: str = ""
    from_addr: str = "The Weekly <newsletter@example.org>"
    reply_to: str | None = None
    list_id: str = "weekly.example.org"
    postal_address: str = "The Weekly, 1 Example Street, 10000 Example City"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    send_at: SendAt = SendAt(4, time(9, 0))
    remind_at: SendAt | None = SendAt(3, time(15, 0))
    misfire_grace: timedelta = timedelta(hours=6)
    editors: tuple[str, ...] = ()
    bounce_address: str | None = None
    feed_url: str | None = None
    feed_deadline: timedelta = timedelta(seconds=20)
    feed_private_hosts: tuple[str, ...] = ()
    confirm_ttl: timedelta = timedelta(days=7)
    confirm_mails_per_day: int = 3
    signups_per_hour: int = 20
    bounce_limit: int = 2
    bounce_at_once: tuple[str, ...] = (
        "5.1.0",
        "5.1.1",
        "5.1.2",
        "5.1.3",
        "5.1.6",
        "5.1.10",
        "5.2.1",
    )
    soft_bounce_limit: int = 5
    soft_bounce_window: timedelta = timedelta(days=30)
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key: Path | None = None
    concurrency: int = 4
    rate: float = 0.0
    rate_per_hour: int = 0
    pause_after: int = 10
    relay_cooldown: timedelta = timedelta(minutes=5)
    relay_failures: int = 3
    worker_poll: timedelta = timedelta(seconds=5)
    clock: datetime | None = None
    older_secret_keys: tuple[str, ...] = ()  # still verify links: kept by `secret rotate`

    def send_day(self, now: datetime) -> date:
        """The send day of the week `now` is in: today's, if today is one, else the next
        (the issue editors are working on)."""
        return self.send_at.day_on_or_after(now.astimezone(self.timezone).date())

    def next_send_day(self, now: datetime) -> date:
        """The day of the next send still to come: after today's send time, next week's."""
        local = now.astimezone(self.timezone)
        day = self.send_day(now)
        if day == local.date() and local.time() >= self.send_at.at:
            day += timedelta(days=7)
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


def _text(value: str) -> str:
    return value


def _optional(value: str) -> str | None:
    return value or None


def _path(value: str) -> Path:
    return Path(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(value: str) -> str:
    """A value that reaches a header or a page: a CR or LF in it would add a header."""
    if _CONTROL.search(value):
        raise ValueError("must be one line, without control characters (CR, LF, tab)")
    return value


_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+$")


def _list_id(value: str) -> str:
    if not _DOT_ATOM.match(value):
        raise ValueError(f"{value!r} is not a dotted identifier like weekly.example.org (RFC 2919)")
    return value


def _url(value: str) -> str:
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must be an address without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// address with a host")
    return value.rstrip("/")


def _smtp_url(value: str) -> str | None:
    if not value:
        return None
    for one in value.split(","):
        one = one.split("?")[0]
        parts = urlsplit(one.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must look like smtp://user:pass@host:port or smtps://host:port")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from None
    parse_relays(value)  # the relays' options: weight, max_connections, rate
    return value


def _address(value: str) -> str:
    _name, addr = parseaddr(value)
    if "@" not in addr or _CONTROL.search(value):
        raise ValueError("must be an email address, optionally with a name: Name <addr@host>")
    parsed = email.policy.default.header_factory("From", value)
    if parsed.defects or len(parsed.addresses) != 1 or parsed.groups[0].display_name:
        raise ValueError(
            "must be one mailbox: Name <addr@host> (quote a name with : , ; or @ in it)"
        )
    return value


def _optional_address(value: str) -> str | None:
    return _address(value) if value else None


def _zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Amsterdam)") from None


_SEND_AT = re.compile(r"^\s*([a-z]{3})[a-z]*\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.IGNORECASE)


def parse_send_at(value: str) -> SendAt:
    """'fri 09:00' (a weekday, any spelling that starts with its three letters, and a
    wall-clock time; seconds are allowed: 'friday 09:00:30')."""
    match = _SEND_AT.match(value)
    if not match or match.group(1).lower() not in WEEKDAYS:
        raise ValueError(f"{value!r} is not a weekday and a time, e.g. 'fri 09:00'")
    hour, minute, second = (int(g or 0) for g in match.group(2, 3, 4))
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{value!r} has no such time of day")
    return SendAt(WEEKDAYS.index(match.group(1).lower()), time(hour, minute, second))


def _optional_send_at(value: str) -> SendAt | None:
    return None if value.lower() in ("", "off", "none") else parse_send_at(value)


def _addresses(value: str) -> tuple[str, ...]:
    return tuple(_address(one.strip()) for one in value.split(",") if one.strip())


_STATUS_CODE = re.compile(r"^[45]\.\d{1,3}\.\d{1,3}$")


def _status_codes(value: str) -> tuple[str, ...]:
    codes = tuple(one.strip() for one in value.split(",") if one.strip())
    for code in codes:
        if not _STATUS_CODE.match(code):
            raise ValueError(f"{code!r} is not an enhanced status code like 5.1.1")
    return codes


_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


def _hosts(value: str) -> tuple[str, ...]:
    hosts = tuple(one.strip().lower().strip("[]") for one in value.split(",") if one.strip())
    for host in hosts:
        if not _HOST.match(host):
            raise ValueError(f"{host!r} is not a host name or an IP address")
    return hosts


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _rate(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"must be 0 (no cap) or more, got {value!r}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 (no cap) or more, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be a whole number, 1 or more, got {value!r}")
    return number


KEY_CHARACTERS, KEY_DISTINCT = 32, 16
MAKE_A_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _secret(value: str) -> str | None:
    """A key a guess cannot find: 32 characters or more, not a word or a repeated one.
    (A short or dictionary key is found from one's own confirmation link in a moment,
    and then any reader's links can be forged.)"""
    if not value:
        return None
    if len(value) < KEY_CHARACTERS or len(set(value)) < KEY_DISTINCT:
        raise ValueError(
            f"is too weak to sign readers' links ({len(value)} characters, {len(set(value))} "
            f"different): use {KEY_CHARACTERS} random characters or more ({MAKE_A_KEY}), or "
            "unset it and let `newsletter init` make and keep one"
        )
    return value


def _optional_moment(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise ValueError(
            f"{value!r} is not a time with its offset, e.g. 2026-12-04T09:00:00+00:00"
        ) from None
    return moment


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(value: str) -> timedelta:
    match = _DURATION.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration like 30m, 6h or 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


@dataclass(frozen=True)
class Setting:
    name: str  # the field of Settings; the variable is NEWSLETTER_ + name.upper()
    default: str
    help: str
    parse: Callable[[str], Any] = _text

    @property
    def variable(self) -> str:
        return PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "sqlite:///subscribers/newsletter.db",
        "SQLAlchemy URL; postgresql+psycopg://… to scale out",
    ),
    Setting(
        "smtp_url",
        "",
        "smtp://user:pass@host:port (STARTTLS when offered) or smtps://…; several, "
        "comma-separated, each with optional ?weight=N&max_connections=N&rate=N: "
        "connections spread by weight; unset: write .eml files to the outbox",
        _smtp_url,
    ),
    Setting("outbox", "outbox", "folder for the embedded transport", _path),
    Setting("templates", "templates", "email templates folder", _path),
    Setting("privacy_dir", "privacy", "folder of published privacy policy texts", _path),
    Setting(
        "base_url",
        "http://127.0.0.1:8000",
        "public address of this app, for links in mail (https in production)",
        _url,
    ),
    Setting(
        "secret_key",
        "",
        "signs unsubscribe and confirmation links and sessions; unset: the key "
        "`newsletter init` made and the database keeps (set, it overrides that key; 32 "
        "random characters or more)",
        _secret,
    ),
    Setting("site_name", "The Weekly", "the newsletter's name in the masthead and From", _one_line),
    Setting("site_url", "https://example.org", "the news site the articles live on", _url),
    Setting(
        "feed_url",
        "",
        "the site's RSS or Atom feed (a URL or a file), read by the desk's import button",
        _optional,
    ),
    Setting(
        "feed_deadline",
        "20s",
        "how long fetching a feed may take in all, redirects included, before it is given up",
        parse_duration,
    ),
    Setting(
        "feed_private_hosts",
        "",
        "hosts a feed may be fetched from although they are on a loopback, private or "
        "link-local address (the site's own, inside the newsroom's network), comma-separated; "
        "unset: public addresses only",
        _hosts,
    ),
    Setting(
        "support_url",
        "https://example.org/support",
        "where the support appeal's once / monthly / annual links go",
        _url,
    ),
    Setting("privacy_url", "", "the privacy policy page; unset: BASE_URL/privacy", _text),
    Setting("from", "The Weekly <newsletter@example.org>", "From header", _address),
    Setting("reply_to", "", "Reply-To header; unset: none", _optional_address),
    Setting("list_id", "weekly.example.org", "List-Id header (a dotted identifier)", _list_id),
    Setting(
        "postal_address",
        "The Weekly, 1 Example Street, 10000 Example City",
        "the postal address printed in every footer",
        _one_line,
    ),
    Setting("timezone", "UTC", "IANA time zone of the Friday send", _zone),
    Setting("send_at", "fri 09:00", "weekday and wall-clock time of the send", parse_send_at),
    Setting(
        "remind_at",
        "thu 15:00",
        "when editors are reminded that the coming issue is not approved yet; off: never",
        _optional_send_at,
    ),
    Setting(
        "misfire_grace",
        "6h",
        "how late a missed send may still go out (the scheduler was down); later, editors "
        "are alerted instead",
        parse_duration,
    ),
    Setting(
        "editors",
        "",
        "comma-separated addresses that get the scheduler's alerts and reminders",
        _addresses,
    ),
    Setting(
        "bounce_address", "", "envelope sender base; unset: the From address", _optional_address
    ),
    Setting("confirm_ttl", "7d", "how long a confirmation link works", parse_duration),
    Setting(
        "confirm_mails_per_day",
        "3",
        "confirmation mails one address gets at most in a day",
        _positive_int,
    ),
    Setting("signups_per_hour", "20", "sign-ups one IP address may make in an hour", _positive_int),
    Setting(
        "bounce_limit",
        "2",
        "permanent delivery failures after which a reader is marked bounced",
        _positive_int,
    ),
    Setting(
        "bounce_at_once",
        "5.1.0,5.1.1,5.1.2,5.1.3,5.1.6,5.1.10,5.2.1",
        "status codes of bounce mail (the address does not exist) that mark a reader bounced "
        "at the first one, not after BOUNCE_LIMIT",
        _status_codes,
    ),
    Setting(
        "soft_bounce_limit",
        "5",
        "temporary failures (4.x.x) in bounce mail, within SOFT_BOUNCE_WINDOW, after which a "
        "reader is marked bounced",
        _positive_int,
    ),
    Setting("soft_bounce_window", "30d", "the window SOFT_BOUNCE_LIMIT counts in", parse_duration),
    Setting("dkim_domain", "", "DKIM signing domain (d=); unset: no signing", _optional),
    Setting("dkim_selector", "", "DKIM selector (s=)", _optional),
    Setting(
        "dkim_key", "", "path to the DKIM private key, PEM; read once per send", _optional_path
    ),
    Setting("concurrency", "4", "SMTP connections a send keeps open in parallel", _positive_int),
    Setting("rate", "0", "messages per second at most; 0 for no cap", _rate),
    Setting("rate_per_hour", "0", "messages per hour at most; 0 for no cap", _count),
    Setting(
        "pause_after",
        "10",
        "relay failures in a row (refused, 421, login) that pause a send; with several "
        "relays, only once every relay is out",
        _positive_int,
    ),
    Setting(
        "relay_failures",
        "3",
        "with several relays: failures in a row (refused, 421, login) that take one relay out "
        "for RELAY_COOLDOWN; its connections move to the others",
        _positive_int,
    ),
    Setting("relay_cooldown", "5m", "how long a failing relay stays out of a send", parse_duration),
    Setting(
        "worker_poll",
        "5s",
        "how often `newsletter worker` looks for sends to join",
        parse_duration,
    ),
    Setting(
        "clock",
        "",
        "a time with its offset (2026-12-04T09:00:00+00:00) at which each command's clock "
        "starts and runs on from, to rehearse a send day on any day (the long-lived "
        "`schedule` refuses it); unset: the system clock",
        _optional_moment,
    ),
)

_FIELD = {"from": "from_addr"}


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


def setting_names() -> list[str]:
    return [s.variable for s in SETTINGS]


def settings_table() -> str:
    """The README's table of settings (python -m newsletter.settings)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "unset"
        rows.append(f"| `{s.variable}` | {default} | {s.help} |")
    rows.append(
        f"| `{PREFIX}CONFIG` | `newsletter.toml` | the optional settings file "
        "(keys are the names above without the prefix, lower case) |"
    )
    return "\n".join(rows)


# The relays NEWSLETTER_SMTP_URL names, as settings: parsed and checked here, used by
# newsletter.transport (one relay: smtp; several, or options: pool).


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> RelayAddress:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("NEWSLETTER_SMTP_URL", f"{url!r} is not smtp://host:port")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


OPTIONS = ("weight", "max_connections", "rate")


@dataclass(frozen=True)
class RelaySpec:
    address: RelayAddress
    weight: int = 1
    max_connections: int = 0  # 0: no cap
    rate: float = 0.0  # messages per second, 0: no cap

    @property
    def name(self) -> str:
        return f"{self.address.host}:{self.address.port}"


def parse_relays(value: str) -> list[RelaySpec]:
    """A comma-separated list of relay URLs with their options; ValueError names the bad part."""
    specs = []
    for url in (one.strip() for one in value.split(",")):
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        unknown = sorted(set(query) - set(OPTIONS))
        if unknown:
            known = ", ".join(OPTIONS)
            raise ValueError(f"{url!r}: unknown option(s) {', '.join(unknown)}; known: {known}")
        try:
            weight, cap = int(query.get("weight", "1")), int(query.get("max_connections", "0"))
            rate = float(query.get("rate", "0"))
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        if weight < 1 or cap < 0 or rate < 0:
            raise ValueError(f"{url!r}: weight is 1 or more; max_connections, rate 0 or more")
        specs.append(RelaySpec(RelayAddress.parse(url.split("?")[0]), weight, cap, rate))
    return specs


def relay_specs(smtp_url: str) -> list[RelaySpec]:
    try:
        return parse_relays(smtp_url)
    except ValueError as exc:
        raise ConfigError("NEWSLETTER_SMTP_URL", str(exc)) from None


if __name__ == "__main__":
    print(settings_table())

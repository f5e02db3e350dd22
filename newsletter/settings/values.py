"""The values settings take, each parsed from its text and checked: a problem is a
ValueError saying what is wrong, and load_settings names the variable or the file."""

from __future__ import annotations

import email.policy
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.settings.relays import parse_relays

PREFIX = "NEWSLETTER_"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class SendAt:
    weekday: int | None  # Monday is 0, as in datetime.weekday(); None: every day
    at: time

    def __str__(self) -> str:
        at = f"{self.at:%H:%M:%S}" if self.at.second else f"{self.at:%H:%M}"
        return f"{'daily' if self.weekday is None else WEEKDAYS[self.weekday]} {at}"

    @property
    def period(self) -> timedelta:
        """From one send day to the next."""
        return timedelta(days=1 if self.weekday is None else 7)

    def is_send_day(self, day: date) -> bool:
        return self.weekday is None or day.weekday() == self.weekday

    def day_on_or_after(self, day: date) -> date:
        """The first send day on or after `day`."""
        if self.weekday is None:
            return day
        return day + timedelta(days=(self.weekday - day.weekday()) % 7)


def text(value: str) -> str:
    return value


def optional(value: str) -> str | None:
    return value or None


def path(value: str) -> Path:
    return Path(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(value: str) -> str:
    """A value that reaches a header or a page: a CR or LF in it would add a header."""
    if _CONTROL.search(value):
        raise ValueError("must be one line, without control characters (CR, LF, tab)")
    return value


_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+$")


def list_id(value: str) -> str:
    if not _DOT_ATOM.match(value):
        raise ValueError(f"{value!r} is not a dotted identifier like weekly.example.org (RFC 2919)")
    return value


def url(value: str) -> str:
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must be an address without spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// address with a host")
    return value.rstrip("/")


def smtp_url(value: str) -> str | None:
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


def address(value: str) -> str:
    _name, addr = parseaddr(value)
    if "@" not in addr or _CONTROL.search(value):
        raise ValueError("must be an email address, optionally with a name: Name <addr@host>")
    parsed = email.policy.default.header_factory("From", value)
    if parsed.defects or len(parsed.addresses) != 1 or parsed.groups[0].display_name:
        raise ValueError(
            "must be one mailbox: Name <addr@host> (quote a name with : , ; or @ in it)"
        )
    return value


def optional_address(value: str) -> str | None:
    return address(value) if value else None


def zone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Amsterdam)") from None


_SEND_AT = re.compile(r"^\s*([a-z]+)\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$", re.IGNORECASE)


def parse_send_at(value: str) -> SendAt:
    """'fri 09:00' (a weekday, any spelling that starts with its three letters, and a
    wall-clock time; seconds are allowed: 'friday 09:00:30'), or 'daily 07:00'."""
    match = _SEND_AT.match(value)
    word = match.group(1).lower() if match else ""
    if not match or (word[:3] not in WEEKDAYS and word != "daily"):
        raise ValueError(f"{value!r} is not a weekday (or daily) and a time, e.g. 'fri 09:00'")
    hour, minute, second = (int(g or 0) for g in match.group(2, 3, 4))
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{value!r} has no such time of day")
    weekday = None if word == "daily" else WEEKDAYS.index(word[:3])
    return SendAt(weekday, time(hour, minute, second))


def parse_schedule(value: str) -> tuple[SendAt, ZoneInfo | None]:
    """A newsletter's schedule: 'fri 09:00 Europe/Moscow' or 'daily 07:00' (no zone: the
    desk's NEWSLETTER_TIMEZONE)."""
    words = value.split()
    if len(words) == 3:
        return parse_send_at(" ".join(words[:2])), zone(words[2])
    return parse_send_at(value), None


def optional_send_at(value: str) -> SendAt | None:
    return None if value.lower() in ("", "off", "none") else parse_send_at(value)


def addresses(value: str) -> tuple[str, ...]:
    return tuple(address(one.strip()) for one in value.split(",") if one.strip())


_STATUS_CODE = re.compile(r"^[45]\.\d{1,3}\.\d{1,3}$")


def status_codes(value: str) -> tuple[str, ...]:
    codes = tuple(one.strip() for one in value.split(",") if one.strip())
    for code in codes:
        if not _STATUS_CODE.match(code):
            raise ValueError(f"{code!r} is not an enhanced status code like 5.1.1")
    return codes


_HOST = re.compile(r"^[A-Za-z0-9._:-]+$")


def hosts(value: str) -> tuple[str, ...]:
    hosts = tuple(one.strip().lower().strip("[]") for one in value.split(",") if one.strip())
    for host in hosts:
        if not _HOST.match(host):
            raise ValueError(f"{host!r} is not a host name or an IP address")
    return hosts


def optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def rate(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError(f"must be 0 (no cap) or more, got {value!r}")
    return number


def count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 (no cap) or more, got {value!r}")
    return number


def percent(value: str) -> float:
    number = float(value.strip().removesuffix("%").strip())
    if not 0 <= number <= 100:
        raise ValueError(f"must be a share from 0 to 100 %, got {value!r}")
    return number


def how_many(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be 0 (none) or more, got {value!r}")
    return number


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be a whole number, 1 or more, got {value!r}")
    return number


KEY_CHARACTERS, KEY_DISTINCT = 32, 16
MAKE_A_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret(value: str) -> str | None:
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


def optional_moment(value: str) -> datetime | None:
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

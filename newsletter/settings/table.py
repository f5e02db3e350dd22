"""Every setting declared once: its name, its default (as text, parsed like any value),
its help, and the parser that checks it. Settings takes its defaults from here, the
README's table is printed from here (python -m newsletter.settings)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from newsletter.language import parse_language
from newsletter.settings import values as v
from newsletter.settings.values import PREFIX


@dataclass(frozen=True)
class Setting:
    name: str  # the field of Settings; the variable is NEWSLETTER_ + name.upper()
    default: str
    help: str
    parse: Callable[[str], Any] = v.text

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
        v.smtp_url,
    ),
    Setting("outbox", "outbox", "folder for the embedded transport", v.path),
    Setting("templates", "templates", "email templates folder", v.path),
    Setting("privacy_dir", "privacy", "folder of published privacy policy texts", v.path),
    Setting(
        "base_url",
        "http://127.0.0.1:8000",
        "public address of this app, for links in mail (https in production)",
        v.url,
    ),
    Setting(
        "secret_key",
        "",
        "signs unsubscribe and confirmation links and sessions; unset: the key "
        "`newsletter init` made and the database keeps (set, it overrides that key; 32 "
        "random characters or more)",
        v.secret,
    ),
    Setting(
        "site_name", "The Weekly", "the newsletter's name in the masthead and From", v.one_line
    ),
    Setting(
        "language",
        "en",
        "the language of every mail and reader page, a BCP 47 tag: its fixed words (the "
        "catalogue in newsletter/locale) and its dates (en: Friday, December 4, 2026; "
        "en-GB: Friday, 4 December 2026; ru: пятница, 4 декабря 2026 г.); shipped: en, ru",
        parse_language,
    ),
    Setting("site_url", "https://example.org", "the news site the articles live on", v.url),
    Setting(
        "feed_url",
        "",
        "the site's RSS or Atom feed (a URL or a file), read by the desk's import button",
        v.optional,
    ),
    Setting(
        "feed_deadline",
        "20s",
        "how long fetching a feed may take in all, redirects included, before it is given up",
        v.parse_duration,
    ),
    Setting(
        "feed_private_hosts",
        "",
        "hosts a feed may be fetched from although they are on a loopback, private or "
        "link-local address (the site's own, inside the newsroom's network), comma-separated; "
        "unset: public addresses only",
        v.hosts,
    ),
    Setting(
        "feed_image_sizes",
        "40",
        "how many of an import's images whose size the feed does not give are measured "
        "(their first 64 KB fetched, as a feed is), so the mail shows each at its own size "
        "and never stretched; 0: none",
        v.how_many,
    ),
    Setting(
        "support_url",
        "https://example.org/support",
        "where the support appeal's once / monthly / annual links go",
        v.url,
    ),
    Setting("privacy_url", "", "the privacy policy page; unset: BASE_URL/privacy", v.text),
    Setting("from", "The Weekly <newsletter@example.org>", "From header", v.address),
    Setting("reply_to", "", "Reply-To header; unset: none", v.optional_address),
    Setting("list_id", "weekly.example.org", "List-Id header (a dotted identifier)", v.list_id),
    Setting(
        "postal_address",
        "The Weekly, 1 Example Street, 10000 Example City",
        "the postal address printed in every footer",
        v.one_line,
    ),
    Setting("timezone", "UTC", "IANA time zone of the Friday send", v.zone),
    Setting("send_at", "fri 09:00", "weekday and wall-clock time of the send", v.parse_send_at),
    Setting(
        "remind_at",
        "thu 15:00",
        "when editors are reminded that the coming issue is not approved yet; off: never",
        v.optional_send_at,
    ),
    Setting(
        "misfire_grace",
        "6h",
        "how late a missed send may still go out (the scheduler was down); later, editors "
        "are alerted instead",
        v.parse_duration,
    ),
    Setting(
        "editors",
        "",
        "comma-separated addresses that get the scheduler's alerts and reminders",
        v.addresses,
    ),
    Setting(
        "bounce_address", "", "envelope sender base; unset: the From address", v.optional_address
    ),
    Setting(
        "ses_topic_arn",
        "",
        "the SNS topic (arn:aws:sns:…) that carries SES's notifications to POST /hooks/ses; "
        "each message's signature is checked against SNS's certificate; unset: the hook does "
        "not exist",
        v.optional,
    ),
    Setting(
        "sns_host",
        "",
        "the host SNS's signing certificates and subscription links must come from; unset: "
        "sns.<region>.amazonaws.com",
        v.optional,
    ),
    Setting(
        "mailgun_signing_key",
        "",
        "Mailgun's webhook signing key: POST /hooks/mailgun takes its bounce, complaint and "
        "delivery events, each signed; unset: the hook does not exist",
        v.optional,
    ),
    Setting(
        "sendgrid_public_key",
        "",
        "SendGrid's event webhook verification key (base64, as SendGrid shows it): POST "
        "/hooks/sendgrid takes its signed events; unset: the hook does not exist",
        v.optional,
    ),
    Setting(
        "postmark_webhook_auth",
        "",
        "user:password that Postmark's webhook sends (basic authentication) to POST "
        "/hooks/postmark; unset: the hook does not exist",
        v.optional,
    ),
    Setting("confirm_ttl", "7d", "how long a confirmation link works", v.parse_duration),
    Setting(
        "confirm_mails_per_day",
        "3",
        "confirmation mails one address gets at most in a day",
        v.positive_int,
    ),
    Setting(
        "signups_per_hour", "20", "sign-ups one IP address may make in an hour", v.positive_int
    ),
    Setting(
        "bounce_limit",
        "2",
        "permanent delivery failures after which a reader is marked bounced",
        v.positive_int,
    ),
    Setting(
        "bounce_at_once",
        "5.1.0,5.1.1,5.1.2,5.1.3,5.1.6,5.1.10,5.2.1",
        "status codes of bounce mail (the address does not exist) that mark a reader bounced "
        "at the first one, not after BOUNCE_LIMIT",
        v.status_codes,
    ),
    Setting(
        "failure_alert",
        "5%",
        'a send in which more of the audience than this failed ends as "finished with '
        'failures": exit 1 and the editors alerted; 0: never',
        v.percent,
    ),
    Setting(
        "soft_bounce_limit",
        "5",
        "temporary failures (4.x.x) in bounce mail, within SOFT_BOUNCE_WINDOW, after which a "
        "reader is marked bounced",
        v.positive_int,
    ),
    Setting(
        "soft_bounce_window", "30d", "the window SOFT_BOUNCE_LIMIT counts in", v.parse_duration
    ),
    Setting("dkim_domain", "", "DKIM signing domain (d=); unset: no signing", v.optional),
    Setting("dkim_selector", "", "DKIM selector (s=)", v.optional),
    Setting(
        "dkim_key", "", "path to the DKIM private key, PEM; read once per send", v.optional_path
    ),
    Setting("concurrency", "4", "SMTP connections a send keeps open in parallel", v.positive_int),
    Setting("rate", "0", "messages per second at most; 0 for no cap", v.rate),
    Setting("rate_per_hour", "0", "messages per hour at most; 0 for no cap", v.count),
    Setting(
        "pause_after",
        "10",
        "relay failures in a row (refused, 421, login) that pause a send; with several "
        "relays, only once every relay is out",
        v.positive_int,
    ),
    Setting(
        "relay_failures",
        "3",
        "with several relays: failures in a row (refused, 421, login) that take one relay out "
        "for RELAY_COOLDOWN; its connections move to the others",
        v.positive_int,
    ),
    Setting(
        "relay_cooldown", "5m", "how long a failing relay stays out of a send", v.parse_duration
    ),
    Setting(
        "worker_poll",
        "5s",
        "how often `newsletter worker` looks for sends to join",
        v.parse_duration,
    ),
    Setting(
        "clock",
        "",
        "a time with its offset (2026-12-04T09:00:00+00:00) at which each command's clock "
        "starts and runs on from, to rehearse a send day on any day (the long-lived "
        "`schedule` refuses it); unset: the system clock",
        v.optional_moment,
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}
_FIELD = {"from": "from_addr"}  # the one setting whose field is not its name


def declared(name: str) -> Any:
    """A setting's default, parsed from its one declaration."""
    setting = BY_NAME[name]
    return setting.parse(setting.default)


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


_SECRET_WORDS = ("secret", "key", "auth", "password", "token")


def shown_value(name: str, value: Any) -> str:
    """A setting's value for a person to read: secrets only as "set", passwords in URLs
    hidden, lists joined."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        units = ((86400, "days"), (3600, "h"), (60, "min"), (1, "s"))
        return (
            next(f"{seconds // n} {u}" for n, u in units if seconds % n == 0 and seconds >= n)
            if seconds
            else "0 s"
        )
    if isinstance(value, tuple | list | frozenset | set):
        text = ", ".join(str(item) for item in value)
    else:
        text = "" if value is None else str(value)
    if any(word in name for word in _SECRET_WORDS) and "topic" not in name:
        return "set (hidden)" if text else ""
    return re.sub(r"[a-z][a-z0-9+.-]*://[^\s,]+", lambda m: _masked_url(m.group(0)), text)


_SECRET_QUERY = re.compile(r"pass|pwd|token|key|secret|auth|sig|credential", re.IGNORECASE)


def _masked_url(url: str) -> str:
    """A URL without what would let someone in: the whole user part (an API key is often
    the user name, and a password may hold an "@"), and secret-looking query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse: hidden)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "•••@" + netloc.rsplit("@", 1)[1]
    pairs = [pair.partition("=") for pair in parts.query.split("&") if pair]
    query = "&".join(
        f"{k}={'•••' if _SECRET_QUERY.search(k) else v}" if eq else k for k, eq, v in pairs
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def described(settings: Any) -> list[tuple[str, str, str, str]]:
    """(variable, value as shown, default, help) for every setting, as the desk lists them."""
    return [
        (
            s.variable,
            shown_value(s.name, getattr(settings, _FIELD.get(s.name, s.name))),
            s.default,
            s.help,
        )
        for s in SETTINGS
    ]

"""The desk's newsletters: each has its readers, issues, schedule and sender. Every
desk has one, made with its database; editors may add more (a daily briefing beside
the weekly digest).

A newsletter's unset values follow the desk's settings, so a desk with one newsletter
is configured as it always was; `view` is the desk's settings as one newsletter sees
them, and every stage that takes settings works for that newsletter when given it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter.errors import InputError, NotFound, StateError
from newsletter.settings import Settings
from newsletter.settings import values as v
from newsletter.store import tables as db

FIRST = db.FIRST_NEWSLETTER  # every desk's, made with its database
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
WORDING_MAX = 2000


@dataclass(frozen=True)
class Newsletter:
    id: int
    slug: str
    name: str | None  # None: NEWSLETTER_SITE_NAME
    from_addr: str | None  # None: NEWSLETTER_FROM
    list_id: str | None  # None: NEWSLETTER_LIST_ID
    schedule: str | None  # None: NEWSLETTER_SEND_AT in NEWSLETTER_TIMEZONE
    templates: str | None  # None: NEWSLETTER_TEMPLATES
    appeal: bool  # new issues carry the support appeal
    wording: str | None  # the sign-up's consent words; None: the privacy policy's
    created_at: datetime


def check_value(name: str, value: Any) -> Any:
    """One field's value as given on the command line or in the desk, checked; the error
    names the field."""
    if value is None or name == "appeal":
        return value
    text = str(value).strip()
    if not text and name != "slug":
        return None  # unset: the desk's setting again
    try:
        if name == "slug":
            if not SLUG.match(text):
                raise ValueError(
                    f"{text!r} is not a slug: lower-case letters, digits and hyphens, "
                    "at most 40, e.g. daily"
                )
        elif name == "schedule":
            v.parse_schedule(text)
        elif name == "from_addr":
            v.address(text)
        elif name == "list_id":
            v.list_id(text)
        elif name == "name":
            v.one_line(text)
            if not text or len(text) > 300:
                raise ValueError("must be 1 to 300 characters")
        elif name == "templates":
            if not (Path(text) / "issue.html").is_file():
                raise ValueError(f"{text!r} is not a templates folder (it has no issue.html)")
        elif name == "wording":
            text = " ".join(text.split())
            if not text or len(text) > WORDING_MAX:
                raise ValueError(f"must be 1 to {WORDING_MAX} characters")
    except ValueError as exc:
        field = {"from_addr": "from", "list_id": "list-id"}.get(name, name)
        raise InputError(f"--{field}: {exc}") from None
    return text or None


def list_newsletters(conn: sa.Connection) -> list[Newsletter]:
    rows = conn.execute(sa.select(db.newsletters).order_by(db.newsletters.c.id)).mappings()
    return [Newsletter(**row) for row in rows]


def get_newsletter(conn: sa.Connection, newsletter_id: int) -> Newsletter:
    row = (
        conn.execute(sa.select(db.newsletters).where(db.newsletters.c.id == newsletter_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no newsletter {newsletter_id}")
    return Newsletter(**row)


def choose(conn: sa.Connection, slug: str | None) -> Newsletter:
    """The newsletter a command or a page means: the one named, or the only one. With
    several and none named, the error lists them."""
    found = list_newsletters(conn)
    if slug is not None:
        for one in found:
            if one.slug == slug.strip().lower():
                return one
        raise NotFound(f"--newsletter: no newsletter {slug!r} (there are: {_slugs(found)})")
    if len(found) == 1:
        return found[0]
    raise InputError(f"--newsletter: this desk has several newsletters: name one ({_slugs(found)})")


def _slugs(found: list[Newsletter]) -> str:
    return ", ".join(one.slug for one in found)


def add_newsletter(conn: sa.Connection, slug: str, now: datetime, **values: Any) -> Newsletter:
    slug = check_value("slug", slug)
    if conn.execute(sa.select(db.newsletters.c.id).where(db.newsletters.c.slug == slug)).first():
        raise StateError(f"there is a newsletter {slug!r} already")
    checked = {name: check_value(name, value) for name, value in values.items()}
    if checked.get("appeal") is None:
        checked.pop("appeal", None)
    inserted = conn.execute(
        db.newsletters.insert().values(slug=slug, created_at=now, **checked)
    ).inserted_primary_key
    assert inserted is not None
    return get_newsletter(conn, int(inserted[0]))


def change_newsletter(conn: sa.Connection, newsletter: Newsletter, **values: Any) -> Newsletter:
    """Set the fields given; an empty text unsets one (it follows the desk's setting)."""
    checked = {name: check_value(name, value) for name, value in values.items()}
    if "slug" in checked:
        if checked["slug"] is None:
            raise InputError("--slug: must not be empty")
        other = conn.execute(
            sa.select(db.newsletters.c.id).where(
                db.newsletters.c.slug == checked["slug"], db.newsletters.c.id != newsletter.id
            )
        ).first()
        if other is not None:
            raise StateError(f"there is a newsletter {checked['slug']!r} already")
    if checked.get("appeal", False) is None:
        checked.pop("appeal")
    if checked:
        conn.execute(
            db.newsletters.update().where(db.newsletters.c.id == newsletter.id).values(**checked)
        )
    return get_newsletter(conn, newsletter.id)


def view(settings: Settings, newsletter: Newsletter) -> Settings:
    """The desk's settings as this newsletter sees them: its own values over the desk's."""
    changes: dict[str, Any] = {"newsletter_id": newsletter.id}
    if newsletter.name:
        changes["site_name"] = newsletter.name
    if newsletter.from_addr:
        changes["from_addr"] = newsletter.from_addr
    if newsletter.list_id:
        changes["list_id"] = newsletter.list_id
    if newsletter.templates:
        changes["templates"] = Path(newsletter.templates)
    if newsletter.schedule:
        send_at, zone = v.parse_schedule(newsletter.schedule)
        changes["send_at"] = send_at
        if zone is not None:
            changes["timezone"] = zone
        # its reminder: the day before its own send day, at NEWSLETTER_REMIND_AT's hour
        # (a daily one has none)
        remind = settings.remind_at
        changes["remind_at"] = (
            None
            if remind is None or send_at.weekday is None
            else v.SendAt((send_at.weekday - 1) % 7, remind.at)
        )
    return replace(settings, **changes)


def view_of(conn: sa.Connection, settings: Settings, newsletter_id: int) -> Settings:
    return view(settings, get_newsletter(conn, newsletter_id))


def of_issue(conn: sa.Connection, settings: Settings, issue_id: int) -> Settings:
    """The settings an issue is rendered and sent with: its newsletter's."""
    found = conn.execute(
        sa.select(db.issues.c.newsletter_id).where(db.issues.c.id == issue_id)
    ).scalar()
    return settings if found is None else view_of(conn, settings, int(found))


def of_reader(conn: sa.Connection, settings: Settings, subscriber_id: int) -> Settings:
    """The settings a reader's notices go out with: their subscription's newsletter's."""
    found = conn.execute(
        sa.select(db.subscribers.c.newsletter_id).where(db.subscribers.c.id == subscriber_id)
    ).scalar()
    return settings if found is None else view_of(conn, settings, int(found))


def shown_name(settings: Settings, newsletter: Newsletter) -> str:
    return newsletter.name or settings.site_name

"""`newsletter newsletters`: list, add and change the desk's newsletters."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from newsletter.app import Desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.publications import (
    Newsletter,
    add_newsletter,
    change_newsletter,
    choose,
    list_newsletters,
    view,
)

TAKEN_UP = "a running scheduler (python send.py) takes this up within a minute"


@click.group("newsletters")
def group() -> None:
    """The desk's newsletters: each with its readers, issues, schedule and sender."""


def _fields(func: Any) -> Any:
    options = [
        click.option("--name", help="Its name (masthead, From); unset: NEWSLETTER_SITE_NAME."),
        click.option("--from", "from_addr", help="Its From header; unset: NEWSLETTER_FROM."),
        click.option("--list-id", help="Its List-Id; unset: NEWSLETTER_LIST_ID."),
        click.option(
            "--schedule",
            help="When it goes out: 'fri 09:00 Europe/Moscow', 'daily 07:00' (no zone: "
            "NEWSLETTER_TIMEZONE); unset: NEWSLETTER_SEND_AT.",
        ),
        click.option("--templates", help="Its templates folder; unset: NEWSLETTER_TEMPLATES."),
        click.option("--appeal/--no-appeal", default=None, help="Its new issues carry the appeal."),
        click.option("--wording", help="The sign-up's consent words; unset: the privacy policy's."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _lines(desk: Desk, newsletter: Newsletter) -> list[str]:
    seen = view(desk.settings, newsletter)
    return [
        f"{newsletter.id:>3}  {newsletter.slug:<16} {seen.site_name}  ({seen.send_at} "
        f"{seen.timezone.key}; from {seen.from_addr}; templates {seen.templates}; appeal "
        f"{'on' if newsletter.appeal else 'off'})"
    ]


def _document(desk: Desk, newsletter: Newsletter) -> dict[str, Any]:
    seen = view(desk.settings, newsletter)
    return {
        **asdict(newsletter),
        "shown": {
            "name": seen.site_name,
            "from": seen.from_addr,
            "list_id": seen.list_id,
            "send_at": str(seen.send_at),
            "timezone": seen.timezone.key,
            "templates": str(seen.templates),
        },
    }


@group.command("list")
@json_option
@pass_desk
def list_(desk: Desk, as_json: bool) -> None:
    """List the newsletters, with what each takes from the desk's settings.

    \b
    Example:
        newsletter newsletters list
    """
    with desk.engine.connect() as conn:
        found = list_newsletters(conn)
    emit(
        as_json,
        [_document(desk, one) for one in found],
        [line for one in found for line in _lines(desk, one)],
    )


@group.command("add")
@click.argument("slug")
@_fields
@json_option
@pass_desk
def add(desk: Desk, slug: str, as_json: bool, **values: Any) -> None:
    """Add a newsletter, with its own readers, issues and schedule.

    \b
    Example:
        newsletter newsletters add daily --name "The Daily Briefing" \\
            --from "The Daily <daily@example.org>" --schedule "daily 07:00 Europe/Moscow"
    """
    given = {k: v for k, v in values.items() if v is not None}
    with desk.engine.begin() as conn:
        made = add_newsletter(conn, slug, desk.now(), **given)
    emit(as_json, _document(desk, made), [*_lines(desk, made), TAKEN_UP])


@group.command("set")
@click.argument("slug")
@click.option("--slug", "new_slug", help="A new slug (its sign-up links change with it).")
@_fields
@json_option
@pass_desk
def set_(desk: Desk, slug: str, new_slug: str | None, as_json: bool, **values: Any) -> None:
    """Change a newsletter; an empty value ("") unsets a field, which then follows the
    desk's setting.

    \b
    Example:
        newsletter newsletters set main --slug weekly --schedule "fri 09:00 Europe/Moscow"
    """
    given = {k: v for k, v in values.items() if v is not None}
    if new_slug is not None:
        given["slug"] = new_slug
    with desk.engine.begin() as conn:
        changed = change_newsletter(conn, choose(conn, slug), **given)
    emit(as_json, _document(desk, changed), [*_lines(desk, changed), TAKEN_UP])

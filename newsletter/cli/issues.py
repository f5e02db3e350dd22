"""`newsletter issue …`: curating one week's issue."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from newsletter.app import Desk
from newsletter.cli.common import (
    emit,
    json_option,
    newsletter_option,
    newsletter_settings,
    pass_desk,
)
from newsletter.curation import issues as library
from newsletter.models import Issue
from newsletter.publications import choose, list_newsletters


@click.group("issue")
def group() -> None:
    """One issue per send day: create, pick and order articles, approve."""


def issue_document(issue: Issue) -> dict[str, Any]:
    document = asdict(issue)
    document["items"] = [
        {
            "position": item.position,
            "article_id": item.article.id,
            "url": item.article.url,
            "title": item.title,
            "summary": item.summary,
            "section": item.article.section,
            "title_override": item.title_override,
            "summary_override": item.summary_override,
            "image_url": item.article.image_url,
            "image_alt": item.image_alt if item.article.image_url else None,
            "alt_override": item.alt_override,
        }
        for item in issue.items
    ]
    return document


def issue_lines(issue: Issue) -> list[str]:
    lines = [
        f"issue {issue.id} for {issue.send_date:%A %Y-%m-%d}: {issue.status}",
        f"subject:   {issue.subject or '(none)'}",
        f"preheader: {issue.preheader or '(none)'}",
        f"appeal:    {'on' if issue.appeal else 'off'}",
        f"order:     {'by section' if issue.by_section else 'as picked'}",
    ]
    if issue.note:
        lines.append("note:      " + issue.note.replace("\n", "\n           "))
    for item in issue.items:
        section = f" [{item.article.section}]" if item.article.section else ""
        lines.append(f"{item.position:>3}. ({item.article.id}){section} {item.title}")
    if not issue.items:
        lines.append("no articles picked yet")
    return lines


def _show(as_json: bool, issue: Issue) -> None:
    emit(as_json, issue_document(issue), issue_lines(issue))


@group.command("new")
@click.option(
    "--date",
    "day",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The send day on or after this date. Default: the first send day from today on "
    "that has no issue yet.",
)
@newsletter_option
@json_option
@pass_desk
def new(desk: Desk, day: datetime | None, newsletter_slug: str | None, as_json: bool) -> None:
    """Create the issue for the next send day without one (or the send day on or after
    DATE); prints its id.

    \b
    Example:
        newsletter issue new
        newsletter issue new --date 2026-12-18
        newsletter issue new --newsletter daily
    """
    settings = newsletter_settings(desk, newsletter_slug)
    moment, send_at, newsletter_id = desk.now(), settings.send_at, settings.newsletter_id
    with desk.engine.begin() as conn:
        if day is not None:
            send_date = send_at.day_on_or_after(day.date())
        else:
            today = moment.astimezone(settings.timezone).date()
            send_date = library.first_free_send_day(conn, today, send_at, newsletter_id)
        issue = library.new_issue(conn, send_date, moment, newsletter_id)
    emit(as_json, issue_document(issue), [str(issue.id)])


@group.command("pick")
@click.argument("issue")
@click.argument("articles", nargs=-1, required=True)
@json_option
@pass_desk
def pick(desk: Desk, issue: str, articles: tuple[str, ...], as_json: bool) -> None:
    """Append articles (ids or urls) to an issue, in the order given.

    \b
    Example:
        newsletter issue pick 3 12 9 https://example.org/2026/11/27/budget
    """
    with desk.engine.begin() as conn:
        changed = library.pick(conn, issue, list(articles), desk.now())
    _show(as_json, changed)  # after the commit: what is printed is what was stored


@group.command("unpick")
@click.argument("issue")
@click.argument("articles", nargs=-1, required=True)
@json_option
@pass_desk
def unpick(desk: Desk, issue: str, articles: tuple[str, ...], as_json: bool) -> None:
    """Take articles out of an issue.

    \b
    Example:
        newsletter issue unpick 3 9
    """
    with desk.engine.begin() as conn:
        changed = library.unpick(conn, issue, list(articles), desk.now())
    _show(as_json, changed)  # after the commit: what is printed is what was stored


@group.command("move")
@click.argument("issue")
@click.argument("article")
@click.argument("position", type=int)
@json_option
@pass_desk
def move(desk: Desk, issue: str, article: str, position: int, as_json: bool) -> None:
    """Move one article to a position (1 is the top).

    \b
    Example:
        newsletter issue move 3 12 1
    """
    with desk.engine.begin() as conn:
        changed = library.move(conn, issue, article, position, desk.now())
    _show(as_json, changed)  # after the commit: what is printed is what was stored


@group.command("set")
@click.argument("issue")
@click.option("--subject")
@click.option("--preheader", help="The line inboxes show after the subject.")
@click.option(
    "--note-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The editor's note, from a text file ('-' is not accepted).",
)
@click.option("--appeal/--no-appeal", default=None, help="The support appeal block.")
@click.option(
    "--by-section/--in-order",
    default=None,
    help="Group the articles by section, or keep the order they were put in (the default).",
)
@click.option("--item", "item", help="Article (id or url) whose title or summary to override.")
@click.option("--title", help="With --item: the title in this issue ('' restores).")
@click.option("--summary", help="With --item: the summary in this issue ('' restores).")
@click.option("--alt", help="With --item: the image's text for who does not see it ('' restores).")
@json_option
@pass_desk
def set_(
    desk: Desk,
    issue: str,
    subject: str | None,
    preheader: str | None,
    note_file: Path | None,
    appeal: bool | None,
    by_section: bool | None,
    item: str | None,
    title: str | None,
    summary: str | None,
    alt: str | None,
    as_json: bool,
) -> None:
    """Set the subject, preheader, editor's note, appeal, or one item's overrides.

    \b
    Example:
        newsletter issue set 3 --subject "The week in five stories" --note-file note.md
        newsletter issue set 3 --item 12 --title "A shorter headline"
    """
    if (title is not None or summary is not None or alt is not None) and item is None:
        raise click.UsageError("--title, --summary and --alt need --item ARTICLE")
    note = note_file.read_text(encoding="utf-8") if note_file else None
    with desk.engine.begin() as conn:
        now = desk.now()
        result = library.set_fields(conn, issue, now, subject=subject, preheader=preheader,
                                    note=note, appeal=appeal, by_section=by_section)  # fmt: skip
        if item is not None:
            result = library.set_item(conn, issue, item, now, title=title, summary=summary,
                                      alt=alt)  # fmt: skip
    _show(as_json, result)


@group.command("show")
@click.argument("issue")
@json_option
@pass_desk
def show(desk: Desk, issue: str, as_json: bool) -> None:
    """Show an issue (by id or send date) and its items.

    \b
    Example:
        newsletter issue show 2026-12-04
    """
    with desk.engine.connect() as conn:
        _show(as_json, library.get_issue(conn, issue))


@group.command("list")
@newsletter_option
@json_option
@pass_desk
def list_(desk: Desk, newsletter_slug: str | None, as_json: bool) -> None:
    """List issues, newest send date first: of every newsletter, or of the one named.

    \b
    Example:
        newsletter issue list --json
        newsletter issue list --newsletter daily
    """
    with desk.engine.connect() as conn:
        newsletter_id = choose(conn, newsletter_slug).id if newsletter_slug else None
        found = library.list_issues(conn, newsletter_id=newsletter_id)
        slugs = {one.id: one.slug for one in list_newsletters(conn)}
    shown = {i.id: f"{slugs[i.newsletter_id]:<12} " if len(slugs) > 1 else "" for i in found}
    lines = [
        f"{i.id:>4}  {shown[i.id]}{i.send_date}  {i.status:<9} {len(i.items):>2} articles  "
        f"{i.subject}"
        for i in found
    ]
    emit(as_json, [issue_document(i) for i in found], lines or ["no issues"])


def _state_command(name: str, action: Any, help_text: str) -> click.Command:
    @click.argument("issue")
    @json_option
    @pass_desk
    def command(desk: Desk, issue: str, as_json: bool) -> None:
        with desk.engine.begin() as conn:
            changed = action(conn, issue, desk.now())
        _show(as_json, changed)  # after the commit: what is printed is what was stored

    command.__doc__ = help_text
    return group.command(name)(command)


@group.command("approve")
@click.argument("issue")
@click.option(
    "--force", is_flag=True, help="Approve although Gmail would clip it (a larger issue)."
)
@json_option
@pass_desk
def approve(desk: Desk, issue: str, force: bool, as_json: bool) -> None:
    """Approve an issue for sending once it passes preflight; it is frozen until
    unapproved. A missing unsubscribe or privacy link refuses it; so does an HTML part
    Gmail would clip, unless --force.

    \b
    Example:
        newsletter issue approve 3
    """
    _show(as_json, desk.approve(issue, force=force))


_state_command(
    "unapprove",
    library.unapprove,
    "Return an approved issue to draft.\n\n\b\nExample:\n    newsletter issue unapprove 3",
)
_state_command(
    "cancel",
    library.cancel,
    "Cancel an issue that has not been sent.\n\n\b\nExample:\n    newsletter issue cancel 3",
)

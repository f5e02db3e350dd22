"""`newsletter articles …`: the article pool editors pick from."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

import click

from newsletter.app import Desk
from newsletter.cli.common import emit, json_option, pass_desk
from newsletter.curation import articles as library
from newsletter.models import Article


@click.group("articles")
def group() -> None:
    """The article pool: import the site's feed, add by hand, list."""


def article_line(article: Article) -> str:
    day = f"{article.published_at:%Y-%m-%d}" if article.published_at else "undated"
    section = f" [{article.section}]" if article.section else ""
    return f"{article.id:>5}  {day}{section}  {article.title}\n       {article.url}"


@group.command("import")
@click.argument("sources", nargs=-1, required=True)
@json_option
@pass_desk
def import_(desk: Desk, sources: tuple[str, ...], as_json: bool) -> None:
    """Import RSS or Atom feeds from files or http(s) URLs; re-importing updates.

    \b
    Example:
        newsletter articles import https://example.org/feed.xml
    """
    reports = desk.import_feeds(sources)
    lines = []
    for report in reports:
        lines.append(
            f"{report.source}: {report.added} added, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped"
        )
        lines += [f"  skipped item {s.position} {s.title!r}: {s.reason}" for s in report.skipped]
    emit(as_json, [asdict(r) for r in reports], lines)


@group.command("add")
@click.argument("url")
@click.option("--title", required=True)
@click.option("--summary", default="")
@click.option("--section", default="")
@click.option("--author", default="")
@click.option("--published", type=click.DateTime(), help="Publication time, UTC.")
@click.option("--image", "image_url", help="Image URL (https).")
@click.option("--image-alt", default="", help="The image's alternative text.")
@json_option
@pass_desk
def add(
    desk: Desk,
    url: str,
    title: str,
    summary: str,
    section: str,
    author: str,
    published: datetime | None,
    image_url: str | None,
    image_alt: str,
    as_json: bool,
) -> None:
    """Add a piece that is not in the feed.

    \b
    Example:
        newsletter articles add https://example.org/2026/live --title "Live: the vote"
    """
    with desk.engine.begin() as conn:
        article = library.add_article(
            conn,
            url=url,
            title=title,
            summary=summary,
            section=section,
            author=author,
            published_at=published.replace(tzinfo=UTC) if published else None,
            image_url=image_url,
            image_alt=image_alt,
            now=desk.now(),
        )
    emit(as_json, asdict(article), [article_line(article)])


@group.command("list")
@click.option("--section", help="Only this section.")
@click.option("--search", help="Words in the title or summary.")
@click.option("--since", type=click.DateTime(), help="Published on or after (UTC).")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_desk
def list_(
    desk: Desk,
    section: str | None,
    search: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """List articles, newest first.

    \b
    Example:
        newsletter articles list --section Business --search bank
    """
    with desk.engine.connect() as conn:
        found = library.list_articles(
            conn,
            section=section,
            search=search,
            since=since.replace(tzinfo=UTC) if since else None,
            limit=limit,
        )
    emit(as_json, [asdict(a) for a in found], [article_line(a) for a in found] or ["no articles"])

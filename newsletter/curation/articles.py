"""Articles, the pool the editors pick from: a parsed feed imported (new, updated,
unchanged by url), an article added by hand, looked up and listed."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from newsletter.curation.feeds import (
    FIELD_LIMITS,
    FeedParse,
    Skipped,
    clean_text,
    http_url,
    parse_feed,
    quoted,
    read_source,
)
from newsletter.curation.fetch import FetchLimits
from newsletter.curation.images import with_sizes
from newsletter.errors import InputError, NotFound
from newsletter.models import Article, ArticleDraft
from newsletter.store.tables import articles


@dataclass(frozen=True)
class ImportReport:
    source: str
    added: int
    updated: int
    unchanged: int
    skipped: tuple[Skipped, ...]


_CONTENT = (
    "title",
    "summary",
    "section",
    "author",
    "published_at",
    "image_url",
    "image_alt",
    "image_width",
    "image_height",
)


def _upsert(conn: sa.Connection, draft: ArticleDraft, now: datetime) -> str:
    """Insert or update the article with the draft's url: "added", "updated" or "unchanged"."""
    row = conn.execute(sa.select(articles).where(articles.c.url == draft.url)).mappings().first()
    values = {name: getattr(draft, name) for name in _CONTENT}
    if row is not None and draft.image_width is None and row["image_url"] == draft.image_url:
        values["image_width"], values["image_height"] = row["image_width"], row["image_height"]
    if row is None:
        conn.execute(
            articles.insert().values(
                url=draft.url, source=draft.source, created_at=now, updated_at=now, **values
            )
        )
        return "added"
    if all(row[name] == value for name, value in values.items()):
        return "unchanged"
    conn.execute(
        articles.update().where(articles.c.id == row["id"]).values(updated_at=now, **values)
    )
    return "updated"


def import_feed(conn: sa.Connection, parsed: FeedParse, now: datetime) -> ImportReport:
    """Upsert every draft by url in the caller's transaction."""
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    for draft in parsed.drafts:
        counts[_upsert(conn, draft, now)] += 1
    return ImportReport(parsed.source, skipped=parsed.skipped, **counts)


def import_sources(
    engine: sa.Engine,
    sources: Sequence[str],
    now: datetime,
    limits: FetchLimits | None = None,
    image_sizes: int = 0,
) -> list[ImportReport]:
    """Read and parse every source, measure up to `image_sizes` images the feeds give no
    size for, then import them all in one transaction, or none."""
    parsed = [parse_feed(read_source(source, limits), source) for source in sources]
    if image_sizes:
        parsed = with_sizes(engine, parsed, limits or FetchLimits(), image_sizes)
    with engine.begin() as conn:
        return [import_feed(conn, feed, now) for feed in parsed]


def _field(name: str, value: str, *, single_line: bool = False) -> str:
    if any(unicodedata.category(c) == "Cc" and (single_line or not c.isspace()) for c in value):
        raise InputError(f"{name}: must not contain control characters")
    text = clean_text(value)
    limit = FIELD_LIMITS.get(name)
    if limit and len(text) > limit:
        raise InputError(f"{name}: longer than {limit} characters")
    return text


def _address(name: str, value: str) -> str:
    url = http_url(value)
    if url is None:
        raise InputError(f"{name}: must be an http(s) address, got {quoted(value)}")
    if len(url) > FIELD_LIMITS[name]:
        raise InputError(f"{name}: longer than {FIELD_LIMITS[name]} characters")
    return url


def add_article(
    conn: sa.Connection,
    *,
    url: str,
    title: str,
    summary: str = "",
    section: str = "",
    author: str = "",
    published_at: datetime | None = None,
    image_url: str | None = None,
    image_alt: str = "",
    now: datetime,
) -> Article:
    """Add an article by hand (or update the one with that url, as an import would)."""
    if published_at is not None and published_at.utcoffset() is None:
        raise InputError("published_at: must include a time zone")
    title_text = _field("title", title, single_line=True)
    if not title_text:
        raise InputError("title: must not be empty")
    draft = ArticleDraft(
        url=_address("url", url),
        title=title_text,
        summary=_field("summary", summary),
        section=_field("section", section, single_line=True),
        author=_field("author", author, single_line=True),
        published_at=None if published_at is None else published_at.astimezone(UTC),
        image_url=None if image_url in (None, "") else _address("image_url", str(image_url)),
        image_alt=_field("image_alt", image_alt),
    )
    _upsert(conn, draft, now)
    return get_article(conn, draft.url)


def get_article(conn: sa.Connection, ref: str | int) -> Article:
    """The article with this id (an int or digits) or url; NotFound otherwise."""
    text = str(ref).strip()
    if isinstance(ref, int) or text.isdigit():
        where = articles.c.id == int(text)
        missing = f"no article with id {text}"
    else:
        where = articles.c.url == (http_url(text) or text)
        missing = f"no article with url {quoted(text)}"
    row = conn.execute(sa.select(articles).where(where)).mappings().first()
    if row is None:
        raise NotFound(missing)
    return Article.from_row(row)


def list_articles(
    conn: sa.Connection,
    *,
    section: str | None = None,
    search: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[Article]:
    """Newest first (undated last). `search`: every word in the title or summary, any case
    (folded in Python: right for Cyrillic on SQLite too). `since`: by published_at, else added."""
    if limit < 1:
        raise InputError(f"limit: must be at least 1, got {limit}")
    query = sa.select(articles).order_by(
        articles.c.published_at.is_(None), articles.c.published_at.desc(), articles.c.id.desc()
    )
    if section is not None:
        query = query.where(articles.c.section == section)
    if since is not None:
        query = query.where(
            sa.func.coalesce(articles.c.published_at, articles.c.created_at) >= since
        )
    words = search.casefold().split() if search else []
    if not words:
        query = query.limit(limit)
    found: list[Article] = []
    for row in conn.execute(query).mappings():
        haystack = f"{row['title']} {row['summary']}".casefold()
        if all(word in haystack for word in words):
            found.append(Article.from_row(row))
            if len(found) >= limit:
                break
    return found


def list_sections(conn: sa.Connection) -> list[str]:
    """Every section the pool's articles carry, in order, for the desk's filter."""
    query = sa.select(articles.c.section).distinct().order_by(articles.c.section)
    return [str(section) for section in conn.execute(query).scalars()]

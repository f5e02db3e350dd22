"""Plain values passed between the pure core and the edges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class ArticleDraft:
    """An article before it has an id: from a feed item or a hand entry."""

    url: str
    title: str
    summary: str = ""
    section: str = ""
    author: str = ""
    published_at: datetime | None = None
    image_url: str | None = None
    image_alt: str = ""
    image_width: int | None = None  # pixels, when known (the feed's media attributes, or
    image_height: int | None = None  # a look at the image's first bytes at import)
    source: str = "hand"


@dataclass(frozen=True, kw_only=True)
class Article(ArticleDraft):
    id: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Article:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class IssueItem:
    """An article as it appears in one issue: the editor's overrides win."""

    article: Article
    position: int
    title_override: str | None = None
    summary_override: str | None = None
    alt_override: str | None = None

    @property
    def title(self) -> str:
        return self.title_override or self.article.title

    @property
    def image_alt(self) -> str:
        """The editor's alt text; else the feed's; else, since the image is a link to the
        article, the title: a linked image needs words saying where it goes."""
        return self.alt_override or self.article.image_alt or self.title

    @property
    def summary(self) -> str:
        return self.summary_override if self.summary_override is not None else self.article.summary


@dataclass(frozen=True)
class Issue:
    id: int
    send_date: date
    status: str  # draft, approved, held, sending, sent, cancelled
    subject: str = ""
    preheader: str = ""
    note: str = ""
    appeal: bool = True
    by_section: bool = False  # items grouped by section, else in the editor's order
    clip_forced: bool = False  # approved although Gmail would clip it
    items: tuple[IssueItem, ...] = ()
    approved_at: datetime | None = None
    sent_at: datetime | None = None
    revision: int = 1  # one more on every change
    in_archive: bool = True  # shown in the public archive once sent
    newsletter_id: int = 1  # the newsletter it is an issue of (publications)


@dataclass(frozen=True)
class Reader:
    """The part of a subscriber a message needs."""

    id: int
    email: str
    name: str = ""

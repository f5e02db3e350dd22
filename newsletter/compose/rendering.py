"""Render an issue once: Jinja2 templates in the site's language, CSS inlined by
premailer, a text part; the items as the mail shows them (the editor's order or by
section, each image at its own size). Per-reader values are left as markers
(compose.markers), filled per reader."""

from __future__ import annotations

import logging
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from markupsafe import Markup

from newsletter.compose.markers import MarkerReader, RenderedIssue
from newsletter.compose.note import render_note
from newsletter.errors import TemplateError
from newsletter.language import every_weekday, long_date, medium_date, translations
from newsletter.models import Issue, IssueItem
from newsletter.settings import Settings

# premailer reads this once at import; its default (128) thrashes on a real stylesheet.
os.environ.setdefault("PREMAILER_CACHE_MAXSIZE", "2048")

HTML_TEMPLATE = "issue.html"


@dataclass(frozen=True)
class Site:
    name: str
    url: str
    support_url: str
    privacy_url: str
    postal_address: str
    language: str = "en"

    @classmethod
    def from_settings(cls, settings: Settings) -> Site:
        return cls(
            name=settings.site_name,
            url=settings.site_url,
            support_url=settings.support_url,
            privacy_url=settings.privacy_link,
            postal_address=settings.postal_address,
            language=settings.language,
        )


COLUMN = 560  # pixels of the content column an image may fill
THUMBNAIL_BELOW = 400  # an image narrower than this sits beside the text, not above it
THUMBNAIL = 140  # pixels a thumbnail takes at most


@dataclass(frozen=True)
class ItemView:
    """An issue item as templates see it: the editor's overrides already applied, and its
    image's size in the mail (never more than its own: a small image is not stretched)."""

    title: str
    summary: str
    url: str
    image_url: str | None
    image_alt: str
    author: str
    section: str
    published_at: datetime | None
    image_width: int | None = None  # as shown; None when the image's size is unknown
    image_height: int | None = None
    thumbnail: bool = False  # small: beside the text

    @classmethod
    def of(cls, item: IssueItem) -> ItemView:
        a = item.article
        width, height, thumbnail = shown_size(a.image_width, a.image_height)
        return cls(
            item.title,
            item.summary,
            a.url,
            a.image_url,
            item.image_alt if a.image_url else "",
            a.author,
            a.section,
            a.published_at,
            width,
            height,
            thumbnail,
        )


def shown_size(width: int | None, height: int | None) -> tuple[int | None, int | None, bool]:
    """The width and height an image is shown at, and whether it is a thumbnail: the
    column's width at most, a thumbnail's at most for a small one, never more than its
    own. Unknown sizes stay unknown: the mail then lets the image be its own size."""
    if not width or not height:
        return None, None, False
    thumbnail = width < THUMBNAIL_BELOW
    shown = min(width, THUMBNAIL if thumbnail else COLUMN)
    return shown, max(1, round(height * shown / width)), thumbnail


@dataclass(frozen=True)
class Section:
    name: str
    items: tuple[ItemView, ...]


@dataclass(frozen=True)
class IssueView:
    id: int
    subject: str
    preheader: str
    send_date: date
    note_paragraphs: tuple[str, ...]  # the note as plain-text blocks, for the text part
    note_html: Markup  # the note's Markdown as HTML, for the HTML part
    appeal: bool


@lru_cache(maxsize=16)
def environments(
    folder: str, language: str = "en"
) -> tuple[jinja2.Environment, jinja2.Environment]:
    """HTML (autoescaped) and text environments over one templates folder, speaking
    `language`: `_()` and `ngettext()` from its catalogue, its dates as filters."""
    loader = jinja2.FileSystemLoader(folder)
    common: dict[str, Any] = {
        "loader": loader,
        "undefined": jinja2.StrictUndefined,
        "auto_reload": True,
        "keep_trailing_newline": True,
        "extensions": ["jinja2.ext.i18n"],
    }
    made = (
        jinja2.Environment(autoescape=jinja2.select_autoescape(["html"]), **common),
        jinja2.Environment(autoescape=False, **common),  # the plain-text part
    )
    for env in made:
        speak(env, language)
    return made


def speak(env: jinja2.Environment, language: str) -> None:
    """Give a Jinja2 environment the site's language: its catalogue and its dates."""
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["long_date"] = lambda day: long_date(day, language)
    env.filters["medium_date"] = lambda day: medium_date(day, language)
    env.globals["every_weekday"] = lambda weekday: every_weekday(weekday, language)


def group_sections(items: tuple[IssueItem, ...], by_section: bool = False) -> tuple[Section, ...]:
    """The items in the editor's order, a section heading where the section changes: two
    News stories in a row share one heading, and a News story the editor put after a
    Feature comes after it, under a heading of its own. With `by_section` (the issue's
    choice) each section's items come together, the sections in the order the editor
    first used them, the items in the editor's order within each."""
    if by_section:
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            first.setdefault(item.article.section, index)
        items = tuple(sorted(items, key=lambda i: first[i.article.section]))  # stable
    runs: list[tuple[str, list[ItemView]]] = []
    for item in items:
        if runs and runs[-1][0] == item.article.section:
            runs[-1][1].append(ItemView.of(item))
        else:
            runs.append((item.article.section, [ItemView.of(item)]))
    return tuple(Section(name, tuple(group)) for name, group in runs)


def template_context(
    issue: Issue, site: Site, reader: object, *, is_test: bool = False
) -> dict[str, Any]:
    support = site.support_url
    joiner = "&" if "?" in support else "?"
    note = render_note(issue.note)
    return {
        "issue": IssueView(
            id=issue.id,
            subject=issue.subject,
            preheader=issue.preheader,
            send_date=issue.send_date,
            note_paragraphs=note.paragraphs,
            note_html=note.html,
            appeal=issue.appeal,
        ),
        "sections": group_sections(issue.items, issue.by_section),
        "site": site,
        "reader": reader,
        "links": {
            "support_once": f"{support}{joiner}period=once",
            "support_monthly": f"{support}{joiner}period=monthly",
            "support_annual": f"{support}{joiner}period=annual",
        },
        "is_test": is_test,
    }


def render_issue(
    issue: Issue, site: Site, templates: Path, *, is_test: bool = False
) -> RenderedIssue:
    """Render and inline once; the result is filled per reader."""
    reader = MarkerReader(_nonce())
    context = template_context(issue, site, reader, is_test=is_test)
    return _render_pair("issue", context, templates, reader, issue.subject, issue.preheader)


def render_mail(
    name: str, context: Mapping[str, Any], site: Site, templates: Path
) -> RenderedIssue:
    """A mail of its own (confirmation, welcome, …) from NAME.html, NAME.txt, NAME_subject.txt."""
    reader = MarkerReader(_nonce())
    full = {**context, "site": site, "reader": reader}
    _, text_env = environments(str(templates.resolve()), site.language)
    subject = " ".join(_render(text_env, f"{name}_subject.txt", full).split())
    return _render_pair(name, full, templates, reader, subject, "")


def _nonce() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))


def _render_pair(
    name: str,
    context: Mapping[str, Any],
    templates: Path,
    reader: MarkerReader,
    subject: str,
    preheader: str,
) -> RenderedIssue:
    html_env, text_env = environments(str(templates.resolve()), context["site"].language)
    html = _render(html_env, f"{name}.html", context)
    text = _render(text_env, f"{name}.txt", context)
    return RenderedIssue(
        subject=subject,
        preheader=preheader,
        html=inline_css(html),
        text=text,
        nonce=reader.nonce,
        fallbacks=tuple(reader.fallbacks),
    )


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        folder = env.loader.searchpath[0] if isinstance(env.loader, jinja2.FileSystemLoader) else ""
        raise TemplateError(f"{folder}: template {exc.name} is missing") from None
    except (jinja2.UndefinedError, TypeError, ValueError) as exc:
        raise TemplateError(f"{_template_line(exc.__traceback__, name)}: {exc}") from None


def _template_line(tb: TracebackType | None, name: str) -> str:
    """Where in a template an error happened: jinja2 puts template lines in tracebacks."""
    where = name
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".txt", ".css")):
            where = f"{filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


def inline_css(html: str) -> str:
    """Inline the stylesheet into style= attributes; @media rules stay in a style block."""
    import premailer  # 130 ms to import: paid by what renders, not by every command

    try:
        return str(
            premailer.Premailer(
                html,
                allow_network=False,
                strip_important=False,
                disable_validation=True,
                # an image's width: 100% and height: auto are for the browsers; as
                # attributes they would replace the real size, which Outlook needs
                disable_basic_attributes=["width", "height"],
                cssutils_logging_level=logging.CRITICAL,
            ).transform(pretty_print=False)
        )
    except Exception as exc:  # premailer raises bare lxml and cssutils errors
        raise TemplateError(f"{HTML_TEMPLATE}: CSS could not be inlined: {exc}") from None

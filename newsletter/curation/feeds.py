"""Feeds, read as hostile input: the bytes fetched (curation.fetch) or read from a file,
parsed by feedparser into article drafts, with the items that could not be used and why;
markup turned into plain text, summaries shortened, addresses checked."""

from __future__ import annotations

import calendar
import io
import re
import unicodedata
import xml.sax
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.parsers.expat import errors as expat_errors

from newsletter.curation.fetch import FetchLimits, fetch
from newsletter.errors import FeedError
from newsletter.models import ArticleDraft

SUMMARY_CHARS = 600
FIELD_LIMITS = {"url": 2000, "section": 200, "author": 300, "image_url": 2000}
# expat's messages when a document stops before it is complete: a cut-off file
_CUT_OFF = {
    expat_errors.XML_ERROR_NO_ELEMENTS,
    expat_errors.XML_ERROR_UNCLOSED_TOKEN,
    expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    expat_errors.XML_ERROR_PARTIAL_CHAR,
}


@dataclass(frozen=True)
class Skipped:  # an item of a feed that was not imported
    position: int  # 1-based position of the item in the feed
    title: str  # whatever title it had, or ""
    reason: str  # "no link", "no title", "duplicate of item 2", …


@dataclass(frozen=True)
class FeedParse:
    source: str
    drafts: tuple[ArticleDraft, ...]
    skipped: tuple[Skipped, ...]


class _TextExtractor(HTMLParser):
    """HTML to text: tags dropped, script/style content dropped, first image noted."""

    _HIDDEN = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg"})
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.image: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BREAKS:
            self.parts.append(" ")
        elif tag == "img" and self.image is None and not self.hidden:
            found = {name: value or "" for name, value in attrs}
            src = http_url(found.get("src", ""))
            if src and "1" not in (found.get("width"), found.get("height")):  # not a pixel
                self.image = (src, clean_text(found.get("alt", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:  # "<![foo]>", a section it does not know: skip it
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1

    def close(self) -> None:
        if self.rawdata.startswith("<"):  # an unfinished tag at the very end is not text
            self.rawdata = ""
        super().close()


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def html_to_text(markup: str) -> tuple[str, tuple[str, str] | None]:
    """Plain text of an HTML fragment, and its first http(s) <img> as (src, alt)."""
    parser = _TextExtractor()
    parser.feed(markup.replace("\x00", ""))  # NUL is never HTML; it would split a tag name
    parser.close()
    # a broken tag leaves its "<" as text: keep it from starting a tag again anywhere
    text = _TAG_START.sub("< ", "".join(parser.parts))
    return clean_text(text), parser.image


def clean_text(text: str) -> str:
    """Each run of whitespace or control characters (NBSP too) one space; trimmed."""
    kept = "".join(c if c.isspace() or unicodedata.category(c) != "Cc" else " " for c in text)
    return " ".join(kept.split())


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    """At most `limit` characters, cut on a word boundary, with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def http_url(raw: str) -> str | None:
    """The canonical form of an http(s) URL with a host (fragment dropped), else None."""
    url = raw.strip()
    if not url or any(c.isspace() or unicodedata.category(c) == "Cc" for c in url):
        return None
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = userinfo + at + hostport.lower()
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def quoted(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def read_source(source: str, limits: FetchLimits | None = None) -> bytes:
    """The bytes of a feed: an http(s) URL (fetched within the limits) or a file path."""
    limits = limits or FetchLimits()
    scheme = urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme:
        return fetch(source, limits)
    try:
        with open(source, "rb") as file:
            data = file.read(limits.max_bytes + 1)
    except OSError as exc:
        raise FeedError(source, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise FeedError(source, f"larger than {limits.max_bytes // (1024 * 1024)} MB")
    return data


def _xml_problem(exc: xml.sax.SAXParseException) -> str:
    line = exc.getLineNumber()
    where = f" (line {line}, column {exc.getColumnNumber()})" if line and line > 0 else ""
    return f"not well-formed XML: {exc.getMessage()}{where}"


def _refusal(data: bytes, parsed: Any) -> str | None:
    """Why the parsed document is not a feed to import, or None when it is one."""
    exc = parsed.get("bozo_exception")
    broken = isinstance(exc, xml.sax.SAXParseException)
    if parsed.entries:
        if broken and exc.getMessage() in _CUT_OFF:
            return _xml_problem(exc) + ": the file ends early"
        return None
    if not parsed.get("version"):
        head = data[:2048].lower()
        if b"<!doctype html" in head or b"<html" in head:
            return "not an RSS or Atom feed (looks like an HTML page)"
        if broken:
            return _xml_problem(exc)
        return "not an RSS or Atom feed"
    return _xml_problem(exc) if broken else None


def _text_of(detail: Any, value: Any) -> tuple[str, tuple[str, str] | None]:
    text = str(value or "")
    kind = str((detail or {}).get("type") or "text/html")
    if kind == "text/plain":
        return clean_text(text), None
    return html_to_text(text)


# What a CMS appends to an excerpt, and no reader of a mail can follow as text: "Read
# more…", "Continue reading “Title” →", "[…]", WordPress's "The post … appeared first on
# …". Each is matched at the very end only, one at a time, on the excerpt's last few
# hundred characters: no pattern can backtrack over a long text.
_ENDINGS = (
    re.compile(r"\s*\[(?:…|\.\.\.)\](?P<keep>)\Z"),
    re.compile(
        r"(?:(?P<keep>[.!?…:;])\s+|\s+[-–—]\s+|^)(?:read more|continue reading|keep reading|"
        r"read the full (?:story|article)|подробнее|читать далее)"
        r"(?:\s*[“\"«][^”\"»\n]{1,200}[”\"»])?\Z",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:(?P<keep>[.!?…])\s+|^)the post [^\n]{1,200} appeared first on [^\n]{1,120}\Z",
        re.IGNORECASE,
    ),
)
_TRAILING = " \t\n.…→»›>:"
TAIL_WINDOW = 400


def without_tail(text: str) -> str:
    """An excerpt without the "Read more" its feed appended: only at the excerpt's end,
    after a sentence's end (or as the whole of it); at most a few such endings."""
    head, tail = text[:-TAIL_WINDOW], text[-TAIL_WINDOW:]
    for _ in range(3):
        stripped = tail.rstrip(_TRAILING)
        found = next((m for m in (e.search(stripped) for e in _ENDINGS) if m), None)
        if found is None:
            break
        tail = stripped[: found.start()] + (found.group("keep") or "")
    return (head + tail).rstrip()


@dataclass(frozen=True)
class FeedImage:
    url: str | None
    alt: str = ""
    width: int | None = None  # pixels, when the feed says (media:content, media:thumbnail)
    height: int | None = None


def _pixels(value: Any) -> int | None:
    text = str(value or "").strip().removesuffix("px")
    return int(text) if text.isdigit() and 0 < int(text) <= 20000 else None


def _image(entry: Any, body_image: tuple[str, str] | None) -> FeedImage:
    candidates: list[tuple[str, str, Any]] = []
    for media in entry.get("media_content") or []:
        kind = str(media.get("type") or "")
        if media.get("medium") == "image" or kind.startswith("image/"):
            candidates.append((media.get("url") or "", media.get("description") or "", media))
    for thumb in entry.get("media_thumbnail") or []:
        candidates.append((thumb.get("url") or "", thumb.get("description") or "", thumb))
    for enclosure in entry.get("enclosures") or []:
        if str(enclosure.get("type") or "").lower().startswith("image/"):
            candidates.append((enclosure.get("href") or "", "", {}))
    for raw, alt, media in candidates:
        url = http_url(str(raw))
        if url and len(url) <= FIELD_LIMITS["image_url"]:
            if not alt and body_image and body_image[0] == url:
                alt = body_image[1]
            width, height = _pixels(media.get("width")), _pixels(media.get("height"))
            if width is None or height is None:
                width = height = None  # half a size is no size
            return FeedImage(url, clean_text(str(alt)), width, height)
    return FeedImage(*body_image) if body_image else FeedImage(None)


def _published(entry: Any) -> datetime | None:
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    try:
        return datetime.fromtimestamp(calendar.timegm(stamp), UTC) if stamp else None
    except (OverflowError, ValueError, OSError):
        return None


def _entry_url(entry: Any, atom: bool) -> tuple[str | None, str]:
    """(url, "") for a usable link, else (None, why not)."""
    link = str(entry.get("link") or "").strip()
    from_guid = bool(entry.get("guidislink"))
    url = http_url(link)
    if url is None and atom and not from_guid:
        url = http_url(str(entry.get("id") or ""))
    if url is not None:
        if len(url) > FIELD_LIMITS["url"]:
            return None, f"link is longer than {FIELD_LIMITS['url']} characters"
        return url, ""
    if not link or from_guid:
        return None, "no link"
    return None, f"link is not an http(s) URL: {quoted(link)}"


# what declares entities of its own: an ENTITY declaration anywhere (feedparser gathers
# them even outside a DOCTYPE and builds the subset itself), or a DOCTYPE with a subset
_OWN_ENTITIES = re.compile(rb"<!ENTITY|<!DOCTYPE[^<]*\[", re.IGNORECASE)


def _refuse_own_entities(data: bytes, source: str) -> None:
    """No feed needs entities of its own, and one entity used many times can expand to
    gigabytes in feedparser's loose parser: refused before any parser sees the bytes.
    NULs are dropped first so that UTF-16 and UTF-32 documents are read the same way."""
    for text in (data, data.replace(b"\x00", b"")):
        found = _OWN_ENTITIES.search(text)
        if found:
            line = text.count(b"\n", 0, found.start()) + 1
            raise FeedError(
                source,
                f"line {line}: declares entities of its own (refused: expanding them can "
                "exhaust memory; no RSS or Atom feed needs one)",
            )


def parse_feed(data: bytes, source: str) -> FeedParse:
    """The drafts and skipped items of an RSS/Atom document; FeedError if it is not one."""
    if not data.strip():
        raise FeedError(source, "empty: no feed to read")
    _refuse_own_entities(data, source)
    import feedparser  # imported by what reads feeds, not by every command

    parsed = feedparser.parse(io.BytesIO(data))  # a stream: bytes are never taken as a path
    refusal = _refusal(data, parsed)
    if refusal:
        raise FeedError(source, refusal)
    atom = str(parsed.get("version") or "").startswith("atom")
    drafts: list[ArticleDraft] = []
    skipped: list[Skipped] = []
    first_seen: dict[str, int] = {}
    for position, entry in enumerate(parsed.entries, start=1):
        title, _ = _text_of(entry.get("title_detail"), entry.get("title"))
        url, why = _entry_url(entry, atom)
        if url is None:
            skipped.append(Skipped(position, title, why))
            continue
        if not title:
            skipped.append(Skipped(position, "", "no title"))
            continue
        if url in first_seen:
            skipped.append(Skipped(position, title, f"duplicate of item {first_seen[url]}"))
            continue
        first_seen[url] = position
        body = entry.get("summary")
        detail = entry.get("summary_detail")
        if not body and entry.get("content"):
            body, detail = entry.content[0].get("value"), entry.content[0]
        summary, body_image = _text_of(detail, body)
        summary = without_tail(summary)  # the title is the story's, whatever its words
        image = _image(entry, body_image)
        section = (entry.get("tags") or [{}])[0].get("term") or ""
        author = (entry.get("author_detail") or {}).get("name") or entry.get("author") or ""
        drafts.append(
            ArticleDraft(
                url=url,
                title=title,
                summary=shorten(summary),
                section=clean_text(str(section))[: FIELD_LIMITS["section"]],
                author=clean_text(str(author))[: FIELD_LIMITS["author"]],
                published_at=_published(entry),
                image_url=image.url,
                image_alt=image.alt,
                image_width=image.width,
                image_height=image.height,
                source=source,
            )
        )
    return FeedParse(source, tuple(drafts), tuple(skipped))

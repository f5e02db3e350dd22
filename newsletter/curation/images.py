"""Images' sizes, so that a mail shows each at its own size and never stretches one: the
size a feed gives (media:content width and height), or else the pixel size read from
the image's first bytes (PNG, GIF, JPEG and WebP headers, without decoding the image),
fetched as a feed is (curation.fetch: deadline, byte cap, public addresses only). An
image on a host NEWSLETTER_FEED_PRIVATE_HOSTS allows is fetched only when the feed naming
it came from that host: a story's markup cannot send the desk into the newsroom's
network, and an image readers cannot reach is not worth measuring anyway. A JPEG whose
EXIF orientation turns it a quarter is measured as it is shown, upright."""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from urllib.parse import urlsplit

import sqlalchemy as sa

from newsletter.curation.feeds import FeedParse
from newsletter.curation.fetch import FetchLimits, fetch
from newsletter.errors import FeedError
from newsletter.models import ArticleDraft
from newsletter.store.tables import articles

log = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024  # a JPEG's size comes after its metadata; 64 KiB covers nearly all
DEADLINE = 5.0  # seconds for one image's first bytes
AT_ONCE = 8  # images measured at the same time

# JPEG start-of-frame markers: every SOFn but DHT (C4), JPG (C8) and DAC (CC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels, or None when the bytes are no image we can read."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        return _sane(*struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return _sane(*struct.unpack("<HH", head[6:10]))
    if head.startswith(b"\xff\xd8"):
        return _jpeg(head)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    return None


def _jpeg(head: bytes) -> tuple[int, int] | None:
    at, turned = 2, False
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill bytes before a marker
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        if marker == 0xE1 and head[at + 4 : at + 10] == b"Exif\x00\x00":
            turned = _orientation(head[at + 10 : at + 2 + length]) in (5, 6, 7, 8)
        if marker in _SOF:
            if at + 9 > len(head):
                return None
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return _sane(height, width) if turned else _sane(width, height)
        if length < 2:
            return None
        at += 2 + length
    return None


def _orientation(tiff: bytes) -> int:
    """EXIF's Orientation (tag 0x0112 of the first IFD), 1 (as stored) when absent:
    5 to 8 are a quarter turn, so the image is shown with its sides swapped."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (first,) = struct.unpack(order + "I", tiff[4:8])
    if first + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[first : first + 2])
    for n in range(min(count, 256)):
        entry = tiff[first + 2 + 12 * n : first + 14 + 12 * n]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:  # SHORT
            return int(struct.unpack(order + "H", entry[8:10])[0])
    return 1


def _webp(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _sane(width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _sane((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return _sane(width, height)
    return None


def _sane(width: int, height: int) -> tuple[int, int] | None:
    """A size a mail can use; a header claiming 0 or 100,000 pixels is not believed."""
    if 0 < width <= 20000 and 0 < height <= 20000:
        return width, height
    return None


def measure(url: str, limits: FetchLimits) -> tuple[int, int] | None:
    """The size of the image at `url`, or None when it cannot be had within the limits."""
    head = replace(
        limits,
        deadline=min(limits.deadline, DEADLINE),
        max_bytes=HEAD_BYTES,
        head_only=True,
        accept="image/*",
    )
    try:
        return image_size(fetch(url, head))
    except (FeedError, ValueError) as exc:  # whatever the host answers, the import goes on
        log.info("image size unknown: %s", exc)
        return None


def with_sizes(
    engine: sa.Engine, feeds: Sequence[FeedParse], limits: FetchLimits, most: int
) -> list[FeedParse]:
    """The feeds with a size on every image that has one to find: the feed's own, the one
    measured before (an image already in the pool is not fetched again), or up to `most`
    measured now, with no database connection held meanwhile. An image that cannot be
    measured keeps no size."""
    wanted = {
        d.image_url for feed in feeds for d in feed.drafts if d.image_url and d.image_width is None
    }
    known: dict[str, tuple[int, int]] = {}
    if wanted:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    articles.c.image_url, articles.c.image_width, articles.c.image_height
                ).where(articles.c.image_url.in_(wanted), articles.c.image_width.is_not(None))
            )
            known = {row.image_url: (row.image_width, row.image_height) for row in rows}
    todo = sorted(wanted - set(known))[:most]
    if todo:
        own = {d.image_url: _host(feed.source) for feed in feeds for d in feed.drafts}

        def limited(url: str) -> FetchLimits:  # private only where the feed itself was
            allowed = limits.private_hosts & {own.get(url, "")}
            return replace(limits, private_hosts=frozenset(allowed))

        with ThreadPoolExecutor(AT_ONCE) as pool:
            sizes = pool.map(lambda u: measure(u, limited(u)), todo)
            for url, size in zip(todo, sizes, strict=True):
                if size is not None:
                    known[url] = size
    return [replace(feed, drafts=tuple(_sized(d, known) for d in feed.drafts)) for feed in feeds]


def _host(source: str) -> str:
    try:
        return (urlsplit(source).hostname or "").lower()
    except ValueError:
        return ""


def _sized(draft: ArticleDraft, known: dict[str, tuple[int, int]]) -> ArticleDraft:
    if draft.image_url is None or draft.image_width is not None or draft.image_url not in known:
        return draft
    width, height = known[draft.image_url]
    return replace(draft, image_width=width, image_height=height)

"""Images as they are: the size a feed gives or the size read from the image's first bytes,
shown never larger than the image itself, small ones as a thumbnail beside the text, and
a text for every linked image that an editor can set."""

from __future__ import annotations

import http.server
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lxml.html
import pytest
import sqlalchemy as sa

from newsletter.compose.markers import ReaderValues, personalise
from newsletter.compose.rendering import render_issue, shown_size
from newsletter.curation.articles import get_article, import_sources
from newsletter.curation.fetch import FetchLimits
from newsletter.curation.images import HEAD_BYTES, image_size
from newsletter.curation.issues import get_issue, new_issue, pick, set_fields, set_item
from newsletter.errors import InputError
from newsletter.store.engine import create_db_engine, upgrade_database

from .conftest import NOW, ROOT
from .test_messages import SITE

LOOPBACK = FetchLimits(private_hosts=frozenset({"127.0.0.1"}))
VALUES = ReaderValues(
    "Ann", "ann@example.org", "https://n.example.org/u/T", "https://n.example.org/v/T"
)


def png(width: int, height: int) -> bytes:
    """A real PNG, one grey colour: browsers draw it, the size sits in its IHDR chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg_head(width: int, height: int, metadata: int = 0) -> bytes:
    """A JPEG's start: SOI, a JFIF segment, `metadata` bytes of comment, then the frame."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    comments = b""
    while metadata > 0:
        size = min(metadata, 65000)
        comments += b"\xff\xfe" + struct.pack(">H", size + 2) + b"x" * size
        metadata -= size
    sof2 = b"\xff\xc2" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00" * 3
    return b"\xff\xd8" + app0 + comments + sof2 + b"\xff\xda"


def exif(orientation: int, order: str = "II") -> bytes:
    """An APP1 Exif segment whose first IFD holds Orientation (and a tag before it)."""
    o = "<" if order == "II" else ">"
    entries = struct.pack(o + "HHI4s", 0x010F, 2, 4, b"Cam\x00")  # Make
    entries += struct.pack(o + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = order.encode() + struct.pack(o + "HI", 42, 8) + struct.pack(o + "H", 2) + entries
    tiff += struct.pack(o + "I", 0)
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def turned(head: bytes, segment: bytes) -> bytes:
    return head[:2] + segment + head[2:]


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def webp_vp8x(width: int, height: int) -> bytes:
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + canvas
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(240, 135), (240, 135)),
        (jpeg_head(1200, 675), (1200, 675)),
        (jpeg_head(800, 450, metadata=30_000), (800, 450)),  # the frame after its metadata
        (gif(96, 96), (96, 96)),
        (webp_vp8x(1920, 1080), (1920, 1080)),
    ],
)
def test_the_size_is_read_from_the_first_bytes_of_each_format(
    data: bytes, size: tuple[int, int]
) -> None:
    assert image_size(data[:HEAD_BYTES]) == size


@pytest.mark.parametrize(
    ("orientation", "order", "size"),
    [(1, "II", (800, 450)), (3, "MM", (800, 450)), (6, "II", (450, 800)), (8, "MM", (450, 800)),
     (5, "MM", (450, 800))],
)  # fmt: skip
def test_a_photo_turned_by_its_exif_orientation_is_measured_as_shown(
    orientation: int, order: str, size: tuple[int, int]
) -> None:
    """A phone's portrait photo is stored landscape with Orientation 6: mail clients show
    it upright, so its box must be tall, not stretched wide."""
    assert image_size(turned(jpeg_head(800, 450), exif(orientation, order))) == size


def test_a_broken_exif_segment_leaves_the_stored_size() -> None:
    broken = b"\xff\xe1" + struct.pack(">H", 12) + b"Exif\x00\x00MM\x00*"
    assert image_size(turned(jpeg_head(800, 450), broken)) == (800, 450)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<html>not an image</html>",
        png(240, 135)[:20],  # cut inside the header
        jpeg_head(800, 450)[:26],  # cut inside the frame
        jpeg_head(800, 450, metadata=70_000)[:HEAD_BYTES],  # the frame beyond what is read
        gif(0, 10),  # a size nobody can show
        struct.pack(">8sI4sII", b"\x89PNG\r\n\x1a\n", 13, b"IHDR", 900_000, 2),
        b"\xff\xd8\xff\xe0\x00\x01",  # a segment whose length is shorter than itself
    ],
)
def test_bytes_that_are_no_readable_image_give_no_size(data: bytes) -> None:
    assert image_size(data) is None


def test_an_image_is_never_shown_larger_than_it_is() -> None:
    assert shown_size(1200, 675) == (560, 315, False)  # the column's width at most
    assert shown_size(560, 200) == (560, 200, False)
    assert shown_size(480, 270) == (480, 270, False)  # narrower than the column: its own
    assert shown_size(240, 135) == (140, 79, True)  # small: a thumbnail beside the text
    assert shown_size(96, 96) == (96, 96, True)  # smaller than a thumbnail: its own
    assert shown_size(None, None) == (None, None, False)


class Images(http.server.ThreadingHTTPServer):
    """A site on loopback: a feed and its images, each answered as the test says."""

    def __init__(self, files: dict[str, tuple[bytes, str]], slow: set[str]) -> None:
        self.files, self.slow, self.requests = files, slow, list[str]()
        files_, slow_, seen = files, slow, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                if self.path in slow_:
                    time.sleep(3)  # past the per-image deadline the test sets
                if self.path not in files_:
                    self.send_error(404)
                    return
                body, kind = files_[self.path]
                if kind.startswith("redirect "):  # a Location as the test gives it
                    self.send_response(302)
                    self.send_header("Location", kind.removeprefix("redirect "))
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(files: dict[str, tuple[bytes, str]]) -> Iterator[Images]:
    """A site on loopback for the block, stopped after it however the block ends."""
    server = Images(files, set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def site() -> Iterator[Images]:
    with serving({}) as server:
        yield server


def feed(base: str, items: list[tuple[str, str]]) -> bytes:
    """An RSS feed: (slug, media markup) per item."""
    body = "".join(
        f"<item><title>Story {slug}</title><link>{base}/{slug}</link>"
        f"<description>About {slug}.</description>{media}</item>"
        for slug, media in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>Site</title>{body}</channel></rss>"
    ).encode()


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'n.db'}")
    upgrade_database(engine)
    return engine


def test_an_import_keeps_the_feeds_sizes_and_measures_the_images_it_gives_none_for(
    site: Images, engine: sa.Engine
) -> None:
    base = site.base
    site.files.update(
        {
            "/thumb.png": (png(240, 135), "image/png"),
            "/big.jpg": (jpeg_head(1600, 900, metadata=20_000) + b"\0" * 500_000, "image/jpeg"),
            "/page.html": (b"<html>an error page</html>", "text/html"),
            "/slow.png": (png(300, 300), "image/png"),
            "/bad.png": (b"", "redirect http://[bad/x"),
        }
    )
    site.slow.add("/slow.png")
    image = '<media:content url="{}" medium="image"{} />'
    site.files["/feed.xml"] = (
        feed(
            base,
            [
                ("a", image.format(f"{base}/wide.jpg", ' width="1200" height="675"')),
                ("b", image.format(f"{base}/thumb.png", "")),
                ("c", image.format(f"{base}/big.jpg", "")),
                ("d", image.format(f"{base}/page.html", "")),
                ("e", image.format(f"{base}/missing.png", "")),
                ("f", image.format(f"{base}/slow.png", "")),
                ("g", image.format(f"{base}/bad.png", "")),
            ],
        ),
        "application/rss+xml",
    )
    limits = FetchLimits(deadline=1.0, private_hosts=frozenset({"127.0.0.1"}))
    import_sources(engine, [f"{base}/feed.xml"], NOW, limits, image_sizes=10)
    with engine.connect() as conn:
        sizes = {
            slug: (a.image_width, a.image_height)
            for slug in "abcdefg"
            for a in [get_article(conn, f"{base}/{slug}")]
        }
    assert sizes == {
        "a": (1200, 675),  # the feed said: not fetched
        "b": (240, 135),
        "c": (1600, 900),  # read from the first 64 KB of a half-megabyte file
        "d": (None, None),  # not an image
        "e": (None, None),  # 404
        "f": (None, None),  # slower than its deadline: the import did not wait for it
        "g": (None, None),  # a redirect to no address at all: the import goes on
    }
    assert "/wide.jpg" not in site.requests
    site.requests.clear()
    import_sources(engine, [f"{base}/feed.xml"], NOW, limits, image_sizes=10)
    assert "/thumb.png" not in site.requests and "/big.jpg" not in site.requests  # known


def test_images_on_the_newsrooms_own_network_are_not_fetched_unless_allowed(
    site: Images, engine: sa.Engine
) -> None:
    site.files["/thumb.png"] = (png(240, 135), "image/png")
    data = feed(site.base, [("a", f'<media:content url="{site.base}/thumb.png" medium="image"/>')])
    source = Path(engine.url.database or "").parent / "feed.xml"
    source.write_bytes(data)
    import_sources(engine, [str(source)], NOW, FetchLimits(), image_sizes=10)
    with engine.connect() as conn:
        assert get_article(conn, f"{site.base}/a").image_width is None
    assert site.requests == []  # loopback is refused before a request is made


def test_a_storys_image_on_another_private_host_is_not_fetched(
    site: Images, engine: sa.Engine
) -> None:
    """The feed's host may be inside the newsroom's network (the setting allows it), but
    an image address in a story's markup may not take the desk to another such host."""
    port = site.base.rsplit(":", 1)[1]
    site.files["/thumb.png"] = (png(240, 135), "image/png")
    site.files["/feed.xml"] = (
        feed(site.base, [("a", f'<media:content url="{site.base}/thumb.png" medium="image"/>')]),
        "application/rss+xml",
    )
    both = FetchLimits(private_hosts=frozenset({"127.0.0.1", "localhost"}))
    import_sources(engine, [f"http://localhost:{port}/feed.xml"], NOW, both, image_sizes=10)
    with engine.connect() as conn:
        assert get_article(conn, f"{site.base}/a").image_width is None
    assert site.requests == ["/feed.xml"]
    import_sources(engine, [f"{site.base}/feed.xml"], NOW, both, image_sizes=10)
    with engine.connect() as conn:  # the feed's own host: measured
        assert get_article(conn, f"{site.base}/a").image_width == 240


def test_no_image_is_measured_when_the_setting_says_none(site: Images, engine: sa.Engine) -> None:
    site.files["/thumb.png"] = (png(240, 135), "image/png")
    data = feed(site.base, [("a", f'<media:content url="{site.base}/thumb.png" medium="image"/>')])
    site.files["/feed.xml"] = (data, "application/rss+xml")
    import_sources(engine, [f"{site.base}/feed.xml"], NOW, LOOPBACK, image_sizes=0)
    assert site.requests == ["/feed.xml"]


def images_in_mail(engine: sa.Engine, issue_id: int) -> list[lxml.html.HtmlElement]:
    with engine.connect() as conn:
        issue = get_issue(conn, issue_id)
    html, _ = personalise(render_issue(issue, SITE, ROOT / "templates"), VALUES)
    return lxml.html.fromstring(html).xpath("//img")


def test_the_mail_shows_each_image_at_its_size_and_small_ones_beside_the_text(
    site: Images, engine: sa.Engine
) -> None:
    site.files["/thumb.png"] = (png(240, 135), "image/png")
    site.files["/feed.xml"] = (
        feed(
            site.base,
            [
                ("wide", '<media:content url="https://x.test/w.jpg" medium="image" '
                 'width="1200" height="675"/>'),
                ("narrow", '<media:content url="https://x.test/n.jpg" medium="image" '
                 'width="480" height="320"/>'),
                ("thumb", f'<media:content url="{site.base}/thumb.png" medium="image"/>'),
                ("unknown", '<media:content url="https://x.test/u.jpg" medium="image"/>'),
            ],
        ),
        "application/rss+xml",
    )  # fmt: skip
    import_sources(engine, [f"{site.base}/feed.xml"], NOW, LOOPBACK, image_sizes=10)
    with engine.begin() as conn:
        issue = new_issue(conn, NOW.date(), NOW)
        ids = [
            get_article(conn, f"{site.base}/{s}").id for s in ("wide", "narrow", "thumb", "unknown")
        ]
        pick(conn, issue.id, ids, NOW)
    shown = {img.get("src").rpartition("/")[2]: img for img in images_in_mail(engine, issue.id)}
    assert (shown["w.jpg"].get("width"), shown["w.jpg"].get("height")) == ("560", "315")
    assert (shown["n.jpg"].get("width"), shown["n.jpg"].get("height")) == ("480", "320")
    thumb = shown["thumb.png"]
    assert (thumb.get("width"), thumb.get("height")) == ("140", "79")
    assert thumb.getparent().getparent().get("class") == "card-thumb"  # a cell beside the text
    assert thumb.getparent().getparent().getprevious().get("class") == "card-body"
    assert shown["u.jpg"].get("width") is None  # unknown: its own size, capped by CSS
    assert "max-width:100%" in shown["u.jpg"].get("style").replace(" ", "")
    for img in shown.values():  # never a fixed width in CSS: the column's or its own
        assert not re.search(r"(?<!max-)width:\d+px", img.get("style").replace(" ", ""))
    assert "width:100%" in shown["w.jpg"].get("style").replace(" ", "")  # images off: no overflow


def test_a_linked_image_says_where_it_goes_and_the_editor_can_say_more(
    engine: sa.Engine, tmp_path: Path
) -> None:
    source = tmp_path / "feed.xml"
    source.write_bytes(
        feed(
            "https://x.test", [("a", '<media:content url="https://x.test/a.jpg" medium="image"/>')]
        )
    )
    import_sources(engine, [str(source)], NOW)
    with engine.begin() as conn:
        issue = new_issue(conn, NOW.date(), NOW)
        article = get_article(conn, "https://x.test/a")
        pick(conn, issue.id, [article.id], NOW)
    assert [img.get("alt") for img in images_in_mail(engine, issue.id)] == ["Story a"]
    with engine.begin() as conn:
        set_item(conn, issue.id, article.id, NOW, alt="A tram at night on the new line")
    assert [img.get("alt") for img in images_in_mail(engine, issue.id)] == [
        "A tram at night on the new line"
    ]
    with engine.begin() as conn:
        with pytest.raises(InputError, match="alt: "):
            set_item(conn, issue.id, article.id, NOW, alt="two\nlines")
        set_item(conn, issue.id, article.id, NOW, alt="")  # restores the default
    assert [img.get("alt") for img in images_in_mail(engine, issue.id)] == ["Story a"]


def test_grouping_by_section_is_the_issues_choice(engine: sa.Engine, tmp_path: Path) -> None:
    items = "".join(
        f"<item><title>{title}</title><link>https://x.test/{n}</link><category>{section}"
        "</category></item>"
        for n, (title, section) in enumerate(
            [("N1", "News"), ("F1", "Features"), ("N2", "News"), ("F2", "Features")]
        )
    )
    source = tmp_path / "feed.xml"
    source.write_text(f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>')
    import_sources(engine, [str(source)], NOW)
    with engine.begin() as conn:
        issue = new_issue(conn, NOW.date(), NOW)
        pick(conn, issue.id, [get_article(conn, f"https://x.test/{n}").id for n in range(4)], NOW)

    def titles() -> list[str]:
        with engine.connect() as conn:
            found = get_issue(conn, issue.id)
        html, _ = personalise(render_issue(found, SITE, ROOT / "templates"), VALUES)
        page = lxml.html.fromstring(html)
        return [
            t.text_content().strip()
            for t in page.xpath("//*[@class='section-title' or @class='card-title']")
        ]

    assert titles() == ["News", "N1", "Features", "F1", "News", "N2", "Features", "F2"]
    with engine.begin() as conn:
        set_fields(conn, issue.id, NOW, by_section=True)
    assert titles() == ["News", "N1", "N2", "Features", "F1", "F2"]

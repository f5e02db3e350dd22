"""Feed import, hand entry, lookup and listing of articles, on a real SQLite file."""

from __future__ import annotations

import functools
import http.server
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.curation.articles import (
    ImportReport,
    add_article,
    get_article,
    import_feed,
    import_sources,
    list_articles,
)
from newsletter.curation.feeds import (
    Skipped,
    clean_text,
    html_to_text,
    parse_feed,
    read_source,
    shorten,
)
from newsletter.curation.fetch import FetchLimits
from newsletter.errors import FeedError, InputError, NotFound
from newsletter.store.engine import create_db_engine, upgrade_database
from newsletter.store.tables import articles

FEEDS = Path(__file__).parent / "feeds"
BBC, LIGA, ONLINER = (
    FEEDS / name for name in ("bbc-world-2017.xml", "liga-ru-2021.xml", "onliner-ru-2021.xml")
)
NOW = datetime(2024, 5, 3, 9, 0, tzinfo=UTC)
LOOPBACK = FetchLimits(deadline=10, private_hosts=frozenset({"127.0.0.1"}))
MEDIA = "{http://search.yahoo.com/mrss/}"
DC = "{http://purl.org/dc/elements/1.1/}"


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(sa.select(articles).order_by(articles.c.id)).mappings()
        return [dict(row) for row in result]


def rss(*items: str, head: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    return f'{head}<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------ the real feeds


def text(element: ET.Element, tag: str) -> str:
    return " ".join((element.findtext(tag) or "").split())  # NBSP collapses too


def thumbnail(item: ET.Element) -> str | None:
    found = item.find(f"{MEDIA}thumbnail")
    return None if found is None else found.get("url")


def enclosure(item: ET.Element) -> str | None:
    found = item.find("enclosure")
    return None if found is None else found.get("url")


@pytest.mark.parametrize(
    ("path", "count", "image"),
    [(BBC, 3, thumbnail), (LIGA, 12, enclosure), (ONLINER, 30, thumbnail)],
    ids=["bbc", "liga", "onliner"],
)
def test_real_feed_imports_every_item_once(
    engine: sa.Engine, path: Path, count: int, image: Callable[[ET.Element], str | None]
) -> None:
    items = ET.parse(path).getroot().findall("./channel/item")
    expected = [(text(i, "link"), text(i, "title"), image(i)) for i in items]
    assert len(expected) == count and all(url and title and img for url, title, img in expected)

    [report] = import_sources(engine, [str(path)], NOW)

    assert report == ImportReport(str(path), added=count, updated=0, unchanged=0, skipped=())
    stored = rows(engine)
    assert [(r["url"], r["title"], r["image_url"]) for r in stored] == expected
    assert {r["source"] for r in stored} == {str(path)}
    assert all(r["created_at"] == r["updated_at"] == NOW for r in stored)

    [again] = import_sources(engine, [str(path)], NOW + timedelta(days=1))
    assert (again.added, again.updated, again.unchanged) == (0, 0, count)
    assert rows(engine) == stored


def test_bbc_dates_and_summaries(engine: sa.Engine) -> None:
    import_sources(engine, [str(BBC)], NOW)
    first = rows(engine)[0]
    assert first["published_at"] == datetime(2017, 1, 20, 12, 55, 28, tzinfo=UTC)
    assert first["summary"] == (
        "Two children are among the eight who have spent at least 40 hours buried in snow "
        "and rubble."
    )
    assert (first["section"], first["author"], first["image_alt"]) == ("", "", "")


def test_liga_cyrillic_and_offsets(engine: sa.Engine) -> None:
    import_sources(engine, [str(LIGA)], NOW)
    first = rows(engine)[0]
    assert first["title"] == (
        'Футбол. "Арсенал" – "Челси": где и когда смотреть матч английской Премьер-лиги'
    )
    assert first["summary"].startswith("Сегодня пройдет матч между Арсеналом и Челси – ")
    # Sun, 22 Aug 2021 13:45:00 +0300
    assert first["published_at"] == datetime(2021, 8, 22, 10, 45, tzinfo=UTC)
    assert first["image_url"].endswith("thumbnail-h-20200917123150-4153.jpg")


def test_onliner_html_descriptions_become_text(engine: sa.Engine) -> None:
    items = ET.parse(ONLINER).getroot().findall("./channel/item")
    import_sources(engine, [str(ONLINER)], NOW)
    stored = rows(engine)
    assert len(stored) == 30
    for item, row in zip(items, stored, strict=True):
        assert row["author"] == text(item, f"{DC}creator")
        assert row["section"] == text(item, "category")
        assert row["summary"] and len(row["summary"]) <= 601
        for field in ("title", "summary"):
            assert "<" not in row[field] and "\xa0" not in row[field]
            assert "&nbsp;" not in row[field] and "&amp;" not in row[field]
    first = stored[0]
    title = "В России сделали вакцину «Спутник», которую надо закапывать в нос"
    assert first["title"] == title
    assert first["summary"].startswith("Российская фармкомпания «Генериум» разработала и подала")
    assert (first["section"], first["author"]) == ("Технологии", "Onliner | Технологии")


def test_long_summary_is_cut_on_a_word(tmp_path: Path) -> None:
    words = " ".join(f"word{n}" for n in range(300))
    parsed = parse_feed(
        rss(
            f"<title>Long</title><link>http://a.test/1</link><description>"
            f"&lt;p&gt;{words}&lt;/p&gt;</description>"
        ),
        "long.xml",
    )
    summary = parsed.drafts[0].summary
    assert summary.endswith("…") and len(summary) <= 601
    assert words.startswith(summary[:-1]) and words[len(summary) - 1] == " "


@pytest.mark.parametrize(
    ("description", "summary"),
    [
        ("&lt;p&gt;The council met. &lt;a href='http://a.test/1'&gt;Read more…&lt;/a&gt;&lt;/p&gt;",
         "The council met."),
        ("&lt;p&gt;Trams run late.&lt;/p&gt;&lt;p&gt;&lt;a href='http://a.test/1'&gt;Continue "
         "reading &lt;span&gt;“Night trams”&lt;/span&gt; →&lt;/a&gt;&lt;/p&gt;", "Trams run late."),
        ("Snow fell on the pass [&amp;#8230;]", "Snow fell on the pass"),
        ("&lt;p&gt;Bakers unite.&lt;/p&gt;&lt;p&gt;The post &lt;a href='x'&gt;Bakers unite&lt;/a&gt; "
         "appeared first on &lt;a href='y'&gt;The Weekly&lt;/a&gt;.&lt;/p&gt;", "Bakers unite."),
        ("В Москве снег. Подробнее »", "В Москве снег."),
        ("He said: read more books.", "He said: read more books."),  # words, not a link
        ("Why our children should read more", "Why our children should read more"),
        ("In 1840 the post office appeared first on the map.",
         "In 1840 the post office appeared first on the map."),
        ("Read more. " * 40 + "x", "Read more. " * 39 + "Read more. x"),  # no backtracking
    ],
)  # fmt: skip
def test_a_feeds_read_more_tail_is_not_kept_in_the_summary(description: str, summary: str) -> None:
    """A mail links the story itself: "Read more" as text would go nowhere."""
    parsed = parse_feed(
        rss(f"<title>T</title><link>http://a.test/1</link><description>{description}"
            "</description>"),
        "tail.xml",
    )  # fmt: skip
    assert parsed.drafts[0].summary == summary


# ------------------------------------------------------------------ Atom and odd items

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Desk</title><id>urn:uuid:0d5c</id><updated>2024-05-01T10:00:00Z</updated>
  <entry>
    <title type="html">Fish &amp;amp; &lt;b&gt;chips&lt;/b&gt;</title>
    <link rel="alternate" href="  https://Example.COM/food?id=1#comments "/>
    <id>tag:example.com,2024:1</id>
    <updated>2024-05-01T12:00:00+02:00</updated>
    <author><name>Ann Writer</name></author>
    <category term="Food"/>
    <content type="html">&lt;p&gt;Hot &amp;amp;
      &lt;img src="https://example.com/f.jpg" alt="Chips"&gt; salty.&lt;/p&gt;</content>
  </entry>
  <entry>
    <title>No link here</title>
    <id>tag:example.com,2024:2</id>
    <updated>2024-05-01T11:00:00Z</updated>
  </entry>
  <entry>
    <title>Permalink id</title>
    <id>https://example.com/by-id</id>
    <updated>2024-05-01T09:00:00Z</updated>
    <summary type="text">a &lt; b</summary>
  </entry>
</feed>"""


def test_atom_feed(engine: sa.Engine, tmp_path: Path) -> None:
    source = write(tmp_path, "desk.atom", ATOM)
    [report] = import_sources(engine, [source], NOW)
    assert (report.added, report.skipped) == (2, (Skipped(2, "No link here", "no link"),))
    food, by_id = rows(engine)
    assert food["url"] == "https://example.com/food?id=1"
    assert food["title"] == "Fish & chips"
    assert food["summary"] == "Hot & salty."
    assert (food["author"], food["section"]) == ("Ann Writer", "Food")
    assert food["published_at"] == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert (food["image_url"], food["image_alt"]) == ("https://example.com/f.jpg", "Chips")
    assert (by_id["url"], by_id["summary"]) == ("https://example.com/by-id", "a < b")


def test_bad_items_are_skipped_and_the_rest_imported(engine: sa.Engine, tmp_path: Path) -> None:
    data = rss(
        "<title>First</title><link>https://a.test/1</link>",
        "<title>Click me</title><link>javascript:alert(1)</link>",
        "<link>https://a.test/3</link>",
        "<title>Again</title><link>https://a.test/1#top</link>",
        "<title>Last</title><guid>https://a.test/5</guid>",
        '<title>Not a permalink</title><guid isPermaLink="false">https://a.test/6</guid>',
    )
    [report] = import_sources(engine, [write(tmp_path, "mixed.xml", data)], NOW)
    assert report.skipped == (
        Skipped(2, "Click me", "link is not an http(s) URL: 'javascript:alert(1)'"),
        Skipped(3, "", "no title"),
        Skipped(4, "Again", "duplicate of item 1"),
        Skipped(6, "Not a permalink", "no link"),
    )
    assert [(r["url"], r["title"]) for r in rows(engine)] == [
        ("https://a.test/1", "First"),
        ("https://a.test/5", "Last"),
    ]


def test_markup_in_titles_and_summaries_stays_text() -> None:
    parsed = parse_feed(
        rss(
            "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title><link>https://a.test/x</link>"
            "<description><![CDATA[<script>alert(2)</script><style>p{color:red}</style>"
            "<p>Safe&nbsp;&amp;&nbsp;sound</p>]]>"
            "</description>"
        ),
        "x.xml",
    )
    [draft] = parsed.drafts
    assert draft.title == "<script>alert(1)</script>"  # plain text: the renderer escapes it
    assert draft.summary == "Safe & sound"
    assert "<script" not in draft.summary


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>a</p><p>b</p>", "a b"),
        ("<script>alert(1)</script>x<style>p{}</style>", "x"),
        ("Caf&eacute;&nbsp;&amp;&#160;bar<br>baz", "Café & bar baz"),
        ("<SCRIPT>document.write('<p>hi</p>')</SCRIPT>ok", "ok"),
        ("a < b &lt; c", "a < b < c"),
        ("<iframe src='https://evil.test'>fallback</iframe>after", "after"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup)[0] == expected


HTMLISH = st.lists(
    st.sampled_from(
        [
            "<",
            ">",
            "/",
            "!",
            "-",
            "[",
            "]",
            " ",
            "\xa0",
            "\x00",
            "\n",
            "a",
            "script",
            "style",
            "p",
            "=",
            "'",
            '"',
            "<script>",
            "</script>",
            "<!--",
            "-->",
            "<![",
            "CDATA",
            "&",
            ";",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(HTMLISH, st.text())
def test_text_is_always_clean(markup: str, anything: str) -> None:
    text, _ = html_to_text(markup)  # never raises, whatever the markup
    assert text == clean_text(text) and "\xa0" not in text
    assert not any(ord(c) < 32 for c in text)
    if "&" not in markup:  # without entities, no tag can come out as text
        assert "<script" not in text
    short = shorten(clean_text(anything))
    assert len(short) <= 601 and (short == clean_text(anything) or short.endswith("…"))


@pytest.mark.parametrize(
    ("extra", "image"),
    [
        (
            '<media:content url="https://i.test/c.jpg" medium="image"/>'
            '<media:thumbnail url="https://i.test/t.jpg"/>',
            ("https://i.test/c.jpg", ""),
        ),
        (
            '<enclosure url="https://i.test/e.png" type="image/png" length="1"/>',
            ("https://i.test/e.png", ""),
        ),
        (
            '<enclosure url="https://i.test/a.mp3" type="audio/mpeg" length="1"/>'
            '<description>&lt;img src="https://i.test/d.jpg" alt="Desc"&gt;</description>',
            ("https://i.test/d.jpg", "Desc"),
        ),
        ('<media:thumbnail url="ftp://i.test/t.jpg"/>', (None, "")),
    ],
)
def test_image_sources(extra: str, image: tuple[str | None, str]) -> None:
    data = rss(f"<title>I</title><link>https://a.test/i</link>{extra}").replace(
        b"<rss ", b'<rss xmlns:media="http://search.yahoo.com/mrss/" '
    )
    [draft] = parse_feed(data, "i.xml").drafts
    assert (draft.image_url, draft.image_alt) == image


def test_bozo_feed_with_items_is_still_imported() -> None:
    data = rss("<title>Café</title><link>https://a.test/c</link>").replace(
        "Café".encode(), "Café".encode("latin-1")
    )  # declared utf-8, written in latin-1: feedparser overrides the encoding
    [draft] = parse_feed(data, "latin.xml").drafts
    assert draft.title == "Café"


def test_well_formed_feed_without_items_imports_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    [report] = import_sources(engine, [write(tmp_path, "empty.xml", rss())], NOW)
    assert (report.added, report.skipped) == (0, ())


# ------------------------------------------------------------------ refused sources

BBC_BYTES = BBC.read_bytes()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BBC_BYTES[:400], "not well-formed XML: unclosed token (line 5, column 43)"),
        (BBC_BYTES[: BBC_BYTES.index(b"IS militants") + 10], "not well-formed XML: unclosed CDATA"),
        (
            b"<!DOCTYPE html><html><head><title>Hi</title></head><body>x</body></html>",
            "not an RSS or Atom feed (looks like an HTML page)",
        ),
        (
            b'<!doctype html>\n<html lang="en"><meta charset="utf-8"><link rel=x href=y></html>',
            "not an RSS or Atom feed (looks like an HTML page)",
        ),
        (b'<?xml version="1.0"?><urlset><url/></urlset>', "not an RSS or Atom feed"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"items": []}', "not well-formed XML"),
    ],
    ids=[
        "truncated",
        "truncated-after-items",
        "html",
        "html5",
        "other-xml",
        "empty",
        "blank",
        "json",
    ],
)
def test_refused_sources_write_nothing(
    engine: sa.Engine, tmp_path: Path, data: bytes, reason: str
) -> None:
    bad = write(tmp_path, "bad.xml", data)
    with pytest.raises(FeedError) as caught:
        import_sources(engine, [str(BBC), bad], NOW)
    assert caught.value.source == bad
    assert str(caught.value).startswith(f"{bad}: {reason}")
    assert rows(engine) == []


def test_missing_file_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.xml")
    with pytest.raises(FeedError, match=r"nope\.xml: cannot read the file: No such file"):
        import_sources(engine, [str(LIGA), missing], NOW)
    assert rows(engine) == []


def test_import_feed_runs_in_the_callers_transaction(engine: sa.Engine) -> None:
    parsed = parse_feed(BBC.read_bytes(), "bbc")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert import_feed(conn, parsed, NOW).added == 3
        raise RuntimeError("roll back")
    assert rows(engine) == []


def test_reimport_updates_changed_fields_only(engine: sa.Engine) -> None:
    import_sources(engine, [str(BBC)], NOW)
    changed = BBC_BYTES.replace(b"Eight found alive", b"Nine found alive")
    later = NOW + timedelta(hours=1)
    with engine.begin() as conn:
        report = import_feed(conn, parse_feed(changed, str(BBC)), later)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    first, second, _ = rows(engine)
    assert first["title"].startswith("Rigopiano avalanche: Nine found alive")
    assert (first["created_at"], first["updated_at"]) == (NOW, later)
    assert second["updated_at"] == NOW


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
def feed_server() -> Iterator[tuple[str, list[str]]]:
    agents: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            agents.append(self.headers.get("User-Agent", ""))
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(FEEDS))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", agents
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_import_by_url(engine: sa.Engine, feed_server: tuple[str, list[str]]) -> None:
    base, agents = feed_server
    url = f"{base}/onliner-ru-2021.xml"
    [report] = import_sources(engine, [url], NOW, LOOPBACK)
    assert report.added == 30
    assert {r["source"] for r in rows(engine)} == {url}
    assert agents and agents[0].startswith("newsletter-desk/")
    assert read_source(url, LOOPBACK) == ONLINER.read_bytes()


def test_http_404_is_refused(engine: sa.Engine, feed_server: tuple[str, list[str]]) -> None:
    url = f"{feed_server[0]}/missing.xml"
    with pytest.raises(FeedError) as caught:
        import_sources(engine, [str(BBC), url], NOW, LOOPBACK)
    assert (caught.value.source, str(caught.value)) == (url, f"{url}: HTTP 404 File not found")
    assert rows(engine) == []


def test_unreachable_and_odd_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"^ftp://a\.test/f\.xml: only http"):
        read_source("ftp://a.test/f.xml")
    with pytest.raises(FeedError, match="cannot fetch"):
        read_source("http://127.0.0.1:9/feed.xml", LOOPBACK)  # discard port: nobody listens


# ------------------------------------------------------------------ hand entry and lookup


def test_add_article_and_update_by_url(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        article = add_article(
            conn,
            url=" https://Site.test/a#x ",
            title="  Hello\u00a0 world ",
            section="World",
            published_at=datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=3))),
            image_url="https://site.test/a.jpg",
            image_alt="A picture",
            now=NOW,
        )
        assert (article.url, article.title, article.source) == (
            "https://site.test/a",
            "Hello world",
            "hand",
        )
        assert article.published_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
        again = add_article(conn, url="https://site.test/a", title="Hello again", now=NOW)
    assert again.id == article.id and again.title == "Hello again"
    assert len(rows(engine)) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "foo"}, "url: must be an http(s) address, got 'foo'"),
        (
            {"url": "javascript:alert(1)"},
            "url: must be an http(s) address, got 'javascript:alert(1)'",
        ),
        ({"url": "https://"}, "url: must be an http(s) address, got 'https://'"),
        ({"url": "ftp://a.test/x"}, "url: must be an http(s) address, got 'ftp://a.test/x'"),
        ({"title": ""}, "title: must not be empty"),
        ({"title": " \u00a0 "}, "title: must not be empty"),
        ({"title": "Two\nlines"}, "title: must not contain control characters"),
        ({"title": "Bell\x07"}, "title: must not contain control characters"),
        ({"summary": "nul\x00"}, "summary: must not contain control characters"),
        ({"section": "x" * 201}, "section: longer than 200 characters"),
        (
            {"image_url": "data:image/png;base64,AA"},
            "image_url: must be an http(s) address, got 'data:image/png;base64,AA'",
        ),
        ({"published_at": datetime(2024, 5, 1)}, "published_at: must include a time zone"),
    ],
)
def test_add_article_validation(engine: sa.Engine, fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"url": "https://site.test/a", "title": "Title", **fields}
    with engine.begin() as conn, pytest.raises(InputError) as caught:
        add_article(conn, now=NOW, **values)
    assert str(caught.value) == message
    assert rows(engine) == []


def test_get_article(engine: sa.Engine) -> None:
    import_sources(engine, [str(BBC)], NOW)
    with engine.connect() as conn:
        by_id = get_article(conn, 2)
        assert get_article(conn, "2") == by_id
        assert get_article(conn, "http://www.bbc.co.uk/news/world-africa-38686144") == by_id
        assert get_article(conn, " HTTP://WWW.BBC.CO.UK/news/world-africa-38686144#x ") == by_id
        assert by_id.title.startswith("Gambia crisis")
        with pytest.raises(NotFound, match=r"^no article with id 7$"):
            get_article(conn, 7)
        with pytest.raises(NotFound, match=r"^no article with url 'https://nope\.test/'$"):
            get_article(conn, "https://nope.test/")


def test_list_articles(engine: sa.Engine) -> None:
    import_sources(engine, [str(ONLINER), str(BBC)], NOW)
    with engine.begin() as conn:
        add_article(conn, url="https://site.test/undated", title="Undated Спутник", now=NOW)
        everything = list_articles(conn, limit=1000)
        tech = list_articles(conn, section="Технологии")
        sputnik = list_articles(conn, search="СПУТНИК")
        rigopiano = list_articles(conn, search="rigopiano ALIVE")
        since = datetime(2021, 10, 26, 16, 0, tzinfo=UTC)
        recent = list_articles(conn, since=since)
        assert len(list_articles(conn, limit=5)) == 5
        with pytest.raises(InputError, match="limit"):
            list_articles(conn, limit=0)
    assert len(everything) == 34
    dates = [a.published_at for a in everything[:-1]]
    assert dates == sorted(dates, reverse=True)  # type: ignore[type-var]
    assert everything[-1].url == "https://site.test/undated"
    assert everything[-2].url == "http://www.bbc.co.uk/news/world-middle-east-38689131"
    assert tech and all(a.section == "Технологии" for a in tech)
    assert [a.url for a in sputnik][-1] == "https://site.test/undated"
    assert any("Спутник" in a.title for a in sputnik[:-1])
    assert [a.title for a in rigopiano] == [
        "Rigopiano avalanche: Eight found alive in Italy hotel after two days"
    ]
    assert recent == [a for a in everything if a.published_at is None or a.published_at >= since]
    assert 2 < len(recent) < 10


def test_a_title_keeps_its_words_whatever_they_are() -> None:
    parsed = parse_feed(
        rss("<title>Keep reading</title><link>http://a.test/1</link><description>x</description>"),
        "title.xml",
    )
    assert [d.title for d in parsed.drafts] == ["Keep reading"]

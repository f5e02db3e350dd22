"""Feeds as an attacker serves them: entities that expand, a body that names a local file,
an answer trickled a byte at a time, an endless body, redirects to other schemes and hosts,
and the network inside the newsroom. Each is a real server on loopback."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.curation.articles import import_sources
from newsletter.curation.feeds import parse_feed, read_source
from newsletter.curation.fetch import FetchLimits
from newsletter.editors import add_editor
from newsletter.errors import FeedError
from newsletter.settings import ConfigError, load_settings
from newsletter.store import tables as db
from newsletter.store.engine import create_db_engine, upgrade_database
from newsletter.web import create_app

from .conftest import FEEDS, NOW
from .test_desk import EDITOR, PASSWORD, logged_in, post

LOOPBACK = frozenset({"127.0.0.1"})
FEED = (FEEDS / "bbc-world-2017.xml").read_bytes()

Handler = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """A TCP server on loopback whose every connection is answered by `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.stop = threading.Event()
        stop = self.stop

        class Connection(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)  # the request: not read further
                try:
                    handler(self.request, stop)
                except OSError:
                    pass  # the client went away, as it should

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Connection)
        self.server.block_on_close = True  # server_close waits for every handler
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/feed.xml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def answer(body: bytes, head: str = "HTTP/1.0 200 OK\r\nContent-Type: application/xml") -> Handler:
    def handler(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head.encode() + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    return handler


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'n.db'}")
    upgrade_database(engine)
    return engine


def article_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(db.articles)).scalar_one())


# ------------------------------------------------------------------ entities


def entity_feed(uses: int = 2000) -> bytes:
    """18 KB that feedparser's loose parser expanded to hundreds of megabytes."""
    lol = "lol" * 60
    items = "".join(
        f"<item><title>&a;</title><link>http://x.test/{i}</link></item>" for i in range(5)
    )
    body = "&a;" * uses
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{lol * 200}">\n]>\n'
        f'<rss version="2.0"><channel><title>{body}</title>{items}</channel></rss>'
    ).encode()


def test_a_feed_that_declares_entities_is_refused_by_line_before_it_is_expanded() -> None:
    data = entity_feed()
    assert len(data) < 60_000
    with pytest.raises(FeedError) as caught:
        parse_feed(data, "entities.xml")
    assert str(caught.value).startswith("entities.xml: line 2: declares entities of its own")


@pytest.mark.parametrize(
    "head",
    [
        '<!DOCTYPE rss>\n<!ENTITY a "{lol}">',  # feedparser gathers it outside the DOCTYPE
        '<!DOCTYPE rss SYSTEM "a>b" [\n<!ENTITY a "{lol}">]>',  # a > inside a literal
        '<!doctype rss [\n<!entity a "{lol}">]>',
    ],
)
def test_entities_declared_in_other_spellings_are_refused_too(head: str) -> None:
    body = head.format(lol="lol" * 3000) + "<rss><channel><title>" + "&a;" * 2000
    data = ('<?xml version="1.0"?>\n' + body + "</title></channel></rss>").encode()
    with pytest.raises(FeedError, match=r"line \d: declares entities of its own"):
        parse_feed(data, "sneaky.xml")


def test_the_same_feed_in_utf16_is_refused_too() -> None:
    data = entity_feed().decode().replace('version="1.0"', 'version="1.0" encoding="utf-16"')
    with pytest.raises(FeedError, match="line 2: declares entities of its own"):
        parse_feed(data.encode("utf-16"), "utf16.xml")


def test_a_public_doctype_without_entities_still_imports() -> None:
    netscape = (
        b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        b' "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91"><channel>'
        b"<title>T</title><item><title>One</title><link>http://x.test/1</link></item>"
        b"</channel></rss>"
    )
    assert [d.title for d in parse_feed(netscape, "old.xml").drafts] == ["One"]


# ------------------------------------------------------------------ the body is never a path


def test_a_body_that_names_a_local_feed_file_is_not_read_as_that_file(engine: sa.Engine) -> None:
    path = str(FEEDS / "liga-ru-2021.xml").encode()
    with RawServer(answer(path)) as server, pytest.raises(FeedError) as caught:
        import_sources(engine, [server.url], NOW, FetchLimits(private_hosts=LOOPBACK))
    assert str(caught.value).startswith(f"{server.url}: not well-formed XML")
    assert article_count(engine) == 0


# ------------------------------------------------------------------ deadline and size


def trickle(head: bytes, body: bytes, every: float = 0.2) -> Handler:
    """Send `head` at once, then one byte of `body` every `every` seconds."""

    def handler(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head)
        for byte in body:
            if stop.wait(every):
                return
            sock.sendall(bytes([byte]))

    return handler


def test_a_server_that_trickles_its_body_is_given_up_at_the_deadline() -> None:
    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(FEED)}\r\n\r\n".encode()
    with RawServer(trickle(head, FEED)) as server, pytest.raises(FeedError) as caught:
        read_source(server.url, FetchLimits(deadline=1, private_hosts=LOOPBACK))
    # the body would take hours at this pace: the fetch ended at its deadline instead
    assert str(caught.value) == f"{server.url}: no complete answer within 1 s"


def test_a_server_that_trickles_its_headers_is_given_up_at_the_deadline() -> None:
    head = b"HTTP/1.0 200 OK\r\nX-Slow: " + b"a" * 5000 + b"\r\n\r\n"
    with (
        RawServer(trickle(b"", head)) as server,
        pytest.raises(FeedError, match=r"no complete answer within 1 s$"),
    ):
        read_source(server.url, FetchLimits(deadline=1, private_hosts=LOOPBACK))


def test_a_resolver_that_never_answers_is_given_up_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No real resolver can be made to hang for one test (glibc reads /etc/resolv.conf),
    so the lookup itself is the stand-in: it blocks until the test ends."""
    released = threading.Event()

    def hanging(*args: object, **kwargs: object) -> list[object]:
        released.wait(30)
        raise socket.gaierror("released")

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        with pytest.raises(FeedError) as caught:
            read_source("http://feed.example.org/rss", FetchLimits(deadline=1))
        assert str(caught.value) == "http://feed.example.org/rss: no complete answer within 1 s"
    finally:
        released.set()


def endless(sock: socket.socket, stop: threading.Event) -> None:
    sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/xml\r\n\r\n<rss>")
    chunk = b"<!-- " + b"x" * 65536 + b" -->"
    while not stop.is_set():
        sock.sendall(chunk)


def test_an_endless_body_stops_at_the_byte_cap() -> None:
    with RawServer(endless) as server, pytest.raises(FeedError) as caught:
        read_source(server.url, FetchLimits(max_bytes=1_000_000, private_hosts=LOOPBACK))
    assert str(caught.value) == f"{server.url}: larger than 1000000 bytes"


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    head = "HTTP/1.0 200 OK\r\nContent-Type: application/xml"
    with (
        RawServer(answer(b"x" * 3000, head)) as server,
        pytest.raises(FeedError, match=r"larger than 2000 bytes$"),
    ):
        read_source(server.url, FetchLimits(max_bytes=2000, private_hosts=LOOPBACK))


def test_a_local_file_is_capped_too(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 3000)
    with pytest.raises(FeedError, match=r"big\.xml: larger than"):
        read_source(str(path), FetchLimits(max_bytes=2000))


# ------------------------------------------------------------------ addresses and redirects


def test_loopback_is_refused_unless_the_setting_names_the_host() -> None:
    with RawServer(answer(FEED)) as server:
        with pytest.raises(FeedError) as caught:
            read_source(server.url)
        assert str(caught.value) == (
            f"{server.url}: 127.0.0.1 is at 127.0.0.1, a loopback, private or link-local "
            "address: refused (NEWSLETTER_FEED_PRIVATE_HOSTS=127.0.0.1 allows it)"
        )
        assert read_source(server.url, FetchLimits(private_hosts=LOOPBACK)) == FEED


def redirect(to: str) -> Handler:
    return answer(b"", f"HTTP/1.0 302 Found\r\nLocation: {to}")


def test_a_redirect_to_another_scheme_is_refused() -> None:
    with (
        RawServer(redirect("ftp://127.0.0.1/etc/passwd")) as server,
        pytest.raises(FeedError, match=r"only http\(s\) URLs can be fetched, not 'ftp://"),
    ):
        read_source(server.url, FetchLimits(private_hosts=LOOPBACK))


def test_a_redirect_to_a_host_not_allowed_on_loopback_is_refused() -> None:
    with (
        RawServer(answer(FEED)) as inside,
        RawServer(redirect(f"http://localhost:{inside.port}/admin.xml")) as outside,
    ):
        with pytest.raises(FeedError, match=r"localhost is at .*: refused"):
            read_source(outside.url, FetchLimits(private_hosts=LOOPBACK))
        # followed where the next host is allowed as well
        both = FetchLimits(private_hosts=LOOPBACK | {"localhost"})
        assert read_source(outside.url, both) == FEED


def test_a_redirect_loop_ends() -> None:
    with (
        RawServer(redirect("/feed.xml")) as server,
        pytest.raises(FeedError, match=r"more than 5 redirects$"),
    ):
        read_source(server.url, FetchLimits(private_hosts=LOOPBACK))


def test_the_settings_name_the_private_hosts_and_the_deadline() -> None:
    settings = load_settings(
        {
            "NEWSLETTER_FEED_PRIVATE_HOSTS": "127.0.0.1, Feeds.Internal",
            "NEWSLETTER_FEED_DEADLINE": "5s",
        },
        Path("/nonexistent.toml"),
    )
    assert FetchLimits.from_settings(settings) == FetchLimits(
        deadline=5, private_hosts=frozenset({"127.0.0.1", "feeds.internal"})
    )
    with pytest.raises(ConfigError, match="NEWSLETTER_FEED_PRIVATE_HOSTS: 'a b' is not a host"):
        load_settings({"NEWSLETTER_FEED_PRIVATE_HOSTS": "a b"}, Path("/nonexistent.toml"))


# ------------------------------------------------------------------ the desk's import button


@pytest.fixture
def slow_feed() -> Iterator[RawServer]:
    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(FEED)}\r\n\r\n".encode()
    with RawServer(trickle(head, FEED)) as server:
        yield server


@pytest.fixture
def app(desk: Desk, slow_feed: RawServer) -> Flask:
    settings = replace(
        desk.settings,
        feed_url=slow_feed.url,
        feed_deadline=timedelta(seconds=1),
        feed_private_hosts=("127.0.0.1",),
    )
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    return create_app(settings)


def test_the_desk_import_answers_at_its_deadline_with_the_reason(
    app: Flask, desk: Desk, slow_feed: RawServer
) -> None:
    client: FlaskClient = app.test_client()
    token = logged_in(client)
    issue_id = int(post(client, "/desk/issues", token).headers["Location"].rsplit("/", 1)[1])
    imported = post(client, f"/desk/issues/{issue_id}/import", token)
    assert imported.status_code == 303
    page = client.get(imported.headers["Location"]).get_data(as_text=True)
    assert re.search(rf"{re.escape(slow_feed.url)}: no complete answer within 1 s", page)
    assert article_count(desk.engine) == 0

"""Shared fixtures: real parts only (SQLite in a temporary folder and PostgreSQL on loopback,
each test on both; aiosmtpd on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# hypothesis's pytest plugin imports this module at the run's very end when no test did;
# run alone, tests/test_desk_week.py then ended on CPython 3.11.7 with "SystemError: AST
# constructor recursion depth mismatch" from that import's compile(), after its tests
# had passed (a fault in CPython's compile(), not in the desk). Imported here, at the
# start, the run ends as its tests did.
import hypothesis.internal.observability  # noqa: F401
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient

from newsletter.app import Desk, init_desk
from newsletter.curation.articles import import_sources
from newsletter.curation.issues import approve, new_issue, pick, set_fields
from newsletter.models import Issue
from newsletter.readers.consent import Evidence, current_policy
from newsletter.readers.subscribers import add_active_reader
from newsletter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FEEDS = Path(__file__).parent / "feeds"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday; that week's Friday is the 27th
SECRET = "test-secret-key-0123456789-abcdefghijklmnopq"  # 43 characters, as init makes

READERS = (
    ("anna@example.org", "Анна Петрова"),
    ("tom@example.org", "Tom Baker"),
    ("noname@example.net", ""),
)


# another server: TEST_POSTGRES_URL=postgresql+psycopg://user@host:port/database
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_postgres_missing: list[str] = []  # why no server answered, probed once a session


def _postgres_admin() -> sa.Engine:
    if _postgres_missing:
        pytest.skip(_postgres_missing[0])
    admin = sa.create_engine(POSTGRES, poolclass=sa.NullPool)
    try:
        with admin.connect():
            pass
    except Exception as exc:  # no server here: the postgresql variants skip, saying why
        _postgres_missing.append(
            f"no PostgreSQL at {sa.make_url(POSTGRES).render_as_string()} ({type(exc).__name__})"
        )
        pytest.skip(_postgres_missing[0])
    return admin


def postgres_schema() -> Iterator[str]:
    """A URL to a schema of its own on the test server, dropped afterwards with every
    connection to it (subprocesses' too: they carry the schema's name as application_name;
    this runs before the engines are disposed, so it ends their connections itself)."""
    admin = _postgres_admin()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        url = sa.make_url(POSTGRES).update_query_dict(
            {"application_name": schema, "options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": schema},
            )
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every test that stores anything runs on both databases (`-k sqlite` for one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/subscribers/newsletter.db"
    else:
        yield from postgres_schema()


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty database of the same kind, for a fresh desk beside the test's own."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/fresh/newsletter.db"
    else:
        yield from postgres_schema()


@pytest.fixture(autouse=True)
def _processes_end_with_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every process a test starts ends with it, however the test ends (a failed assertion
    must not leave a sender, a worker or a scheduler running)."""
    started: list[subprocess.Popen[Any]] = []
    original = subprocess.Popen.__init__

    def recording(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        started.append(self)

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    try:
        yield
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    """Every engine a test connected (a Desk's, an app's) gives its connections back at the
    end, so none pile up on the server."""
    engines: dict[int, sa.Engine] = {}  # held to the end: one dropped early would leave
    # its pooled connections for the garbage collector, and psycopg warns about those

    def remember(conn: sa.Connection) -> None:
        engines.setdefault(id(conn.engine), conn.engine)

    sa.event.listen(sa.Engine, "engine_connect", remember)
    try:
        yield
    finally:
        sa.event.remove(sa.Engine, "engine_connect", remember)
        for engine in engines.values():
            engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        outbox=tmp_path / "outbox",
        templates=ROOT / "templates",
        privacy_dir=ROOT / "privacy",
        base_url="https://news.example.org",
        secret_key=SECRET,
        site_url="https://example.org",
        support_url="https://example.org/support",
        from_addr="Еженедельник <weekly@example.org>",
        list_id="weekly.example.org",
    )


@pytest.fixture
def desk(settings: Settings) -> Desk:
    desk = Desk(settings)
    init_desk(desk, NOW)
    return desk


def seed_readers(engine: sa.Engine, readers: tuple[tuple[str, str], ...] = READERS) -> list[int]:
    with engine.begin() as conn:
        policy = current_policy(conn)
        evidence = Evidence(source="tests", ip="192.0.2.1")
        return [add_active_reader(conn, e, n, evidence, policy, NOW) for e, n in readers]


def approved_issue(engine: sa.Engine, feed: str = "liga-ru-2021.xml", picks: int = 5) -> Issue:
    """An approved issue with Cyrillic articles and subject."""
    import_sources(engine, [str(FEEDS / feed)], NOW)
    with engine.begin() as conn:
        issue = new_issue(conn, NOW.date().replace(day=27), NOW)
        article_ids = conn.execute(
            sa.text("SELECT id FROM articles ORDER BY id LIMIT :n"), {"n": picks}
        ).scalars()
        pick(conn, issue.id, list(article_ids), NOW)
        set_fields(
            conn,
            issue.id,
            NOW,
            subject="Главное за неделю: футбол, политика и экономика",
            preheader="Пять историй, которые выбрали редакторы — и одна хорошая новость.",
            note="Доброе утро! Это выпуск недели.\n\nСпасибо, что читаете.",
        )
        return approve(conn, issue.id, NOW)


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    encrypted: bool = False


@dataclass
class RecordingHandler:
    """An SMTP server's handler that keeps every message and can refuse some recipients."""

    received: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient -> reply
    pipelining: bool = False  # offer RFC 2920 (aiosmtpd reads commands in order either way)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        offered = ["250-PIPELINING"] if self.pipelining else []
        return [responses[0], *offered, *responses[1:]]  # the first line is the greeting

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                encrypted=session.ssl is not None,
            )
        )
        return "250 2.0.0 queued"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SMTPServer:
    handler: RecordingHandler
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


@contextmanager
def smtp_serving(handler: RecordingHandler) -> Iterator[SMTPServer]:
    """An aiosmtpd server on a free loopback port for the block, with this handler."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer(handler, port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with smtp_serving(RecordingHandler()) as server:
        yield server


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server: SMTPServer) -> Settings:
    return replace(settings, smtp_url=smtp_server.url)


@pytest.fixture
def app(desk: Desk, smtp_settings: Settings) -> Flask:
    """The web app over the `desk` fixture's database, mailing the loopback SMTP server
    (a test module needing another app defines its own `app`)."""
    from newsletter.web import create_app

    return create_app(smtp_settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def real_now() -> datetime:
    """The wall clock, for what the web app stamps with its own now."""
    return datetime.now(UTC)  # clock: the web app's own clock, which a live server reads


# the live server and Chromium fixtures, for the browser tests
def wait_for_mail(smtp_server: SMTPServer, count: int, seconds: float = 15) -> None:
    """Until the server has `count` messages: some are sent after the page has answered."""
    import time

    deadline = time.monotonic() + seconds
    while len(smtp_server.handler.received) < count:
        assert time.monotonic() < deadline, f"fewer than {count} messages in {seconds} s"
        time.sleep(0.02)


class ClosingClient(FlaskClient):
    """Closes each response once read, as a real server does after sending it; that runs
    what the app does after answering (waking the notices' thread), and then waits for
    that thread to finish, so a test reads the mail its request caused."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        response.get_data()
        response.close()
        drainer = self.application.config.get("NOTICES")
        if drainer is not None:
            assert drainer.idle(timeout=30), "the notices' thread is still sending after 30 s"
        return response


@pytest.fixture(autouse=True)
def _closing_test_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Flask, "test_client_class", ClosingClient)


pytest_plugins = ("tests.browser",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the recording SMTP server in its own process is slow too."""
    for item in items:
        if "recorders" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)

"""The public archive, for people deciding whether to sign up: the list of sent issues,
each issue as readers got it without anything of a reader's in it, the Atom feed, the
sign-up form's preview link, and the editors' choice to keep an issue out. Browser tests
at the end, in Chromium."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import lxml.html
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.curation.issues import new_issue, pick, set_fields, set_in_archive
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.web import create_app
from newsletter.web.archive import slug

from .browser import LiveServer
from .conftest import NOW, approved_issue, seed_readers

ATOM = "{http://www.w3.org/2005/Atom}"


def path_of(issue_id: int, subject: str) -> str:
    """The issue's address in the archive, as a link carries it (percent-encoded)."""
    return f"/archive/{issue_id}-{quote(slug(subject))}"


def sent(desk: Desk, issue_id: int, days_ago: int = 0) -> None:
    with desk.engine.begin() as conn:
        conn.execute(db.issues.update().where(db.issues.c.id == issue_id).values(
            status="sent", sent_at=NOW - timedelta(days=days_ago)))  # fmt: skip


@pytest.fixture
def app(desk: Desk, settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def archive(desk: Desk) -> dict[str, int]:
    """A sent issue, a draft after it, and a sent one its editors keep out."""
    seed_readers(desk.engine)
    first = approved_issue(desk.engine).id
    sent(desk, first, days_ago=7)
    with desk.engine.begin() as conn:
        articles = list(conn.execute(sa.select(db.articles.c.id).limit(2)).scalars())
        hidden = new_issue(conn, date(2026, 11, 20), NOW).id
        pick(conn, hidden, articles, NOW)
        set_fields(conn, hidden, NOW, subject="Withdrawn: a correction", preheader="x")
        set_in_archive(conn, hidden, False, NOW)
        draft = new_issue(conn, date(2026, 12, 4), NOW).id
        set_fields(conn, draft, NOW, subject="Next week, not sent yet")
    sent(desk, hidden, days_ago=14)
    return {"sent": first, "hidden": hidden, "draft": draft}


def subject_of(desk: Desk, issue_id: int) -> str:
    with desk.engine.connect() as conn:
        return str(conn.execute(sa.select(db.issues.c.subject).where(
            db.issues.c.id == issue_id)).scalar_one())  # fmt: skip


def test_the_archive_lists_only_sent_issues_its_editors_let_it_show(
    client: FlaskClient, desk: Desk, archive: dict[str, int]
) -> None:
    page = client.get("/archive")
    text = page.get_data(as_text=True)
    subject = subject_of(desk, archive["sent"])
    assert page.status_code == 200 and subject in text
    assert f'href="{path_of(archive["sent"], subject)}"' in text
    assert "Withdrawn: a correction" not in text and "Next week, not sent yet" not in text
    assert '<link rel="canonical" href="https://news.example.org/archive">' in text
    for issue_id in (archive["hidden"], archive["draft"], 999):
        missing = client.get(f"/archive/{issue_id}-x")
        assert missing.status_code == 404, issue_id
        assert f"There is no issue {issue_id} in the archive." in missing.get_data(as_text=True)


def test_an_archived_issue_is_as_readers_got_it_with_nothing_of_a_readers(
    client: FlaskClient, desk: Desk, archive: dict[str, int]
) -> None:
    issue_id = archive["sent"]
    subject = subject_of(desk, issue_id)
    path = path_of(issue_id, subject)
    assert client.get(f"/archive/{issue_id}").headers["Location"] == path  # one address
    assert client.get(f"/archive/{issue_id}-old-words").status_code == 301
    answer = client.get(path)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and subject in html
    with desk.engine.connect() as conn:
        readers = conn.execute(sa.select(db.subscribers.c.email, db.subscribers.c.name)).all()
    for email, name in readers:
        assert email not in html and (not name or name not in html)
    for private in ("/unsubscribe/", "/view/", "/confirm/", "Unsubscribe", "archive.invalid",
                    "subscribed to"):  # fmt: skip
        assert private not in html, private
    assert f'<link rel="canonical" href="https://news.example.org{path}">' in html
    assert '<meta property="og:title" content="' in html and 'property="og:description"' in html
    assert 'action="/subscribe"' in html and 'name="consent"' in html  # the sign-up form
    links = {a.text_content(): a.get("href") for a in lxml.html.fromstring(html).iter("a")}
    assert links["Sign up"] == "https://news.example.org/subscribe"  # was: Unsubscribe
    assert "form-action 'self'" in answer.headers["Content-Security-Policy"]
    assert "script-src" not in answer.headers["Content-Security-Policy"]


def test_the_archives_atom_feed_names_each_shown_issue(
    client: FlaskClient, desk: Desk, archive: dict[str, int]
) -> None:
    answer = client.get("/archive/feed.atom")
    assert answer.mimetype == "application/atom+xml"
    feed = ET.fromstring(answer.get_data())
    entries = feed.findall(f"{ATOM}entry")
    subject = subject_of(desk, archive["sent"])
    assert [e.findtext(f"{ATOM}title") for e in entries] == [subject]
    link = entries[0].find(f"{ATOM}link")
    assert link is not None
    assert link.get("href") == f"https://news.example.org{path_of(archive['sent'], subject)}"


def test_the_sign_up_form_previews_the_latest_issue_once_there_is_one(
    client: FlaskClient, desk: Desk
) -> None:
    assert "Preview: the latest issue" not in client.get("/subscribe").get_data(as_text=True)
    assert client.get("/archive/latest").headers["Location"] == "/archive"
    issue_id = approved_issue(desk.engine).id
    sent(desk, issue_id)
    page = client.get("/subscribe").get_data(as_text=True)
    assert '<a href="https://news.example.org/archive/latest">Preview: the latest issue</a>' in page
    assert "Preview: the latest issue" in client.get("/subscribe/embed.txt").get_data(as_text=True)
    assert client.get("/archive/latest").headers["Location"].startswith(f"/archive/{issue_id}-")


def test_the_archive_pages_by_twenty_and_refuses_pages_that_are_not(
    client: FlaskClient, desk: Desk
) -> None:
    with desk.engine.begin() as conn:
        for n in range(23):
            issue = new_issue(conn, date(2026, 1, 2) + timedelta(days=7 * n), NOW)
            set_fields(conn, issue.id, NOW, subject=f"Week {n:02d}")
        conn.execute(db.issues.update().values(status="sent", sent_at=NOW))
    first = client.get("/archive").get_data(as_text=True)
    assert "Week 22" in first and "Week 03" in first and "Week 02" not in first
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get("/archive?page=2").get_data(as_text=True)
    assert "Week 02" in second and "Week 00" in second and "Week 03" not in second
    for bad in ("3", "0", "-1", "abc", "9" * 40):
        assert client.get(f"/archive?page={bad}").status_code == 404, bad


def test_the_archive_speaks_the_sites_language(desk: Desk, settings: Settings) -> None:
    issue_id = approved_issue(desk.engine).id
    sent(desk, issue_id)
    client = create_app(replace(settings, language="ru")).test_client()
    text = client.get("/archive").get_data(as_text=True)
    assert "Все выпуски, которые мы отправили" in text and "Подписаться" in text
    page = client.get(client.get(f"/archive/{issue_id}").headers["Location"])
    assert "Получайте следующий выпуск" in page.get_data(as_text=True)


# ------------------------------------------------------------------ in Chromium


@pytest.mark.slow
def test_a_visitor_reads_the_archive_and_signs_up_from_an_issue(
    desk: Desk, live_server: LiveServer, page: Any, screenshots: Path
) -> None:
    seed_readers(desk.engine)
    issue_id = approved_issue(desk.engine).id
    sent(desk, issue_id)
    subject = subject_of(desk, issue_id)
    page.goto(f"{live_server.url}/subscribe")
    page.get_by_role("link", name="Preview: the latest issue").click()
    assert page.url.endswith(path_of(issue_id, subject))
    assert subject in page.title() or subject in page.content()
    page.screenshot(path=str(screenshots / "archive-issue-1280.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(screenshots / "archive-issue-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_label("Email address").fill("visitor@example.org")
    page.locator("#newsletter-consent").check()
    page.get_by_role("button", name="Subscribe").click()
    assert page.locator("h1").inner_text() == "Check your inbox"
    with desk.engine.connect() as conn:
        status = conn.execute(sa.select(db.subscribers.c.status).where(
            db.subscribers.c.email == "visitor@example.org")).scalar_one()  # fmt: skip
    assert status == "pending"  # double opt-in, as from the sign-up page
    page.goto(f"{live_server.url}/archive")
    page.get_by_role("link", name=subject).wait_for()
    page.screenshot(path=str(screenshots / "archive-list.png"), full_page=True)

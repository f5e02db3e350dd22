"""The preview app: the issue as readers get it, re-rendered when a template changes."""

from __future__ import annotations

import email
import os
import re
import shutil
from dataclasses import replace
from datetime import timedelta
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.compose.copies import composed_for_preview, find_reader
from newsletter.compose.messages import build_message
from newsletter.curation.issues import get_issue, set_fields, unapprove
from newsletter.models import Reader
from newsletter.readers.tokens import reader_token
from newsletter.store import tables as db
from newsletter.web import create_app, preview_app

from .conftest import NOW, ROOT, approved_issue, seed_readers


class AtItsPort(FlaskClient):
    """Requests addressed as a browser on this machine addresses them: 127.0.0.1:8001."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_url", "http://127.0.0.1:8001")
        return super().open(*args, **kwargs)


@pytest.fixture
def client(desk, tmp_path: Path):
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    app = preview_app(replace(desk.settings, templates=templates), 8001)
    app.test_client_class = AtItsPort
    return app.test_client(), issue.id, templates


def test_the_page_shows_both_widths_text_and_preflight(client) -> None:
    http, issue_id, _ = client
    page = http.get(f"/preview/{issue_id}").get_data(as_text=True)
    assert 'width="640"' in page and 'width="375"' in page
    assert "Gmail clips above" in page and "Арсенал" in page


def test_the_html_is_inlined_and_the_eml_parses(client) -> None:
    http, issue_id, _ = client
    html = http.get(f"/preview/{issue_id}/html").get_data(as_text=True)
    assert 'class="card"' in html and "style=" in html
    raw = http.get(f"/preview/{issue_id}/eml")
    assert raw.mimetype == "message/rfc822"
    message = email.message_from_bytes(raw.get_data(), policy=default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert http.get(f"/preview/{issue_id}/preflight").get_json()["ok"] is True


def test_preview_as_a_reader_uses_their_name(client) -> None:
    http, issue_id, _ = client
    text = http.get(f"/preview/{issue_id}/text?as=anna@example.org").get_data(as_text=True)
    assert "Анна Петрова" in text
    missing = http.get(f"/preview/{issue_id}/text?as=nobody@example.org")
    page = missing.get_data(as_text=True)
    assert missing.status_code == 404 and "No subscriber nobody@example.org" in page
    assert "NotFound" not in page and "<h1>Not found</h1>" in page  # the desk's words


def test_a_template_edit_shows_on_the_next_load(client) -> None:
    http: FlaskClient
    http, issue_id, templates = client
    before = http.get(f"/preview/{issue_id}/version").get_data(as_text=True)
    path = templates / "issue.txt"
    path.write_text(path.read_text() + "\nA line the designer just added.\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert http.get(f"/preview/{issue_id}/version").get_data(as_text=True) != before
    text = http.get(f"/preview/{issue_id}/text").get_data(as_text=True)
    assert "A line the designer just added." in text


def test_a_template_edit_shows_after_the_issue_was_previewed(client) -> None:
    http, issue_id, templates = client
    assert "A line the designer" not in http.get(f"/preview/{issue_id}/text").get_data(as_text=True)
    path = templates / "issue.txt"
    path.write_text(path.read_text() + "\nA line the designer just added.\n")
    text = http.get(f"/preview/{issue_id}/text").get_data(as_text=True)
    assert "A line the designer just added." in text


def test_an_issue_edit_shows_after_the_issue_was_previewed(desk: Desk, client) -> None:
    http, issue_id, _ = client
    assert "Срочно" not in http.get(f"/preview/{issue_id}/html").get_data(as_text=True)
    with desk.engine.begin() as conn:
        unapprove(conn, issue_id, NOW)
        set_fields(conn, issue_id, NOW, subject="Срочно: новый заголовок")
    assert "Срочно: новый заголовок" in http.get(f"/preview/{issue_id}/html").get_data(as_text=True)


def test_the_page_and_its_frames_share_one_rendering_but_not_its_date(desk: Desk, client) -> None:
    """The page's preflight and its two frames render the issue once, not three times; the
    message itself is made at each call (its Date is the moment it was asked for)."""
    _, issue_id, templates = client
    settings = replace(desk.settings, templates=templates)
    with desk.engine.connect() as conn:
        issue = get_issue(conn, issue_id)
    first = composed_for_preview(issue, settings, NOW)
    later = composed_for_preview(issue, settings, NOW + timedelta(days=3))
    assert later.rendered is first.rendered and later.preflight is first.preflight
    reader = Reader(0, "reader@example.org", "")
    dates = [
        email.message_from_bytes(build_message(c.prepared, reader, c.sender.reader_values(
            reader, issue_id), "<x@y>"), policy=default)["Date"]
        for c in (first, later)
    ]  # fmt: skip
    assert dates[0].datetime == NOW and dates[1].datetime == NOW + timedelta(days=3)
    other = composed_for_preview(issue, replace(settings, site_name="Другое"), NOW)
    assert other.rendered is not first.rendered
    (templates / "issue.html").touch()
    assert composed_for_preview(issue, settings, NOW).rendered is not first.rendered


def test_an_unknown_issue_is_a_404(client) -> None:
    http, _, _ = client
    assert http.get("/preview/999").status_code == 404


# ------------------------------------------------------------------ as an attacker finds it


def status_of(desk: Desk, email_address: str) -> str:
    with desk.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(db.subscribers.c.status).where(db.subscribers.c.email == email_address)
            ).scalar_one()
        )


def test_the_open_preview_serves_no_readers_page_and_no_desk(client, desk: Desk) -> None:
    http, issue_id, _ = client
    with desk.engine.connect() as conn:
        anna = find_reader(conn, "anna@example.org")
    token = reader_token(desk.settings.require_secret(), anna.id)  # a real, valid link
    for method, path in [
        ("POST", f"/unsubscribe/{token}"),
        ("GET", f"/unsubscribe/{token}"),
        ("GET", f"/view/{issue_id}/{token}"),
        ("POST", "/subscribe"),
        ("POST", "/api/subscribe"),
        ("GET", "/desk/"),
        ("GET", "/desk/readers"),
    ]:
        assert http.open(path, method=method).status_code == 404, (method, path)
    assert status_of(desk, "anna@example.org") == "active"


def test_the_open_preview_refuses_a_host_that_is_not_this_machine(client) -> None:
    http, issue_id, _ = client
    rebound = http.get(f"/preview/{issue_id}/text", base_url="http://attacker.example:8001")
    assert rebound.status_code == 421
    assert rebound.get_data(as_text=True) == "this preview answers only at 127.0.0.1:8001\n"
    other_port = http.get(f"/preview/{issue_id}/text", base_url="http://127.0.0.1:9999")
    assert other_port.status_code == 421
    assert (
        http.get(f"/preview/{issue_id}/text", base_url="http://localhost:8001").status_code == 200
    )


def test_a_readers_copy_in_a_preview_unsubscribes_no_one(client, desk: Desk) -> None:
    """The preview as Anna looks like her copy; its one-click link, posted to the real site,
    is refused and she stays subscribed."""
    http, issue_id, _ = client
    raw = http.get(f"/preview/{issue_id}/eml?as=anna@example.org").get_data()
    message = email.message_from_bytes(raw, policy=default)
    assert "Анна Петрова" in str(message["To"])
    link = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", str(message["List-Unsubscribe"]))
    assert link
    site = create_app(desk.settings).test_client()
    answer = site.post(urlsplit(link.group(1)).path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 400
    assert status_of(desk, "anna@example.org") == "active"

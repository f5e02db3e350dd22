"""GET, HEAD and OPTIONS only ever show: sent to every route of the app, with valid tokens
and as a signed-in editor, they change nothing in the database and send no mail (mail
scanners open links with HEAD; a person's click is a POST)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from newsletter.app import Desk
from newsletter.editors import add_editor
from newsletter.readers.consent import Evidence, current_policy
from newsletter.readers.optin import Limits, SignUp, sign_up
from newsletter.readers.tokens import RECONSENT, reader_token, timed_token
from newsletter.store import tables as db
from newsletter.store.copy import table_sums
from newsletter.web import create_app

from .conftest import NOW, SECRET, SMTPServer, approved_issue, seed_readers
from .test_desk import EDITOR, PASSWORD, logged_in

SAFE = ("GET", "HEAD", "OPTIONS")


@pytest.fixture
def app(desk: Desk, smtp_server: SMTPServer) -> Flask:
    # the tokens are made at NOW; the app reads the wall clock
    settings = replace(desk.settings, smtp_url=smtp_server.url, confirm_ttl=timedelta(days=3650))
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    return create_app(settings)


def tokens(desk: Desk) -> dict[str, str]:
    """A valid token for each kind of link, each naming a reader it could change."""
    anna, tom, _ = seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        request = SignUp("lena@example.org", True, "Lena", Evidence(source="tests"))
        mail = sign_up(conn, request, Limits(), SECRET, NOW)
        assert mail is not None
        conn.execute(db.subscribers.update().where(db.subscribers.c.id == tom)
                     .values(status="reconsent"))  # fmt: skip
        version = current_policy(conn).version
    return {
        "public.confirm_page": mail.token,
        "public.confirm_click": mail.token,
        "public.reconsent_page": timed_token(SECRET, RECONSENT, tom, version, NOW),
        "public.reconsent_click": timed_token(SECRET, RECONSENT, tom, version, NOW),
        "reader": reader_token(SECRET, anna),
    }


def url_for_rule(rule: object, values: dict[str, str]) -> str | None:
    path = str(rule)
    for name in getattr(rule, "arguments", ()):
        if name not in values:
            return None
        path = path.replace(f"<{name}>", values[name]).replace(f"<int:{name}>", values[name])
    return path


def test_get_head_and_options_change_nothing_on_any_route(
    app: Flask, desk: Desk, smtp_server: SMTPServer
) -> None:
    issue = approved_issue(desk.engine)
    links = tokens(desk)
    with desk.engine.begin() as conn:  # a sent issue, so its view-online link answers
        conn.execute(db.issues.update().where(db.issues.c.id == issue.id).values(status="sent"))
    with desk.engine.connect() as conn:
        version = current_policy(conn).version
        reader = conn.execute(sa.select(db.subscribers.c.id).order_by(db.subscribers.c.id)).scalar()
        editor_id = conn.execute(sa.select(db.editors.c.id)).scalar()
    editor = app.test_client()
    logged_in(editor)
    received = len(smtp_server.handler.received)
    with desk.engine.connect() as conn:
        before = table_sums(conn)
    tried = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        token = links.get(rule.endpoint, links["reader"])
        values = {"token": token, "issue_id": str(issue.id), "issue": str(issue.id),
                  "subscriber_id": str(reader), "version": version,
                  "editor_id": str(editor_id), "words": "any-words"}  # fmt: skip
        path = url_for_rule(rule, values)
        assert path is not None, f"no value for a part of {rule}"
        for client in (editor, app.test_client()):
            for method in SAFE:
                answer: object = client.open(path, method=method)
                status = getattr(answer, "status_code", 0)
                assert status < 500, (method, path, status)
                tried.append((method, str(rule)))
    with desk.engine.connect() as conn:
        after = table_sums(conn)
    changed = [b.table for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [], f"{changed} changed by a GET, HEAD or OPTIONS"
    assert len(smtp_server.handler.received) == received, "a safe method sent mail"
    for must in ("/confirm/<token>", "/unsubscribe/<token>", "/reconsent/<token>",
                 "/desk/login", "/subscribe"):  # fmt: skip
        assert ("HEAD", must) in tried, must


def test_a_huge_body_is_refused_unread_and_every_page_carries_careful_headers(
    app: Flask, desk: Desk
) -> None:
    client = app.test_client()
    huge = client.post("/api/subscribe", data=b"{" + b" " * (32 * 1024 * 1024) + b"}",
                       content_type="application/json")  # fmt: skip
    assert huge.status_code == 413 and "error" in huge.get_json()
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.subscribers)).scalar() == 0
    for path in ("/subscribe", "/desk/login", "/privacy", "/nowhere"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "SAMEORIGIN", path
        assert headers["Referrer-Policy"] == "same-origin", path
        policy = headers["Content-Security-Policy"]
        assert "script-src 'nonce-" in policy and "frame-ancestors 'self'" in policy, path
        assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0], path


def test_only_scripts_with_the_answers_nonce_run_and_an_email_runs_none(
    app: Flask, desk: Desk
) -> None:
    """The desk's drag-and-drop script carries the nonce its answer's policy names; a new
    answer gets a new nonce; the email as a browser shows it (view online, the preview's
    frames) may run no script at all, whatever an article's summary held."""
    client = app.test_client()
    token = logged_in(client)
    issue_id = int(
        client.post("/desk/issues", data={"csrf": token}).headers["Location"].rsplit("/", 1)[1]
    )
    nonces = []
    for _ in range(2):
        answer = client.get(f"/desk/issues/{issue_id}")
        policy = answer.headers["Content-Security-Policy"]
        nonce = policy.split("script-src 'nonce-", 1)[1].split("'", 1)[0]
        assert f'<script src="/static/desk.js" nonce="{nonce}" defer>' in answer.get_data(
            as_text=True
        )
        nonces.append(nonce)
    assert nonces[0] != nonces[1]
    preview = client.get(f"/preview/{issue_id}/html").headers["Content-Security-Policy"]
    assert preview.startswith("default-src 'none'") and "script-src" not in preview

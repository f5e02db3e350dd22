"""The editors' desk through Flask's test client: login, CSRF, every action on an issue,
the send status and the readers, on a real SQLite file and a real SMTP server."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from newsletter import editors
from newsletter.app import Desk
from newsletter.cli import cli
from newsletter.curation.issues import get_issue
from newsletter.editors import add_editor
from newsletter.store import tables as db
from newsletter.web import create_app

from .conftest import NOW, ROOT, SMTPServer, seed_readers

EDITOR, PASSWORD = "editor@example.org", "correct horse battery"


@pytest.fixture
def app(desk: Desk, smtp_server: SMTPServer) -> Flask:
    settings = replace(
        desk.settings,
        smtp_url=smtp_server.url,
        base_url="http://127.0.0.1:8000",
        feed_url=str(ROOT / "newsletter" / "defaults" / "demo_feed.xml"),
    )
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    return create_app(settings)


def csrf_of(client: FlaskClient, path: str = "/desk/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def logged_in(client: FlaskClient) -> str:
    token = csrf_of(client)
    answer = client.post("/desk/login", data={"email": EDITOR, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return csrf_of(client, "/desk/issues")  # a new session: a new token


ISSUE_CHANGE = re.compile(r"^/desk/issues/(\d+)/(?!test$|import$|send$|status$)\w+$")


def shown_revision(client: FlaskClient, issue_id: str) -> str:
    """The revision the issue's page shows, as the page's forms carry it."""
    page = client.get(f"/desk/issues/{issue_id}").get_data(as_text=True)
    found = re.search(r'data-revision="(\d+)"', page)
    return found.group(1) if found else ""


def post(client: FlaskClient, path: str, token: str, **form: Any) -> Any:
    """A form of the desk's, posted: a change to an issue carries the revision its page
    shows, as the page's own forms do."""
    change = ISSUE_CHANGE.match(path)
    if change and "revision" not in form:
        form["revision"] = shown_revision(client, change.group(1))
    return client.post(path, data={"csrf": token, **form})


def issue_page(client: FlaskClient, issue_id: int) -> str:
    answer = client.get(f"/desk/issues/{issue_id}")
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_every_desk_page_and_the_preview_need_a_login(client: FlaskClient) -> None:
    for path in ("/desk/", "/desk/issues", "/desk/issues/1", "/desk/readers", "/preview/1"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/desk/login?next=")
    token = csrf_of(client)  # a session with a token but no login
    assert post(client, "/desk/issues", token).status_code == 401


def test_a_post_without_the_sessions_token_is_refused_and_changes_nothing(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    assert client.post("/desk/issues").status_code == 400
    assert post(client, "/desk/issues", "forged").status_code == 400
    with desk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.issues)).scalar() == 0
    assert post(client, "/desk/issues", token).status_code == 303


def test_login_refuses_alike_then_slows_down_and_sets_a_careful_cookie(
    app: Flask, desk: Desk
) -> None:
    client = app.test_client()
    token = csrf_of(client)
    wrong = post(client, "/desk/login", token, email=EDITOR, password="nope")
    unknown = post(client, "/desk/login", token, email="who@example.org", password="nope")
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong address or password" in wrong.get_data(as_text=True)
    assert "wrong address or password" in unknown.get_data(as_text=True)
    for _ in range(3):
        post(client, "/desk/login", token, email=EDITOR, password="still wrong")
    right_but_late = post(client, "/desk/login", token, email=EDITOR, password=PASSWORD)
    assert right_but_late.status_code == 429
    assert "too many failed logins" in right_but_late.get_data(as_text=True)
    with desk.engine.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(db.login_failures)).scalar()
    assert kept == 5

    secure = create_app(replace(app.config["DESK"].settings, base_url="https://news.example.org"))
    https = secure.test_client()
    https.environ_base["wsgi.url_scheme"] = "https"
    first = https.get("/desk/login")  # the session starts with the login form's token
    cookie = first.headers["Set-Cookie"]
    token = csrf_of(https)
    answer = post(https, "/desk/login", token, email="editor@example.org", password=PASSWORD)
    assert answer.status_code == 429  # the same address, the same database: still waiting
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_login_goes_where_it_was_asked_but_only_inside_the_desk(client: FlaskClient) -> None:
    token = csrf_of(client)
    answer = post(client, "/desk/login", token, email=EDITOR, password=PASSWORD,
                  next="https://evil.example/")  # fmt: skip
    assert answer.headers["Location"] == "/desk/"
    client.post("/desk/logout", data={"csrf": csrf_of(client, "/desk/issues")})
    token = csrf_of(client)
    answer = post(client, "/desk/login", token, email=EDITOR, password=PASSWORD,
                  next="/desk/readers")  # fmt: skip
    assert answer.headers["Location"] == "/desk/readers"
    assert client.get("/desk/readers").status_code == 200
    assert post(client, "/desk/logout", csrf_of(client, "/desk/issues")).status_code == 303
    assert client.get("/desk/readers").status_code == 302  # logged out


def copied_session(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of the client's session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    other = app.test_client()
    other.set_cookie("session", cookie.value)
    return other


def test_logging_out_ends_the_session_for_a_copied_cookie_too(app: Flask) -> None:
    client = app.test_client()
    token = logged_in(client)
    stolen = copied_session(app, client)
    assert stolen.get("/desk/readers").status_code == 200  # the cookie alone signs in

    assert post(client, "/desk/logout", token).status_code == 303

    assert stolen.get("/desk/readers").status_code == 302  # ended on the server
    assert client.get("/desk/readers").status_code == 302


def test_signing_in_again_ends_the_browsers_earlier_session(app: Flask) -> None:
    client = app.test_client()
    logged_in(client)
    earlier = copied_session(app, client)
    token = logged_in(client)  # the same browser, again
    assert earlier.get("/desk/readers").status_code == 302
    assert post(client, "/desk/logout", token).status_code == 303
    assert client.get("/desk/readers").status_code == 302


def test_a_login_checked_against_a_password_changed_meanwhile_is_refused(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password check takes a while: a new password set by `editors add` during it wins,
    and the login with the old one opens no session."""
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, NOW)
    real_check = editors.check_password_hash

    def check_while_the_password_changes(hashed: str, password: str) -> bool:
        right = real_check(hashed, password)
        with desk.engine.begin() as other:
            add_editor(other, EDITOR, "a brand new passphrase", NOW)
        return right

    monkeypatch.setattr(editors, "check_password_hash", check_while_the_password_changes)
    with desk.engine.begin() as conn, pytest.raises(editors.LoginRefused):
        editors.log_in(conn, EDITOR, PASSWORD, "192.0.2.9", NOW)
    monkeypatch.setattr(editors, "check_password_hash", real_check)
    with desk.engine.begin() as conn:
        assert editors.log_in(conn, EDITOR, "a brand new passphrase", "192.0.2.9", NOW)


def test_a_session_ends_after_its_lifetime_whatever_the_cookie_says(app: Flask, desk: Desk) -> None:
    client = app.test_client()
    logged_in(client)
    assert client.get("/desk/readers").status_code == 200
    with desk.engine.begin() as conn:  # twelve hours later
        conn.execute(db.desk_sessions.update().values(expires_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert client.get("/desk/readers").status_code == 302


def test_a_new_password_signs_the_editor_out_of_every_browser(app: Flask, desk: Desk) -> None:
    laptop, phone = app.test_client(), app.test_client()
    logged_in(laptop)
    logged_in(phone)
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, "a brand new passphrase", NOW)
    assert laptop.get("/desk/readers").status_code == 302
    assert phone.get("/desk/readers").status_code == 302
    with desk.engine.connect() as conn:
        held = conn.execute(sa.select(db.desk_sessions.c.token_hash)).scalars().all()
    assert held == []


def test_the_database_keeps_only_a_hash_of_the_session_token(app: Flask, desk: Desk) -> None:
    client = app.test_client()
    logged_in(client)
    cookie = client.get_cookie("session")
    assert cookie is not None
    with desk.engine.connect() as conn:
        (held,) = conn.execute(sa.select(db.desk_sessions.c.token_hash)).scalars().all()
    token = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[union-attr]
    assert held == hashlib.sha256(token["editor_session"].encode()).hexdigest()
    assert token["editor_session"] not in held


def test_an_editor_builds_approves_and_tests_the_issue_in_the_browser_forms(
    client: FlaskClient, desk: Desk, smtp_server: SMTPServer
) -> None:
    token = logged_in(client)
    seed_readers(desk.engine)
    assert client.get("/desk/").status_code == 200  # no issue this week yet: a button to start one
    created = post(client, "/desk/issues", token)
    issue_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert client.get("/desk/").headers["Location"] == f"/desk/issues/{issue_id}"

    imported = post(client, f"/desk/issues/{issue_id}/import", token)
    assert imported.status_code == 303
    page = client.get(imported.headers["Location"]).get_data(as_text=True)
    assert re.search(r"feed: \d+ added", page)
    ids = [
        int(a) for a in re.findall(r'name="article" value="(\d+)"><button aria-label="Add', page)
    ]
    for article in ids[:3]:
        post(client, f"/desk/issues/{issue_id}/pick", token, article=str(article))
    post(client, f"/desk/issues/{issue_id}/move", token, article=str(ids[2]), direction="up")
    post(client, f"/desk/issues/{issue_id}/item", token, article=str(ids[0]),
         title="Заголовок для рассылки", summary="", alt="Трамвай на новой линии")  # fmt: skip
    post(client, f"/desk/issues/{issue_id}/fields", token, subject="Неделя в трёх историях",
         preheader="Выбор редакции", note="Здравствуйте!", appeal="on")  # fmt: skip
    with desk.engine.connect() as conn:
        issue = get_issue(conn, issue_id)
    assert [i.article.id for i in issue.items] == [ids[0], ids[2], ids[1]]
    assert issue.items[0].title == "Заголовок для рассылки"
    assert issue.items[0].alt_override == "Трамвай на новой линии"
    assert issue.subject == "Неделя в трёх историях" and issue.appeal and not issue.by_section
    assert 'value="Трамвай на новой линии"' in issue_page(client, issue_id)  # the field shows it

    page = issue_page(client, issue_id)
    assert f'src="/preview/{issue_id}/html"' in page and 'width="375"' in page
    assert "Gmail clips above" in page
    preview = client.get(f"/preview/{issue_id}/html").get_data(as_text=True)
    assert preview.index("Заголовок для рассылки") < preview.index(issue.items[1].article.title)

    approved = post(client, f"/desk/issues/{issue_id}/approve", token)
    assert "approved" in client.get(approved.headers["Location"]).get_data(as_text=True)
    refused = post(client, f"/desk/issues/{issue_id}/pick", token, article=str(ids[5]))
    assert "approved" in client.get(refused.headers["Location"]).get_data(as_text=True)
    with desk.engine.connect() as conn:
        assert len(get_issue(conn, issue_id).items) == 3  # frozen once approved

    tested = post(client, f"/desk/issues/{issue_id}/test", token)
    assert f"test sent to {EDITOR}" in client.get(tested.headers["Location"]).get_data(as_text=True)
    [message] = smtp_server.handler.received
    assert message.recipients == [EDITOR]
    parsed = message_from_bytes(message.data, policy=default)
    assert "TEST" in str(parsed["Subject"]).upper()
    with desk.engine.connect() as conn:  # outside the ledger
        assert conn.execute(sa.select(sa.func.count()).select_from(db.deliveries)).scalar() == 0

    status = client.get(f"/desk/issues/{issue_id}/status?format=json").get_json()
    assert status["status"] == "approved" and status["total"] == 0
    assert post(client, f"/desk/issues/{issue_id}/unapprove", token).status_code == 303
    with desk.engine.connect() as conn:
        assert get_issue(conn, issue_id).status == "draft"


def test_the_pool_searches_by_words_and_filters_by_section(client: FlaskClient, desk: Desk) -> None:
    token = logged_in(client)
    issue_id = int(post(client, "/desk/issues", token).headers["Location"].rsplit("/", 1)[1])
    post(client, f"/desk/issues/{issue_id}/import", token)
    everything = issue_page(client, issue_id)
    sections = re.findall(r"<option >([^<]+)</option>", everything)
    assert sections
    one = client.get(f"/desk/issues/{issue_id}?section={sections[0]}").get_data(as_text=True)
    assert one.count('aria-label="Add') < everything.count('aria-label="Add')
    nothing = client.get(f"/desk/issues/{issue_id}?q=zzzqqq").get_data(as_text=True)
    assert "No articles match." in nothing


def test_a_bad_action_is_told_on_the_page_not_as_a_stack_trace(client: FlaskClient) -> None:
    token = logged_in(client)
    issue_id = int(post(client, "/desk/issues", token).headers["Location"].rsplit("/", 1)[1])
    answer = post(client, f"/desk/issues/{issue_id}/pick", token, article="not-a-number")
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "article: not a number: &#39;not-a-number&#39;" in page
    approve = post(client, f"/desk/issues/{issue_id}/approve", token)
    assert "flash error" in client.get(approve.headers["Location"]).get_data(as_text=True)


def test_readers_counts_search_ledger_and_export(client: FlaskClient, desk: Desk) -> None:
    logged_in(client)
    ids = seed_readers(desk.engine)
    page = client.get("/desk/readers").get_data(as_text=True)
    assert "active</a> 3" in page
    found = client.get("/desk/readers?q=tom@").get_data(as_text=True)
    assert "tom@example.org" in found and "anna@example.org" not in found
    one = client.get(f"/desk/readers/{ids[0]}").get_data(as_text=True)
    assert "imported" in one or "given" in one
    assert "2026-11-01" in one  # the policy version of the evidence
    document = client.get(f"/desk/readers/{ids[0]}/export.json").get_json()
    assert document["subscriber"]["email"] == "anna@example.org"
    assert document["consent_events"]
    csv_text = client.get("/desk/readers/export.csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("email,") and len(csv_text.splitlines()) == 4


def test_editors_add_from_the_command_line(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", desk.settings.database_url)
    runner = CliRunner()
    short = runner.invoke(cli, ["editors", "add", "new@example.org", "--password-stdin"],
                          input="short\n")  # fmt: skip
    assert short.exit_code == 2 and "password: at least 12 characters" in short.output
    for guessable, why in [
        ("password1234", "This is a very common password."),
        ("qwertyuiop12", "This is similar to a commonly used password."),
        ("aaaaaaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess.'),
        ("new@example.org1", "it is made of guessable parts."),  # the editor's own address
        ("01/01/2026abcd", "Dates are often easy to guess."),
        ("Password2026!", "This is similar to a commonly used password."),
    ]:
        weak = runner.invoke(cli, ["editors", "add", "new@example.org", "--password-stdin"],
                             input=guessable + "\n")  # fmt: skip
        assert weak.exit_code == 2, guessable
        assert f"password: too easy to guess: {why}" in weak.output, weak.output
    made = runner.invoke(cli, ["editors", "add", "New@Example.org", "--password-stdin"],
                         input="a long enough password\n")  # fmt: skip
    assert made.exit_code == 0 and "new@example.org can log in" in made.output
    with desk.engine.connect() as conn:
        row = conn.execute(
            sa.select(db.editors).where(db.editors.c.email == "new@example.org")
        ).one()
    assert row.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert "a long enough password" not in row.password_hash
    assert datetime.now(UTC) >= row.created_at  # clock: the CLI stamps it with the wall clock


def test_editors_sign_out_ends_every_session_of_that_editor_only(
    app: Flask, desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop, phone, colleague = app.test_client(), app.test_client(), app.test_client()
    logged_in(laptop)
    logged_in(phone)
    with desk.engine.begin() as conn:
        add_editor(conn, "colleague@example.org", PASSWORD, NOW)
    token = csrf_of(colleague)
    post(colleague, "/desk/login", token, email="colleague@example.org", password=PASSWORD)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", desk.settings.database_url)

    ended = CliRunner().invoke(cli, ["editors", "sign-out", EDITOR])

    assert ended.exit_code == 0 and f"{EDITOR}: 2 sessions ended" in ended.output
    assert laptop.get("/desk/readers").status_code == 302
    assert phone.get("/desk/readers").status_code == 302
    assert colleague.get("/desk/readers").status_code == 200
    unknown = CliRunner().invoke(cli, ["editors", "sign-out", "who@example.org"])
    assert unknown.exit_code == 3 and "no editor who@example.org" in unknown.output


def test_the_send_status_shows_counts_rate_failures_and_uncertain_readers(
    client: FlaskClient, desk: Desk, smtp_server: SMTPServer
) -> None:
    from newsletter.delivery.send import send_issue

    from .conftest import approved_issue

    logged_in(client)
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    smtp_server.handler.refuse["tom@example.org"] = "550 5.1.1 no such mailbox"
    settings = replace(desk.settings, smtp_url=smtp_server.url)
    send_issue(issue.id, desk.engine, settings, Desk(settings).transport,
               lambda: datetime.now(UTC))  # clock: a real relay's send  # fmt: skip
    document = client.get(f"/desk/issues/{issue.id}/status?format=json").get_json()
    assert document["counts"] == {"sent": 2, "failed": 1}
    assert document["status"] == "sent" and document["done"] == 3
    assert document["hygiene"] == {"issue_id": issue.id, "delivered": 2, "hard": 0, "soft": 0,
                                 "complaints": 0, "our_side": 0, "reasons": {},
                                 "hard_rate": 0.0, "soft_rate": 0.0, "complaint_rate": 0.0,
                                 "our_side_rate": 0.0}  # fmt: skip
    assert document["failures"] == [
        {"reader": "tom@example.org", "reply": document["failures"][0]["reply"],
         "reason": "userunknown"}
    ]  # fmt: skip
    assert document["reasons"] == {"userunknown": 1}
    assert "550" in document["failures"][0]["reply"]
    page = client.get(f"/desk/issues/{issue.id}/status").get_data(as_text=True)
    assert "2 of 3 readers reached</strong>, 1 not (failed or skipped)" in page
    assert "tom@example.org (userunknown)" in page and "failed</th><td>1<" in page
    assert 'http-equiv="refresh"' not in page  # finished: no need to refresh


def test_a_dropped_article_lands_at_its_position(client: FlaskClient, desk: Desk) -> None:
    token = logged_in(client)
    issue_id = int(post(client, "/desk/issues", token).headers["Location"].rsplit("/", 1)[1])
    post(client, f"/desk/issues/{issue_id}/import", token)
    ids = [
        int(a)
        for a in re.findall(
            r'name="article" value="(\d+)"><button aria-label="Add', issue_page(client, issue_id)
        )
    ]
    for article in ids[:4]:
        post(client, f"/desk/issues/{issue_id}/pick", token, article=str(article))
    post(client, f"/desk/issues/{issue_id}/move", token, article=str(ids[3]), position="1")
    with desk.engine.connect() as conn:
        assert [i.article.id for i in get_issue(conn, issue_id).items] == [ids[3], *ids[:3]]


def test_a_burst_of_wrong_passwords_at_once_gets_no_more_checks_than_the_limit(
    app: Flask, desk: Desk
) -> None:
    """The attack: 24 wrong passwords from one address at the same moment; before, each
    read the failure count before any of them wrote one, and all 24 were checked."""
    from concurrent.futures import ThreadPoolExecutor

    clients = [app.test_client() for _ in range(24)]
    tokens = [csrf_of(c) for c in clients]

    def attempt(n: int) -> int:
        answer = post(clients[n], "/desk/login", tokens[n], email=EDITOR, password=f"guess {n}")
        return int(answer.status_code)

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(attempt, range(24)))
    assert codes.count(401) <= editors.FAILURES_ALLOWED, codes  # checked, and wrong
    assert codes.count(429) >= 24 - editors.FAILURES_ALLOWED, codes  # refused unchecked
    # a refused attempt takes its row back: what counts is the passwords that were wrong
    late = post(clients[0], "/desk/login", tokens[0], email=EDITOR, password=PASSWORD)
    full = codes.count(401) == editors.FAILURES_ALLOWED
    assert late.status_code == (429 if full else 303)


def test_an_issue_gmail_would_clip_is_approved_from_the_desk_only_when_ticked(
    desk: Desk, client: FlaskClient
) -> None:
    from newsletter.curation.articles import add_article
    from newsletter.curation.issues import new_issue, pick, set_fields

    long = "Очень длинный текст о бюджете города, трамваях и библиотеках. " * 300
    with desk.engine.begin() as conn:
        issue = new_issue(conn, NOW.date(), NOW)
        ids = [
            add_article(conn, url=f"https://example.org/{n}", title=f"История {n}",
                        summary=long, now=NOW).id
            for n in range(6)
        ]  # fmt: skip
        pick(conn, issue.id, ids, NOW)
        set_fields(conn, issue.id, NOW, subject="Неделя", preheader="Шесть длинных историй недели")
    token = logged_in(client)
    page = issue_page(client, issue.id)
    assert "Approve anyway: Gmail will clip it" in page
    refused = post(client, f"/desk/issues/{issue.id}/approve", token)
    assert "Gmail clips" in client.get(refused.headers["Location"]).get_data(as_text=True)
    with desk.engine.connect() as conn:
        assert get_issue(conn, issue.id).status == "draft"
    post(client, f"/desk/issues/{issue.id}/approve", token, force="on")
    with desk.engine.connect() as conn:
        approved = get_issue(conn, issue.id)
    assert approved.status == "approved" and approved.clip_forced
    # approved so, it goes; approved before the check (or grown since), the send refuses it
    from newsletter.delivery.send import send_issue
    from newsletter.errors import StateError
    from newsletter.transport.base import MemoryTransport

    with desk.engine.begin() as conn:
        conn.execute(db.issues.update().where(db.issues.c.id == issue.id).values(clip_forced=False))
    with pytest.raises(StateError, match="fails preflight: the HTML is"):
        send_issue(issue.id, desk.engine, desk.settings, MemoryTransport(), lambda: NOW)
    with desk.engine.begin() as conn:
        conn.execute(db.issues.update().where(db.issues.c.id == issue.id).values(clip_forced=True))
    report = send_issue(issue.id, desk.engine, desk.settings, MemoryTransport(), lambda: NOW,
                        allow_empty=True)  # fmt: skip
    assert report.status == "sent"

"""The desk as editors live in it, through its forms and its JSON answers: revisions that
refuse a stale save, undo, an article's own text kept when it is removed, the week at a
glance against the database, holding a week, starting any send day, sending now with a
typed confirmation, roles, and the desk's own error pages."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.curation.articles import import_sources
from newsletter.curation.issues import get_issue, set_fields
from newsletter.editors import add_editor
from newsletter.schedule.job import FridayJob
from newsletter.schedule.lease import HEARTBEAT_EVERY, beat, beating, heartbeats
from newsletter.store import tables as db
from newsletter.web import create_app
from newsletter.web.desk.week import join_sends, span

from .conftest import FEEDS, ROOT, SMTPServer, seed_readers
from .test_desk import EDITOR, ISSUE_CHANGE, PASSWORD, csrf_of, logged_in, post, shown_revision

MONDAY = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # the desk's clock in these tests
FRIDAY = date(2026, 11, 27)
JSON = {"Accept": "application/json"}


@pytest.fixture
def app(desk: Desk, smtp_server: SMTPServer) -> Flask:
    settings = replace(desk.settings, smtp_url=smtp_server.url, clock=MONDAY,
                       base_url="http://127.0.0.1:8000",
                       feed_url=str(ROOT / "newsletter" / "defaults" / "demo_feed.xml"))  # fmt: skip
    with desk.engine.begin() as conn:
        add_editor(conn, EDITOR, PASSWORD, MONDAY)  # the first account: the admin
    import_sources(desk.engine, [settings.feed_url], MONDAY)
    app = create_app(settings)
    try:
        yield app
    finally:
        join_sends(app, 30)


def started(client: FlaskClient, token: str, day: date = FRIDAY) -> int:
    answer = post(client, "/desk/issues", token, day=day.isoformat())
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return int(answer.headers["Location"].rsplit("/", 1)[1])


def revision(desk: Desk, issue_id: int) -> int:
    with desk.engine.connect() as conn:
        return get_issue(conn, issue_id).revision


def article_ids(desk: Desk, n: int) -> list[int]:
    with desk.engine.connect() as conn:
        return list(conn.execute(sa.select(db.articles.c.id).order_by("id").limit(n)).scalars())


def changed(client: FlaskClient, path: str, token: str, **form: Any) -> Any:
    """A change as the page's script makes it: JSON, with the revision the page shows."""
    change = ISSUE_CHANGE.match(path)
    if change and "revision" not in form:
        form["revision"] = shown_revision(client, change.group(1))
    answer = client.post(path, data={"csrf": token, **form}, headers=JSON)
    return answer.status_code, answer.get_json()


def one_story_issue(client: FlaskClient, desk: Desk, subject: str) -> tuple[str, int, str]:
    """Readers, an editor signed in, and this Friday's issue with one story and a subject:
    the session's token, the issue and its address."""
    seed_readers(desk.engine)
    token = logged_in(client)
    issue_id = started(client, token)
    base = f"/desk/issues/{issue_id}"
    changed(client, f"{base}/pick", token, article=article_ids(desk, 1)[0])
    changed(client, f"{base}/fields", token, subject=subject)
    return token, issue_id, base


def test_every_change_counts_a_revision_and_a_stale_one_is_refused(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    issue_id = started(client, token)
    base = f"/desk/issues/{issue_id}"
    first = revision(desk, issue_id)
    status, body = changed(client, f"{base}/fields", token, subject="Tab A", revision=first)
    assert status == 200 and body["ok"] and body["revision"] == first + 1
    # a second tab still showing `first` saves its note: refused, nothing written
    status, body = changed(client, f"{base}/fields", token, subject="Tab B", note="B's note",
                           revision=first)  # fmt: skip
    assert status == 409 and body["conflict"] and not body["ok"]
    assert "changed in another tab or by another editor" in body["message"]
    assert f"revision {first + 1}, the page showed {first}" in body["message"]
    with desk.engine.connect() as conn:
        found = get_issue(conn, issue_id)
    assert (found.subject, found.note, found.revision) == ("Tab A", "", first + 1)
    # without JavaScript the refusal is a page in the desk's words; Back keeps the text
    page = client.post(f"{base}/fields", data={"csrf": token, "subject": "B", "revision": first})
    assert page.status_code == 409
    text = page.get_data(as_text=True)
    assert "<h1>That cannot be done now</h1>" in text and "EditConflict" not in text
    # a form without a revision, or with anything but one, is refused: nothing saved
    for odd in ("", "abc", "-1", "v7", "²", str(2**70)):
        status, body = changed(client, f"{base}/fields", token, subject="Odd", revision=odd)
        assert status == 400 and body["message"].startswith("revision: "), odd
    assert revision(desk, issue_id) == first + 1


def test_a_removed_article_keeps_its_text_for_the_issue_and_the_remove_can_be_undone(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    issue_id = started(client, token)
    base = f"/desk/issues/{issue_id}"
    a, b, c = article_ids(desk, 3)
    for article in (a, b, c):
        assert changed(client, f"{base}/pick", token, article=article)[0] == 200
    changed(client, f"{base}/item", token, article=b, title="Our own title", summary="Ours.")
    status, body = changed(client, f"{base}/unpick", token, article=b)
    assert status == 200 and body["undo"]["position"] == 2
    assert "Removed “Our own title”" in client.get(base).get_data(as_text=True)
    status, body = changed(client, f"{base}/undo", token)
    assert status == 200 and body["message"] == "undone: removed “Our own title”"
    with desk.engine.connect() as conn:
        found = get_issue(conn, issue_id)
    assert [i.article.id for i in found.items] == [a, b, c]
    assert (found.items[1].title, found.items[1].summary) == ("Our own title", "Ours.")
    # removed, then added back from the pool: at the end, with its text
    changed(client, f"{base}/unpick", token, article=b)
    changed(client, f"{base}/pick", token, article=b)
    with desk.engine.connect() as conn:
        found = get_issue(conn, issue_id)
    assert [i.article.id for i in found.items] == [a, c, b] and found.items[
        2
    ].title == "Our own title"
    # a move is undone too; then there is nothing left to undo
    status, body = changed(client, f"{base}/move", token, article=b, direction="up")
    assert body["undo"] == {"do": "move", "article": b, "position": 3,
                            "what": "moved “Our own title” to 2"}  # fmt: skip
    changed(client, f"{base}/undo", token)
    with desk.engine.connect() as conn:
        assert [i.article.id for i in get_issue(conn, issue_id).items] == [a, c, b]
    status, body = changed(client, f"{base}/undo", token)
    assert status == 409 and body["message"] == "there is nothing to undo on this issue"


def test_the_week_at_a_glance_says_what_the_database_says(
    client: FlaskClient, desk: Desk, app: Flask
) -> None:
    seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        readers = conn.execute(
            sa.select(sa.func.count()).where(db.subscribers.c.status == "active")
        ).scalar_one()
    token = logged_in(client)
    issue_id = started(client, token)
    page = client.get(f"/desk/issues/{issue_id}").get_data(as_text=True)
    settings = app.config["DESK"].settings
    when = datetime.combine(FRIDAY, settings.send_at.at, tzinfo=settings.timezone)
    assert f"{when:%A %d %B %Y, %H:%M} {settings.timezone}" in page
    left = span((when - MONDAY).total_seconds())
    assert f"in {left}" in page and left.startswith("3 days")
    assert f"will go to {readers} readers (if it went now)" in page
    assert "a draft: it goes out only if approved before then" in page
    assert "no scheduler has run" in page
    beat(desk.engine, "scheduler:t1", "sched-host:4242:abc", MONDAY - timedelta(seconds=20))
    page = client.get(f"/desk/issues/{issue_id}").get_data(as_text=True)
    assert "running on sched-host, last heard" in page
    with desk.engine.begin() as conn:  # it stopped answering a quarter of an hour ago
        conn.execute(db.leases.update().values(expires_at=MONDAY - timedelta(minutes=14)))
    page = client.get(f"/desk/issues/{issue_id}").get_data(as_text=True)
    assert "not heard from since 15 minutes ago" in page


def test_a_running_scheduler_keeps_a_heartbeat_and_clears_it_when_it_stops(desk: Desk) -> None:
    seen = threading.Event()
    clock = [MONDAY]

    def now() -> datetime:
        seen.set()
        return clock[0]

    with beating(desk.engine, now):
        assert seen.wait(5)
        for _ in range(500):  # the first beat is written just after the clock is read
            with desk.engine.connect() as conn:
                beats = heartbeats(conn)
            if beats:
                break
            threading.Event().wait(0.01)
        [heard] = beats
        assert heard.last_seen == MONDAY and heard.holder.count(":") == 2
        assert HEARTBEAT_EVERY.total_seconds() == 30
    with desk.engine.connect() as conn:
        assert heartbeats(conn) == []


def test_a_held_week_sends_nothing_and_alerts_nobody_until_released(
    client: FlaskClient, desk: Desk, app: Flask, smtp_server: SMTPServer
) -> None:
    token, issue_id, base = one_story_issue(client, desk, "A week we hold")
    assert changed(client, f"{base}/approve", token)[0] == 200
    status, body = changed(client, f"{base}/hold", token)
    assert status == 200 and body["message"].startswith("held: nothing goes out on Friday 27")
    job = FridayJob(app.config["DESK"], lambda: MONDAY)
    result = job.send(FRIDAY)
    assert (result.outcome, result.message) == ("nothing", f"issue {issue_id} for {FRIDAY} is "
                                                "held at the desk")  # fmt: skip
    assert smtp_server.handler.received == []  # no reader, and no alert to the editors
    assert changed(client, f"{base}/release", token)[1]["message"].startswith("released")
    with desk.engine.connect() as conn:
        assert get_issue(conn, issue_id).status == "draft"


def test_any_coming_send_day_can_be_started_from_the_calendar(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    later = FRIDAY + timedelta(days=21)
    issue_id = started(client, token, later)
    with desk.engine.connect() as conn:
        assert get_issue(conn, issue_id).send_date == later
    page = client.get("/desk/issues").get_data(as_text=True)
    assert "Start the issue for Friday 27 November 2026" in page  # this week: still free
    assert "Start the issue for Friday 18 December 2026" not in page  # taken: a link instead
    assert f'href="/desk/issues/{issue_id}">issue {issue_id}</a>' in page
    again = post(client, "/desk/issues", token, day=later.isoformat())  # another tab
    assert again.headers["Location"].endswith(f"/desk/issues/{issue_id}")
    for day, why in (("2026-11-26", "is not a send day"), ("2026-11-20", "has passed"),
                     ("someday", "is not a date")):  # fmt: skip
        refused = client.post("/desk/issues", data={"csrf": token, "day": day},
                              follow_redirects=True)  # fmt: skip
        assert why in refused.get_data(as_text=True), day


def test_send_now_needs_the_number_of_readers_typed_and_then_sends(
    client: FlaskClient, desk: Desk, app: Flask, smtp_server: SMTPServer
) -> None:
    token, _issue, base = one_story_issue(client, desk, "Now, not Friday")
    draft = client.post(f"{base}/send", data={"csrf": token, "confirm": "3"},
                        follow_redirects=True)  # fmt: skip
    assert "is draft: approve it first" in draft.get_data(as_text=True)
    changed(client, f"{base}/approve", token)
    with desk.engine.connect() as conn:
        readers = conn.execute(
            sa.select(sa.func.count()).where(db.subscribers.c.status == "active")
        ).scalar_one()
    wrong = client.post(f"{base}/send", data={"csrf": token, "confirm": str(readers + 1)},
                        follow_redirects=True)  # fmt: skip
    assert f"not sent: type {readers} (the number of readers) to confirm" in wrong.get_data(
        as_text=True
    )
    assert smtp_server.handler.received == []
    going = post(client, f"{base}/send", token, confirm=str(readers))
    assert going.status_code == 303 and going.headers["Location"].endswith(f"{base}/status")
    join_sends(app, 30)
    assert len(smtp_server.handler.received) == readers
    document = client.get(f"{base}/status?format=json").get_json()
    assert document["status"] == "sent" and document["counts"] == {"sent": readers}
    assert document["words"] == {"sent": "sent"} and document["live"]["left"] == 0


def test_exports_and_erasure_are_for_admins_only(
    client: FlaskClient, desk: Desk, app: Flask
) -> None:
    [anna, *_] = seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        add_editor(conn, "junior@example.org", "another long passphrase", MONDAY)
    token = csrf_of(client)
    client.post("/desk/login", data={"email": "junior@example.org",
                                     "password": "another long passphrase", "csrf": token})  # fmt: skip
    token = csrf_of(client, "/desk/issues")
    for path in ("/desk/readers/export.csv", f"/desk/readers/{anna}/export.json"):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "<h1>Not for your account</h1>" in answer.get_data(as_text=True)
    refused = post(client, f"/desk/readers/{anna}/erase", token, confirm="anna@example.org")
    assert refused.status_code == 403
    assert "Export the list" not in client.get("/desk/readers").get_data(as_text=True)
    client.post("/desk/logout", data={"csrf": token})
    token = logged_in(client)  # the admin
    assert client.get("/desk/readers/export.csv").status_code == 200
    with desk.engine.connect() as conn:
        address = conn.execute(
            sa.select(db.subscribers.c.email).where(db.subscribers.c.id == anna)
        ).scalar_one()
    post(client, f"/desk/readers/{anna}/erase", token, confirm="wrong@example.org")
    with desk.engine.connect() as conn:  # a wrong confirmation erases nothing
        assert conn.execute(sa.select(db.subscribers.c.email).where(
            db.subscribers.c.id == anna)).scalar_one() == address  # fmt: skip
    post(client, f"/desk/readers/{anna}/erase", token, confirm=address)
    with desk.engine.connect() as conn:
        row = conn.execute(sa.select(db.subscribers).where(db.subscribers.c.id == anna)).one()
    assert (row.email, row.status) == (None, "erased")


def test_the_desks_errors_are_pages_in_its_layout_in_words(client: FlaskClient, app: Flask) -> None:
    def boom() -> str:
        raise RuntimeError("a bug of ours")

    app.add_url_rule("/desk/boom", "boom", boom)
    logged_in(client)
    for path, status, title in (("/desk/issues/999", 404, "Not found"),
                                ("/desk/nowhere", 404, "Not found"),
                                ("/desk/boom", 500, "Something went wrong")):  # fmt: skip
        answer = client.get(path)
        text = answer.get_data(as_text=True)
        assert answer.status_code == status and f"<h1>{title}</h1>" in text, path
        assert "Error" not in text.replace("error-page", "") and "a bug of ours" not in text
        assert "Log out" in text  # the desk's own layout, signed in
    assert "No issue 999" in client.get("/desk/issues/999").get_data(as_text=True)


def test_after_a_login_the_page_asked_for_opens(client: FlaskClient, desk: Desk) -> None:
    token = logged_in(client)
    issue_id = started(client, token)
    client.post("/desk/logout", data={"csrf": token})
    for wanted in (f"/desk/issues/{issue_id}?q=x", f"/preview/{issue_id}/text"):
        asked = client.get(wanted)
        assert asked.status_code == 302 and "/desk/login" in asked.headers["Location"]
        login = client.get(asked.headers["Location"])
        token = login.get_data(as_text=True).split('name="csrf" value="', 1)[1].split('"', 1)[0]
        nxt = login.get_data(as_text=True).split('name="next" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/desk/login", data={"email": EDITOR, "password": PASSWORD,
                                                  "csrf": token, "next": nxt.replace("&amp;", "&")})  # fmt: skip
        assert answer.headers["Location"] == wanted
        client.post("/desk/logout", data={"csrf": csrf_of(client, "/desk/issues")})
    for hostile in ("//evil.example/desk/", "https://evil.example/desk/", "/\\evil.example",
                    "/subscribe"):  # fmt: skip
        token = csrf_of(client)
        answer = client.post("/desk/login", data={"email": EDITOR, "password": PASSWORD,
                                                  "csrf": token, "next": hostile})  # fmt: skip
        assert answer.headers["Location"] == "/desk/", hostile
        client.post("/desk/logout", data={"csrf": csrf_of(client, "/desk/issues")})


def test_the_pool_shows_each_storys_year_and_an_empty_issue_says_so(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    issue_id = started(client, token)
    with desk.engine.begin() as conn:
        set_fields(conn, issue_id, MONDAY, subject="x")
        published = conn.execute(sa.select(db.articles.c.published_at).limit(1)).scalar_one()
    page = client.get(f"/desk/issues/{issue_id}").get_data(as_text=True)
    assert f"{published:%d %b %Y}" in page
    assert "Nothing picked yet: add articles from the pool below." in page
    import_sources(desk.engine, [str(FEEDS / "liga-ru-2021.xml")], MONDAY)  # five years old
    old = client.get(f"/desk/issues/{issue_id}?q=Кравчук").get_data(as_text=True)
    assert re.search(
        r"22 Aug 2021, \d\d:\d\d <span class=\"warning\">\(\d+ days \d+ hours? ago\)", old
    )
    assert "<ol" not in page.split('id="items-panel"', 1)[1].split("</div>", 1)[0]


def test_admins_manage_the_accounts_and_see_the_settings_without_secrets(
    client: FlaskClient, desk: Desk, app: Flask
) -> None:
    token = logged_in(client)  # the desk's first account: its admin
    page = client.get("/desk/admin").get_data(as_text=True)
    secret = app.config["DESK"].settings.secret_key
    assert "NEWSLETTER_SECRET_KEY" in page and "set (hidden)" in page and secret not in page
    answer = post(client, "/desk/admin/editors", token, email="new@example.org",
                  password="a fresh long passphrase", role="editor")  # fmt: skip
    assert answer.status_code == 303
    weak = client.post("/desk/admin/editors", data={"csrf": token, "email": "w@example.org",
                       "password": "password1234", "role": "editor"}, follow_redirects=True)  # fmt: skip
    assert "too easy to guess" in weak.get_data(as_text=True)
    with desk.engine.connect() as conn:
        roles = dict(conn.execute(sa.select(db.editors.c.email, db.editors.c.role)).all())
    assert roles == {EDITOR: "admin", "new@example.org": "editor"}
    me = next(i for i, in desk.engine.connect().execute(
        sa.select(db.editors.c.id).where(db.editors.c.email == EDITOR)))  # fmt: skip
    last = client.post(f"/desk/admin/editors/{me}/role", data={"csrf": token, "role": "editor"},
                       follow_redirects=True)  # fmt: skip
    assert "last admin stays an admin" in last.get_data(as_text=True)
    client.post("/desk/logout", data={"csrf": token})
    token = csrf_of(client)
    client.post("/desk/login", data={"email": "new@example.org",
                                     "password": "a fresh long passphrase", "csrf": token})  # fmt: skip
    assert client.get("/desk/admin").status_code == 403
    assert "Admin</a>" not in client.get("/desk/issues").get_data(as_text=True)


def test_odd_numbers_and_control_characters_get_answers_not_errors(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    issue_id = started(client, token)
    huge = str(2**70)
    for path in (f"/desk/issues/{huge}", f"/desk/issues/{huge}/status"):
        assert client.get(path).status_code == 404, path
    for action in ("pick", "fields", "hold", "test", "import", "send"):
        answer = client.post(f"/desk/issues/{huge}/{action}", data={"csrf": token}, headers=JSON)
        assert answer.status_code == 404, action
    for article in (huge, "²", "-3"):
        status, body = changed(client, f"/desk/issues/{issue_id}/pick", token, article=article)
        assert status == 400 and body["message"].startswith("article: not a number"), article
    assert client.get(f"/desk/issues/{issue_id}?days=²&days=999999999999").status_code == 200
    client.post("/desk/logout", data={"csrf": token})
    token = csrf_of(client)
    answer = client.post("/desk/login", data={"email": EDITOR, "password": PASSWORD,
                                              "csrf": token, "next": "/desk/\r\nX-Evil: 1"})  # fmt: skip
    assert answer.status_code == 303 and answer.headers["Location"] == "/desk/"


def test_the_settings_view_hides_every_credential_a_url_can_carry() -> None:
    from newsletter.settings.table import shown_value

    assert shown_value("database_url", "postgresql+psycopg://u:pw@db/x?password=s3cret&ssl=1") == (
        "postgresql+psycopg://•••@db/x?password=•••&ssl=1"
    )
    shown = shown_value("smtp_url", ("smtp://apikey@example.org:S3cret@mx.example.org:587",
                                     "smtps://b:p@ss@relay.example.org:465?weight=2"))  # fmt: skip
    assert shown == "smtp://•••@mx.example.org:587, smtps://•••@relay.example.org:465?weight=2"
    assert shown_value("feed_url", "https://example.org/feed?token=abc&x=1") == (
        "https://example.org/feed?token=•••&x=1"
    )
    assert shown_value("mailgun_signing_key", "key-123") == "set (hidden)"


def test_an_admin_cannot_take_over_an_existing_account_by_adding_it(
    client: FlaskClient, desk: Desk
) -> None:
    token = logged_in(client)
    answer = client.post("/desk/admin/editors", data={"csrf": token, "email": EDITOR,
                         "password": "a fresh long passphrase", "role": "editor"},
                         follow_redirects=True)  # fmt: skip
    assert "has an account already" in answer.get_data(as_text=True)
    with desk.engine.connect() as conn:
        role = conn.execute(sa.select(db.editors.c.role)).scalar_one()
    assert role == "admin"
    assert client.get("/desk/issues").status_code == 200  # still signed in: nothing reset

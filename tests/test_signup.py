"""Sign-up through the web: the form, the embeddable snippet and the JSON endpoint.

Flask's test client against a real SQLite desk; confirmation mail goes to a real
aiosmtpd server on loopback. The pages read the real clock.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.readers.access import forget
from newsletter.readers.consent import Evidence
from newsletter.readers.subscribers import get_subscriber, record_complaint, unsubscribe
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.web import create_app

from .conftest import SMTPServer, real_now, seed_readers
from .test_public_pages import new_signup, parse, publish, text_of

UA = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/140 Mobile Safari/537.36"
ARTICLE = "https://example.org/2026/11/24/four-day-school-week"
GOOD = {"email": "lena@example.org", "name": "Лена Смирнова", "consent": "yes"}
POLICY = "2026-11-01"  # the version `init` publishes from privacy/
WORDING = "I want to receive the weekly newsletter by email and agree to the Privacy Policy."


def browser(ip: str = "198.51.100.7", **headers: str) -> dict[str, Any]:
    return {"headers": {"User-Agent": UA, **headers}, "environ_base": {"REMOTE_ADDR": ip}}


def stored(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a sign-up could write, to show that a refused one wrote none."""
    tables = (db.subscribers, db.consent_events, db.suppressions, db.signup_attempts)
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in tables
        }


def subscriber(engine: sa.Engine, address: str) -> Any:
    with engine.connect() as conn:
        return get_subscriber(conn, address)


def given_events(engine: sa.Engine, subscriber_id: int) -> list[dict[str, Any]]:
    e = db.consent_events
    query = sa.select(e).where(e.c.subscriber_id == subscriber_id, e.c.kind == "given")
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query.order_by(e.c.id)).mappings()]


def document(response: Any) -> Any:
    return lxml.html.document_fromstring(response.get_data(as_text=True))


def field_error(response: Any, field: str) -> str:
    """The message shown next to a field, tied to it by aria-describedby."""
    page = document(response)
    (control,) = page.xpath(f"//*[@name='{field}']")
    assert control.get("aria-invalid") == "true"
    (message,) = page.xpath(f"//*[@id='{control.get('aria-describedby')}']")
    assert message.getparent() is control.getparent() or message.getparent() is (
        control.getparent().getparent()
    )
    return " ".join(message.text_content().split())


def confirm_links(smtp_server: SMTPServer) -> list[str]:
    links = []
    for received in smtp_server.handler.received:
        text = parse(received.data).get_body(("plain",))
        assert text is not None
        links += re.findall(r"https://news\.example\.org/confirm/\S+", text.get_content())
    return links


# --- the form ----------------------------------------------------------------------------


def test_the_form_shows_the_current_wording_an_unticked_box_and_the_policy_link(
    client: FlaskClient,
) -> None:
    response = client.get("/subscribe")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = document(response)
    (form,) = page.forms
    assert (form.method.lower(), form.get("action")) == ("post", "/subscribe")
    (box,) = form.xpath(".//input[@type='checkbox']")
    assert box.get("name") == "consent" and box.get("checked") is None
    (label,) = page.xpath(f"//label[@for='{box.get('id')}']")
    assert label.text_content() == WORDING
    hrefs = [a.get("href") for a in page.iter("a")]
    assert f"https://news.example.org/privacy/{POLICY}" in hrefs
    assert not form.xpath(".//input[contains(@name, 'csrf')]")


def test_a_new_policy_changes_the_wording_and_the_link(desk: Desk, client: FlaskClient) -> None:
    publish(desk.engine, "2026-12-01", 1, wording="Yes, send it; I read policy two.")
    page = document(client.get("/subscribe"))
    assert "Yes, send it; I read policy two." in page.text_content()
    assert "https://news.example.org/privacy/2026-12-01" in [a.get("href") for a in page.iter("a")]
    assert page.xpath("//input[@name='policy_version']/@value") == ["2026-12-01"]


def test_a_sign_up_records_the_evidence_and_mails_a_confirm_link(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    response = client.post("/subscribe", data=GOOD, **browser(Referer=ARTICLE))
    assert response.status_code == 200
    assert "Check your inbox" in text_of(response)
    found = subscriber(desk.engine, "lena@example.org")
    # the name waits for the address's owner to confirm it
    assert (found.status, found.name, found.offered_name) == ("pending", "", "Лена Смирнова")
    (given,) = given_events(desk.engine, found.id)
    assert (given["source"], given["ip"], given["user_agent"]) == (ARTICLE, "198.51.100.7", UA)
    assert (given["policy_version"], given["wording"]) == (POLICY, WORDING)
    assert [r.recipients for r in smtp_server.handler.received] == [["lena@example.org"]]
    assert len(confirm_links(smtp_server)) == 1


def confirm_by_mail(client: FlaskClient, smtp_server: SMTPServer) -> None:
    link = confirm_links(smtp_server)[-1]
    assert client.post(link.replace("https://news.example.org", "")).status_code == 200


def test_a_strangers_name_greets_no_one_until_the_address_confirms_it(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    """Someone signs up lena@ as "=Your account is locked, call …": the confirmation mail
    to her carries neither that name in To nor in its words; her click makes it her name."""
    strange = {**GOOD, "name": "Your account is frozen, call 555-0100"}
    assert client.post("/subscribe", data=strange, **browser()).status_code == 200
    (mail,) = [parse(r.data) for r in smtp_server.handler.received]
    assert str(mail["To"]) == "lena@example.org"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert text.startswith("Dear reader,") and "frozen" not in text + html
    confirm_by_mail(client, smtp_server)
    assert subscriber(desk.engine, "lena@example.org").name == strange["name"]


def test_signing_up_again_changes_a_readers_name_only_when_they_confirm(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    _, tom, _ = seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        unsubscribe(conn, tom, Evidence(source="tests"), real_now())  # clock: as the app does
    before = subscriber(desk.engine, "tom@example.org").name
    again = {"email": "tom@example.org", "name": "Someone Else", "consent": "yes"}
    assert client.post("/subscribe", data=again, **browser()).status_code == 200
    waiting = subscriber(desk.engine, "tom@example.org")
    assert (waiting.status, waiting.name, waiting.offered_name) == (
        "pending",
        before,
        "Someone Else",
    )
    (mail,) = [parse(r.data) for r in smtp_server.handler.received]
    assert "Someone Else" not in mail.get_body(("plain",)).get_content()
    confirm_by_mail(client, smtp_server)
    confirmed = subscriber(desk.engine, "tom@example.org")
    assert (confirmed.status, confirmed.name, confirmed.offered_name) == (
        "active",
        "Someone Else",
        None,
    )


def queued(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(db.notice_queue)).all())


def test_the_request_only_queues_the_mail_and_a_worker_sends_what_the_relay_refused(
    desk: Desk, settings: Settings, smtp_server: SMTPServer
) -> None:
    """With the relay down the answer is the same; the mail waits in the queue for its
    retry, and `newsletter worker --once` sends it once the relay is back."""
    from .conftest import free_port

    down = create_app(replace(settings, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    answer = down.test_client().post("/subscribe", data=GOOD, **browser())
    assert answer.status_code == 200 and "Check your inbox" in text_of(answer)
    (row,) = queued(desk.engine)
    assert (row.kind, row.email, row.attempts) == ("confirm", "lena@example.org", 1)
    assert row.next_try_at > row.queued_at and "Connection refused" in (row.last_error or "")
    assert smtp_server.handler.received == []

    later = real_now() + timedelta(minutes=2)  # clock: past the retry the web app scheduled
    from click.testing import CliRunner

    from newsletter.cli import cli

    env = {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_SECRET_KEY": settings.require_secret(),
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_BASE_URL": settings.base_url,
        "NEWSLETTER_CLOCK": later.isoformat(),
    }
    ran = CliRunner().invoke(cli, ["worker", "--once"], env=env)
    assert ran.exit_code == 3, ran.output  # no send under way (3): the notices went all the same
    assert [r.recipients for r in smtp_server.handler.received] == [["lena@example.org"]]
    assert queued(desk.engine) == []


def test_without_a_referrer_the_source_is_the_form_url(desk: Desk, client: FlaskClient) -> None:
    assert client.post("/subscribe", data=GOOD, **browser()).status_code == 200
    (given,) = given_events(desk.engine, subscriber(desk.engine, "lena@example.org").id)
    assert given["source"] == "http://localhost/subscribe"


def without_nonce(headers: Any) -> list[tuple[str, str]]:
    """The headers, the script nonce of the Content-Security-Policy (new on every answer,
    whoever asks) left out."""
    return [(k, re.sub(r"'nonce-[^']+'", "'nonce'", v)) for k, v in headers.items()]


def make_states(desk: Desk) -> dict[str, str]:
    """An address in each state a sign-up can meet, by state."""
    now = real_now()
    anna, tom, _ = seed_readers(desk.engine)
    new_signup(desk.engine, "pending@example.org", now)
    cora = new_signup(desk.engine, "cora@example.org", now).subscriber_id
    with desk.engine.begin() as conn:
        unsubscribe(conn, tom, Evidence(source="tests"), now)
        forget(conn, anna, now)
        record_complaint(conn, cora, "abuse report", now)
    return {
        "new": "new@example.org",
        "pending": "pending@example.org",
        "active": "noname@example.net",
        "unsubscribed": "tom@example.org",
        "erased (suppressed)": "anna@example.org",
        "complained (suppressed)": "cora@example.org",
    }


def test_every_address_gets_the_same_answer_from_the_form(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    states = make_states(desk)
    answers = {
        state: client.post("/subscribe", data={**GOOD, "email": address}, **browser())
        for state, address in states.items()
    }
    assert {a.status_code for a in answers.values()} == {200}
    bodies = {a.get_data() for a in answers.values()}
    assert len(bodies) == 1, "the answer must not tell who is subscribed"
    headers = {tuple(sorted(without_nonce(a.headers))) for a in answers.values()}
    assert len(headers) == 1
    mailed = sorted(r for m in smtp_server.handler.received for r in m.recipients)
    assert mailed == ["new@example.org", "pending@example.org", "tom@example.org"]


def test_every_address_gets_the_same_answer_from_the_api(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    states = make_states(desk)
    answers = [
        client.post("/api/subscribe", json={"email": address, "consent": True}, **browser())
        for address in states.values()
    ]
    assert {(a.status_code, a.get_data()) for a in answers} == {
        (202, b'{"status":"check your inbox"}\n')
    }
    assert len(smtp_server.handler.received) == 3


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({**GOOD, "consent": ""}, "consent", "Tick the box to agree to the privacy policy"),
        ({"email": "lena@example.org"}, "consent", "Tick the box to agree to the privacy policy"),
        ({**GOOD, "consent": "no"}, "consent", "Tick the box"),
        ({**GOOD, "email": ""}, "email", "Enter your email address."),
        ({**GOOD, "email": "lena.example.org"}, "email", "An email address must have an @-sign."),
        ({**GOOD, "email": "lena@example"}, "email", "The part after the @-sign is not valid"),
        (
            {**GOOD, "email": "лена@example.org"},
            "email",
            "Internationalized characters before the @-sign are not supported",
        ),
        (
            {**GOOD, "name": "Lena\r\nBcc: x@example.com"},
            "name",
            "Write it on one line.",
        ),
        ({**GOOD, "name": "L" * 301}, "name", "Shorten it to 300 characters at most."),
        (
            {**GOOD, "policy_version": "2020-01-01"},
            "consent",
            "Our privacy policy has changed since this form was made",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_a_refused_sign_up_says_why_beside_the_field_and_stores_nothing(
    desk: Desk,
    client: FlaskClient,
    smtp_server: SMTPServer,
    data: dict[str, str],
    field: str,
    message: str,
) -> None:
    before = stored(desk.engine)
    response = client.post("/subscribe", data=data, **browser())
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert message in field_error(response, field)
    assert stored(desk.engine) == before
    assert smtp_server.handler.received == []
    # the form comes back with what was typed, and an unticked box after a consent problem
    page = document(response)
    if field != "email" and data.get("email"):
        assert page.xpath("//input[@name='email']/@value") == [data["email"]]
    if field == "consent":
        assert page.xpath("//input[@name='consent']/@checked") == []


def test_a_refused_sign_up_reports_every_field_at_once(desk: Desk, client: FlaskClient) -> None:
    response = client.post("/subscribe", data={"email": "nope"}, **browser())
    assert response.status_code == 400
    assert field_error(response, "email") and field_error(response, "consent")
    assert "2 things to fix" in text_of(response)


def test_what_was_typed_comes_back_escaped(desk: Desk, client: FlaskClient) -> None:
    typed = '"><script>alert(1)</script>'
    response = client.post("/subscribe", data={"email": typed, "name": typed}, **browser())
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<script>" not in html
    page = document(response)
    assert page.xpath("//script") == []
    assert page.xpath("//input[@name='name']/@value") == [typed]


def test_signups_over_the_hourly_limit_get_a_429_page_and_store_nothing(
    desk: Desk, smtp_settings: Settings, smtp_server: SMTPServer
) -> None:
    client = create_app(replace(smtp_settings, signups_per_hour=2)).test_client()
    for n in (1, 2):
        data = {**GOOD, "email": f"reader{n}@example.org"}
        assert client.post("/subscribe", data=data, **browser()).status_code == 200
    before = stored(desk.engine)
    limited = client.post("/subscribe", data={**GOOD, "email": "r3@example.org"}, **browser())
    assert limited.status_code == 429 and limited.mimetype == "text/html"
    assert limited.headers["Retry-After"] == "3600"
    assert "Too many sign-ups came from your network" in text_of(limited)
    assert stored(desk.engine) == before
    api = client.post(
        "/api/subscribe", json={"email": "r4@example.org", "consent": True}, **browser()
    )
    assert api.status_code == 429 and "too many sign-ups" in api.json["error"]
    assert api.headers["Retry-After"] == "3600"
    other_network = browser("203.0.113.9")
    assert client.post("/subscribe", data=GOOD, **other_network).status_code == 200
    assert len(smtp_server.handler.received) == 3


def test_one_address_gets_at_most_three_confirm_mails_a_day_and_the_same_answer(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    answers = {
        client.post("/subscribe", data=GOOD, **browser(f"192.0.2.{n}")).get_data()
        for n in range(1, 6)
    }
    assert len(answers) == 1
    assert len(smtp_server.handler.received) == 3


# --- the embeddable form ---------------------------------------------------------------------


def test_the_embed_snippet_posts_to_the_absolute_address_with_an_unticked_box(
    client: FlaskClient,
) -> None:
    response = client.get("/subscribe/embed.txt")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    snippet = lxml.html.fragment_fromstring(response.get_data(as_text=True))
    assert snippet.tag == "form"
    assert (snippet.method.lower(), snippet.action) == (
        "post",
        "https://news.example.org/subscribe",
    )
    assert sorted(snippet.inputs.keys()) == ["consent", "email", "name", "policy_version"]
    assert snippet.inputs["consent"].checked is False
    assert WORDING in snippet.text_content()
    assert snippet.xpath(".//a/@href") == [f"https://news.example.org/privacy/{POLICY}"]


def test_the_embed_page_shows_the_snippet_to_copy(client: FlaskClient) -> None:
    text = client.get("/subscribe/embed.txt").get_data(as_text=True)
    page = document(client.get("/subscribe/embed"))
    (source,) = page.xpath("//textarea")
    assert source.text_content().strip() == text.strip()
    assert page.xpath("//form/@action") == ["https://news.example.org/subscribe"]


def test_the_embedded_form_posts_from_another_site(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    snippet = lxml.html.fragment_fromstring(
        client.get("/subscribe/embed.txt").get_data(as_text=True)
    )
    fields = dict(snippet.form_values()) | {"email": "reader@example.com", "consent": "yes"}
    cross_site = browser(Origin="https://example.org", Referer=ARTICLE)
    response = client.post("/subscribe", data=fields, **cross_site)
    assert response.status_code == 200 and "Check your inbox" in text_of(response)
    found = subscriber(desk.engine, "reader@example.com")
    assert given_events(desk.engine, found.id)[0]["source"] == ARTICLE
    assert len(smtp_server.handler.received) == 1


# --- the JSON endpoint -----------------------------------------------------------------------


def test_the_api_takes_a_sign_up_with_its_source(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    body = {"email": "Lena@Example.org", "name": "Lena", "consent": True, "source": ARTICLE}
    response = client.post("/api/subscribe", json=body, **browser())
    assert response.status_code == 202
    assert response.json == {"status": "check your inbox"}
    found = subscriber(desk.engine, "lena@example.org")
    (given,) = given_events(desk.engine, found.id)
    assert (given["source"], given["ip"], given["user_agent"]) == (ARTICLE, "198.51.100.7", UA)
    assert len(confirm_links(smtp_server)) == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "lena@example.org"}, "consent", "Tick the box"),
        ({"email": "lena@example.org", "consent": False}, "consent", "Tick the box"),
        ({"email": "lena@example.org", "consent": "yes"}, "consent", "Tick the box"),
        ({"email": "lena@example.org", "consent": 1}, "consent", "Tick the box"),
        ({"consent": True}, "email", "Enter your email address."),
        ({"email": "nope", "consent": True}, "email", "An email address must have an @-sign."),
        ({"email": ["a@example.org"], "consent": True}, "email", "Must be a string, not list."),
        (
            {"email": "a@example.org", "name": 7, "consent": True},
            "name",
            "Must be a string, not int.",
        ),
        (
            {"email": "a@example.org", "name": "a\nb", "consent": True},
            "name",
            "Write it on one line",
        ),
        (
            {"email": "a@example.org", "consent": True, "source": "x" * 2001},
            "source",
            "Shorten it to 2000 characters at most.",
        ),
        (
            {"email": "a@example.org", "consent": True, "policy_version": "1999"},
            "consent",
            "privacy policy has changed",
        ),
        (["lena@example.org"], "body", "Send one JSON object"),
        ("lena@example.org", "body", "Send one JSON object"),
    ],
)
def test_the_api_refuses_bad_input_with_the_field_and_stores_nothing(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer, body: Any, field: str, message: str
) -> None:
    before = stored(desk.engine)
    response = client.post("/api/subscribe", json=body, **browser())
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.json["field"] == field
    assert message in response.json["error"]
    assert stored(desk.engine) == before and smtp_server.handler.received == []


def test_the_api_refuses_json_it_cannot_parse(desk: Desk, client: FlaskClient) -> None:
    response = client.post(
        "/api/subscribe", data='{"email": ', content_type="application/json", **browser()
    )
    assert response.status_code == 400 and response.json["field"] == "body"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("email=lena%40example.org&consent=yes", "application/x-www-form-urlencoded"),
        ('{"email": "lena@example.org", "consent": true}', "text/plain"),
        ('{"email": "lena@example.org", "consent": true}', None),
    ],
)
def test_the_api_wants_json(
    desk: Desk, client: FlaskClient, data: str, content_type: str | None
) -> None:
    before = stored(desk.engine)
    response = client.post("/api/subscribe", data=data, content_type=content_type, **browser())
    assert response.status_code == 415 and "application/json" in response.json["error"]
    assert stored(desk.engine) == before


def test_the_api_takes_only_post(client: FlaskClient) -> None:
    response = client.get("/api/subscribe")
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert "POST" in response.headers["Allow"]


def test_a_mail_the_relay_refuses_for_good_is_not_tried_again(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.refuse["lena@example.org"] = "550 5.1.1 no such user"
    assert client.post("/subscribe", data=GOOD, **browser()).status_code == 200
    assert queued(desk.engine) == []  # given up at once: a 5xx does not change in an hour
    assert smtp_server.handler.received == []


def test_a_template_that_fails_holds_back_its_mail_and_the_others_go(
    desk: Desk, settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    import shutil

    from newsletter.delivery.notice_queue import drain, queue_mails
    from newsletter.readers.subscribers import Mail

    from .conftest import ROOT

    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "welcome.txt").write_text("{{ broken(")  # a designer's slip
    anna, tom, _ = seed_readers(desk.engine)
    with desk.engine.begin() as conn:
        queue_mails(conn, [Mail("welcome", anna, "anna@example.org", "Анна"),
                           Mail("welcome", tom, "tom@example.org", "Tom")],
                    real_now())  # clock: the drain below reads the wall clock  # fmt: skip
        queue_mails(conn, [Mail("confirm", tom, "tom@example.org", "", "tok")],
                    real_now())  # clock: the drain below reads the wall clock  # fmt: skip
    broken = replace(settings, templates=templates, smtp_url=smtp_server.url)
    desk_now = Desk(broken).use_kept_key()
    report = drain(desk_now.engine, desk_now.settings, desk_now.transport, desk_now.now)
    assert report.sent == 1 and len(report.failures) == 2
    assert [r.recipients for r in smtp_server.handler.received] == [["tom@example.org"]]
    assert sorted((r.kind, r.attempts) for r in queued(desk.engine)) == [("welcome", 1)] * 2

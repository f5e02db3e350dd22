"""The pages readers reach from their mail, through Flask's test client.

Mail goes to a real aiosmtpd server on loopback. The library takes `now` explicitly
but the pages read the real clock, so tokens the pages check for expiry are made
with the real current time.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from typing import Any

import lxml.html
import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from newsletter.app import Desk
from newsletter.curation.issues import get_issue
from newsletter.delivery.send import send_issue
from newsletter.language import long_date
from newsletter.readers.consent import Evidence, Policy, publish_policy
from newsletter.readers.optin import Limits, SignUp, sign_up
from newsletter.readers.subscribers import Mail, get_subscriber, request_reconsent
from newsletter.readers.tokens import (
    CONFIRM,
    RECONSENT,
    read_reader_token,
    reader_token,
    timed_token,
)
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import Envelope, Transport
from newsletter.transport.pool import open_transport

from .conftest import NOW, SECRET, SMTPServer, approved_issue, real_now, seed_readers

IP = "198.51.100.7"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
BROWSER: dict[str, Any] = {"headers": {"User-Agent": UA}, "environ_base": {"REMOTE_ADDR": IP}}
SIGNUP_FORM = Evidence(source="https://example.org/newsletter", ip="192.0.2.44", user_agent=UA)
ONE_CLICK: dict[str, dict[str, Any]] = {
    "urlencoded": {
        "data": "List-Unsubscribe=One-Click",
        "content_type": "application/x-www-form-urlencoded",
    },
    "multipart": {
        "data": {"List-Unsubscribe": "One-Click"},
        "content_type": "multipart/form-data",
    },
}


# --- looking at the database and the pages -------------------------------------------


def status(engine: sa.Engine, subscriber_id: int) -> str:
    with engine.connect() as conn:
        return get_subscriber(conn, subscriber_id).status


def events(engine: sa.Engine, subscriber_id: int, kind: str | None = None) -> list[dict[str, Any]]:
    e = db.consent_events
    query = sa.select(e).where(e.c.subscriber_id == subscriber_id).order_by(e.c.id)
    if kind:
        query = query.where(e.c.kind == kind)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a reader's page could change, to show that nothing did."""
    tables = (db.subscribers, db.consent_events, db.deliveries, db.suppressions)
    with engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key))]
            for t in tables
        }


def text_of(response: Any) -> str:
    """The page's words, whitespace collapsed."""
    document = lxml.html.document_fromstring(response.get_data(as_text=True))
    return " ".join(document.text_content().split())


def post_forms(response: Any) -> list[Any]:
    document = lxml.html.document_fromstring(response.get_data(as_text=True))
    return [f for f in document.forms if (f.method or "").lower() == "post"]


def assert_one_button_page(response: Any) -> None:
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    document = lxml.html.document_fromstring(response.get_data(as_text=True))
    assert len(document.forms) == 1
    (form,) = post_forms(response)
    assert form.get("action") in (None, "")  # posts back to the very link in the mail
    assert len(document.xpath("//button")) == 1
    assert form.xpath(".//button[@type='submit']")


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def path_of(url: str) -> str:
    return re.sub(r"^https://news\.example\.org", "", url)


def new_signup(
    engine: sa.Engine, address: str, when: datetime, name: str = "Лена Смирнова"
) -> Mail:
    with engine.begin() as conn:
        mail = sign_up(conn, SignUp(address, True, name, SIGNUP_FORM), Limits(), SECRET, when)
    assert mail is not None and mail.kind == "confirm"
    return mail


def publish(
    engine: sa.Engine, version: str, days_after: int, wording: str = "", text: str = ""
) -> Policy:
    """A new policy version, published after the one `init` loaded (at NOW)."""
    text = text or f"# Privacy policy {version}\n\nWhat we keep, and why.\n"
    wording = wording or f"I agree to the privacy policy version {version}."
    with engine.begin() as conn:
        return publish_policy(conn, version, text, wording, NOW + timedelta(days=days_after))


def ask_reconsent(engine: sa.Engine, policy: Policy) -> dict[int, str]:
    """Readers' reconsent tokens, by subscriber id."""
    with engine.begin() as conn:
        mails = request_reconsent(conn, policy, SECRET, real_now())
    return {mail.subscriber_id: mail.token for mail in mails}


# --- RFC 8058 one-click unsubscribe ----------------------------------------------------


@pytest.mark.parametrize("encoding", sorted(ONE_CLICK))
def test_one_click_unsubscribe_answers_a_plain_200_and_records_the_withdrawal(
    desk: Desk, client: FlaskClient, encoding: str
) -> None:
    anna, tom, noname = seed_readers(desk.engine)
    url = f"/unsubscribe/{reader_token(SECRET, tom)}"

    for attempt in (1, 2):  # the second POST (a retrying mail client) is harmless
        response = client.post(url, **ONE_CLICK[encoding], **BROWSER)
        assert response.status_code == 200, attempt
        assert "Location" not in response.headers
        assert "Set-Cookie" not in response.headers
        assert status(desk.engine, tom) == "unsubscribed"

    withdrawn = events(desk.engine, tom, "withdrawn")
    assert len(withdrawn) == 1
    assert "one-click" in withdrawn[0]["source"]
    assert (withdrawn[0]["ip"], withdrawn[0]["user_agent"]) == (IP, UA)
    assert status(desk.engine, anna) == status(desk.engine, noname) == "active"


def test_the_button_on_the_unsubscribe_page_unsubscribes_too(
    desk: Desk, client: FlaskClient
) -> None:
    _anna, tom, _noname = seed_readers(desk.engine)
    response = client.post(f"/unsubscribe/{reader_token(SECRET, tom)}", data={}, **BROWSER)
    assert response.status_code == 200
    assert "You are unsubscribed" in text_of(response)
    (withdrawn,) = events(desk.engine, tom, "withdrawn")
    assert withdrawn["source"] == "unsubscribe page"
    assert (withdrawn["ip"], withdrawn["user_agent"]) == (IP, UA)


def test_opening_the_unsubscribe_link_shows_one_button_and_changes_nothing(
    desk: Desk, client: FlaskClient
) -> None:
    _anna, tom, _noname = seed_readers(desk.engine)
    before = snapshot(desk.engine)
    response = client.get(f"/unsubscribe/{reader_token(SECRET, tom)}", **BROWSER)
    assert_one_button_page(response)
    assert "Unsubscribe" in text_of(response)
    assert status(desk.engine, tom) == "active"
    assert events(desk.engine, tom, "withdrawn") == []
    assert snapshot(desk.engine) == before


# --- links that do not work ------------------------------------------------------------

ROUTES = {  # page: (path with the token left open, the purpose of its token, methods)
    "unsubscribe": ("/unsubscribe/{}", "reader", ("GET", "POST")),
    "confirm": ("/confirm/{}", "confirm", ("GET", "POST")),
    "reconsent": ("/reconsent/{}", "reconsent", ("GET", "POST")),
    "view": ("/view/1/{}", "reader", ("GET",)),
}
PURPOSES = ("reader", "confirm", "reconsent")


def flip_signature(token: str) -> str:
    payload, signature = token.rsplit(".", 1)
    first = "B" if signature[0] == "A" else "A"
    return f"{payload}.{first}{signature[1:]}"


def splice(payload_from: str, signature_from: str) -> str:
    return f"{payload_from.rsplit('.', 1)[0]}.{signature_from.rsplit('.', 1)[1]}"


DEFECTS: dict[str, Callable[[Callable[..., str], str, int, int], str]] = {
    # (mint, the page's purpose, this reader, another reader) -> a token that must not work
    "tampered": lambda mint, purpose, me, other: flip_signature(mint(purpose, me)),
    "truncated": lambda mint, purpose, me, other: mint(purpose, me)[:-4],
    "cut in half": lambda mint, purpose, me, other: mint(purpose, me)[:12],
    "another reader's signature": lambda mint, purpose, me, other: splice(
        mint(purpose, me), mint(purpose, other)
    ),
    "another desk's secret": lambda mint, purpose, me, other: mint(
        purpose, me, "some-other-desk-secret-0123456789"
    ),
    **{
        f"made for {wrong}": (lambda mint, purpose, me, other, wrong=wrong: mint(wrong, me))
        for wrong in PURPOSES
    },
}
BAD_LINKS = [
    (route, defect)
    for route, (_path, purpose, _methods) in ROUTES.items()
    for defect in DEFECTS
    if defect != f"made for {purpose}"
]


@pytest.mark.parametrize(("route", "defect"), BAD_LINKS)
def test_a_bad_link_gets_a_clear_400_page_and_changes_nothing(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer, route: str, defect: str
) -> None:
    """Each reader is in the state where the page's genuine link would change something."""
    anna, tom, _noname = seed_readers(desk.engine)
    ask_reconsent(desk.engine, publish(desk.engine, "2026-12-01", 1))
    lena = new_signup(desk.engine, "lena@example.org", real_now()).subscriber_id
    ivan = new_signup(desk.engine, "ivan@example.org", real_now(), "Иван").subscriber_id
    assert status(desk.engine, anna) == status(desk.engine, tom) == "reconsent"

    def mint(purpose: str, subscriber_id: int, secret: str = SECRET) -> str:
        if purpose == "reader":
            return reader_token(secret, subscriber_id)
        if purpose == "confirm":
            given = events(desk.engine, subscriber_id)[-1]["id"]
            return timed_token(secret, CONFIRM, subscriber_id, str(given), real_now())
        return timed_token(secret, RECONSENT, subscriber_id, "2026-12-01", real_now())

    path, purpose, methods = ROUTES[route]
    me, other = (lena, ivan) if purpose == "confirm" else (anna, tom)
    token = DEFECTS[defect](mint, purpose, me, other)
    before = snapshot(desk.engine)

    for method in methods:
        response = client.open(path.format(token), method=method, data={}, **BROWSER)
        assert response.status_code == 400, (method, response.get_data(as_text=True))
        assert response.mimetype == "text/html"
        words = text_of(response)
        assert "This link does not work" in words
        assert "this link is not valid" in words
        assert post_forms(response) == []  # no button to press on a broken link
    assert snapshot(desk.engine) == before
    assert smtp_server.handler.received == []


# --- an unsubscribe in the middle of a send ---------------------------------------------


@dataclass
class UnsubscribeDuringSend:
    """Hands every message to the relay; before the first one, a reader clicks one-click."""

    inner: Transport
    client: FlaskClient
    token: str
    clicked: list[int] = field(default_factory=list)

    def send(self, envelope: Envelope) -> str:
        if not self.clicked:
            response = self.client.post(
                f"/unsubscribe/{self.token}", **ONE_CLICK["urlencoded"], **BROWSER
            )
            self.clicked.append(response.status_code)
        return self.inner.send(envelope)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else a transport offers, as it is
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize("leaver", ["tom@example.org", "noname@example.net"])
def test_a_reader_who_unsubscribes_during_a_send_gets_nothing_more(
    desk: Desk,
    client: FlaskClient,
    smtp_settings: Settings,
    smtp_server: SMTPServer,
    leaver: str,
) -> None:
    ids = dict(
        zip(
            ("anna@example.org", "tom@example.org", "noname@example.net"),
            seed_readers(desk.engine),
            strict=True,
        )
    )
    issue = approved_issue(desk.engine)
    transport = UnsubscribeDuringSend(
        open_transport(smtp_settings.smtp_url, smtp_settings.outbox),
        client,
        reader_token(SECRET, ids[leaver]),
    )
    try:
        report = send_issue(issue.id, desk.engine, smtp_settings, transport, lambda: NOW)
    finally:
        transport.close()

    assert transport.clicked == [200]
    assert status(desk.engine, ids[leaver]) == "unsubscribed"
    recipients = [r.recipients[0] for r in smtp_server.handler.received]
    assert leaver not in recipients
    assert sorted(recipients) == sorted(set(ids) - {leaver})
    d = db.deliveries
    with desk.engine.connect() as conn:
        row = conn.execute(
            sa.select(d.c.status, d.c.message_id).where(
                d.c.issue_id == issue.id, d.c.subscriber_id == ids[leaver]
            )
        ).one()
    assert row.status == "skipped" and row.message_id is None
    assert (report.sent, report.skipped, report.status) == (2, 1, "sent")


# --- double opt-in -----------------------------------------------------------------------


def send_day_sentences(settings: Settings, before: datetime) -> set[str]:
    """'The next issue arrives on …' as the page may say it (the clock moved meanwhile)."""
    return {long_date(settings.next_send_day(at), settings.language) for at in (before, real_now())}


def test_double_opt_in_through_the_pages(
    desk: Desk, client: FlaskClient, smtp_settings: Settings, smtp_server: SMTPServer
) -> None:
    started = real_now()
    mail = new_signup(desk.engine, "lena@example.org", started)
    lena = mail.subscriber_id
    (given,) = events(desk.engine, lena)
    assert given["kind"] == "given" and given["policy_version"] == "2026-11-01"
    # a newer policy appears before Lena clicks: she agreed to the one she saw
    publish(desk.engine, "2026-12-01", 1)
    url = f"/confirm/{mail.token}"

    before = snapshot(desk.engine)
    response = client.get(url, **BROWSER)  # a mail scanner opening the link
    assert_one_button_page(response)
    assert "Confirm your subscription" in text_of(response)
    assert snapshot(desk.engine) == before and status(desk.engine, lena) == "pending"

    response = client.post(url, **BROWSER)
    assert response.status_code == 200
    words = text_of(response)
    assert "You are subscribed" in words
    assert any(
        f"The next issue arrives on {day}." in words
        for day in send_day_sentences(smtp_settings, started)
    )
    assert status(desk.engine, lena) == "active"
    with desk.engine.connect() as conn:
        assert get_subscriber(conn, lena).policy_version == "2026-11-01"
    (confirmed,) = events(desk.engine, lena, "confirmed")
    assert (confirmed["ip"], confirmed["user_agent"]) == (IP, UA)
    assert confirmed["source"].endswith(url)
    copied = ("policy_version", "policy_sha256", "wording")
    assert {k: confirmed[k] for k in copied} == {k: given[k] for k in copied}

    (welcome,) = smtp_server.handler.received
    assert welcome.recipients == ["lena@example.org"]
    message = parse(welcome.data)
    body = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Dear Лена Смирнова," in body
    assert any(day in " ".join(body.split()) for day in send_day_sentences(smtp_settings, started))
    link = re.search(r"https://news\.example\.org/unsubscribe/[\w.-]+", body)
    assert link and read_reader_token(SECRET, link.group(0).rsplit("/", 1)[1]) == lena
    assert f'href="{link.group(0)}"' in html
    assert link.group(0) in str(message["List-Unsubscribe"])

    after = snapshot(desk.engine)
    replay = client.post(url, **BROWSER)  # the same link, clicked again
    assert replay.status_code == 200
    assert "already subscribed" in text_of(replay)
    assert "Nothing has changed" in text_of(replay)
    assert snapshot(desk.engine) == after
    assert len(smtp_server.handler.received) == 1

    # the link in the welcome mail works: one click, and Lena is off the list
    unsubscribed = client.post(path_of(link.group(0)), **ONE_CLICK["multipart"], **BROWSER)
    assert unsubscribed.status_code == 200 and status(desk.engine, lena) == "unsubscribed"


@pytest.mark.parametrize(
    ("age", "works"),
    [(timedelta(days=7) - timedelta(minutes=5), True), (timedelta(days=7, minutes=5), False)],
    ids=["just within the ttl", "just past the ttl"],
)
def test_a_confirm_link_works_until_it_expires(
    desk: Desk,
    client: FlaskClient,
    smtp_settings: Settings,
    smtp_server: SMTPServer,
    age: timedelta,
    works: bool,
) -> None:
    assert smtp_settings.confirm_ttl == timedelta(days=7)
    mail = new_signup(desk.engine, "lena@example.org", real_now() - age)
    before = snapshot(desk.engine)
    if works:
        assert client.post(f"/confirm/{mail.token}", **BROWSER).status_code == 200
        assert status(desk.engine, mail.subscriber_id) == "active"
        return
    for method in ("GET", "POST"):
        response = client.open(f"/confirm/{mail.token}", method=method, **BROWSER)
        assert response.status_code == 400
        words = text_of(response)
        assert "This link does not work" in words
        assert "this link has expired: please sign up again to get a new one" in words
        assert post_forms(response) == []
    assert snapshot(desk.engine) == before
    assert status(desk.engine, mail.subscriber_id) == "pending"
    assert smtp_server.handler.received == []


def test_a_confirm_link_from_before_an_unsubscribe_cannot_reactivate(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    first = new_signup(desk.engine, "lena@example.org", real_now())
    lena = first.subscriber_id
    assert client.post(f"/confirm/{first.token}", **BROWSER).status_code == 200
    leave = f"/unsubscribe/{reader_token(SECRET, lena)}"
    assert client.post(leave, **ONE_CLICK["urlencoded"], **BROWSER).status_code == 200
    assert status(desk.engine, lena) == "unsubscribed"
    mailed = len(smtp_server.handler.received)

    before = snapshot(desk.engine)
    response = client.post(f"/confirm/{first.token}", **BROWSER)
    assert response.status_code == 400
    assert "the subscription was ended since" in text_of(response)
    assert snapshot(desk.engine) == before

    # she signs up again: the new link confirms, the old one still does not
    second = new_signup(desk.engine, "lena@example.org", real_now())
    assert second.subscriber_id == lena and status(desk.engine, lena) == "pending"
    before = snapshot(desk.engine)
    assert client.post(f"/confirm/{first.token}", **BROWSER).status_code == 400
    assert snapshot(desk.engine) == before and status(desk.engine, lena) == "pending"
    assert client.post(f"/confirm/{second.token}", **BROWSER).status_code == 200
    assert status(desk.engine, lena) == "active"
    assert len(events(desk.engine, lena, "confirmed")) == 2
    assert len(smtp_server.handler.received) == mailed + 1  # one more welcome, no more


def test_a_confirm_link_for_a_sign_up_withdrawn_before_confirming_does_nothing(
    desk: Desk, client: FlaskClient, smtp_server: SMTPServer
) -> None:
    mail = new_signup(desk.engine, "lena@example.org", real_now())
    page = client.post(f"/unsubscribe/{reader_token(SECRET, mail.subscriber_id)}", **BROWSER)
    assert page.status_code == 200 and status(desk.engine, mail.subscriber_id) == "unsubscribed"
    before = snapshot(desk.engine)
    response = client.post(f"/confirm/{mail.token}", **BROWSER)
    assert response.status_code == 400
    assert "This link does not work" in text_of(response)
    assert snapshot(desk.engine) == before
    assert smtp_server.handler.received == []


# --- re-consent to a new policy --------------------------------------------------------

NEW_WORDING = "Send me the weekly newsletter; I have read privacy policy version two."


def test_reconsent_through_the_pages(desk: Desk, client: FlaskClient) -> None:
    anna, tom, noname = seed_readers(desk.engine)
    policy = publish(desk.engine, "2026-12-01", 1, wording=NEW_WORDING)
    tokens = ask_reconsent(desk.engine, policy)
    assert sorted(tokens) == [anna, tom, noname]
    assert {status(desk.engine, r) for r in (anna, tom, noname)} == {"reconsent"}
    (asked,) = events(desk.engine, tom, "reconsent_requested")
    assert asked["policy_version"] == "2026-12-01"
    url = f"/reconsent/{tokens[tom]}"

    before = snapshot(desk.engine)
    response = client.get(url, **BROWSER)
    assert_one_button_page(response)
    words = text_of(response)
    assert NEW_WORDING in words and "version 2026-12-01" in words
    assert snapshot(desk.engine) == before

    response = client.post(url, **BROWSER)
    assert response.status_code == 200 and "Thank you" in text_of(response)
    with desk.engine.connect() as conn:
        found = get_subscriber(conn, tom)
    assert (found.status, found.policy_version) == ("active", "2026-12-01")
    (confirmed,) = events(desk.engine, tom, "confirmed")
    assert confirmed["policy_version"] == "2026-12-01"
    assert (confirmed["policy_sha256"], confirmed["wording"]) == (policy.sha256, NEW_WORDING)
    assert (confirmed["ip"], confirmed["user_agent"]) == (IP, UA)
    assert status(desk.engine, anna) == status(desk.engine, noname) == "reconsent"

    after = snapshot(desk.engine)
    replay = client.post(url, **BROWSER)
    assert replay.status_code == 200 and "Nothing to confirm" in text_of(replay)
    assert snapshot(desk.engine) == after


def test_the_reconsent_page_escapes_the_wording(desk: Desk, client: FlaskClient) -> None:
    (anna,) = seed_readers(desk.engine, (("anna@example.org", "Anna"),))
    wording = 'I agree <img src=x onerror="alert(1)"> & want it.'
    tokens = ask_reconsent(desk.engine, publish(desk.engine, "2026-12-01", 1, wording=wording))
    response = client.get(f"/reconsent/{tokens[anna]}")
    html = response.get_data(as_text=True)
    assert "<img" not in html
    assert "I agree &lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; want it." in html


def test_a_reconsent_link_for_a_superseded_policy_is_refused(
    desk: Desk, client: FlaskClient
) -> None:
    (anna,) = seed_readers(desk.engine, (("anna@example.org", "Anna"),))
    tokens = ask_reconsent(desk.engine, publish(desk.engine, "2026-12-01", 1))
    publish(desk.engine, "2027-01-01", 2)

    before = snapshot(desk.engine)
    response = client.post(f"/reconsent/{tokens[anna]}", **BROWSER)
    assert response.status_code == 400
    words = text_of(response)
    assert "This link does not work" in words
    assert "a newer privacy policy has been published" in words
    assert snapshot(desk.engine) == before
    assert status(desk.engine, anna) == "reconsent"


def test_a_superseded_reconsent_link_shows_no_button(desk: Desk, client: FlaskClient) -> None:
    (anna,) = seed_readers(desk.engine, (("anna@example.org", "Anna"),))
    tokens = ask_reconsent(desk.engine, publish(desk.engine, "2026-12-01", 1))
    publish(desk.engine, "2027-01-01", 2)
    response = client.get(f"/reconsent/{tokens[anna]}", **BROWSER)
    assert response.status_code == 400
    assert post_forms(response) == []


def test_a_reader_waiting_on_an_older_policy_gets_a_link_for_the_newer_one(
    desk: Desk, client: FlaskClient
) -> None:
    (anna,) = seed_readers(desk.engine, (("anna@example.org", "Anna"),))
    ask_reconsent(desk.engine, publish(desk.engine, "2026-12-01", 1))
    tokens = ask_reconsent(desk.engine, publish(desk.engine, "2027-01-01", 2))
    assert anna in tokens
    assert client.post(f"/reconsent/{tokens[anna]}", **BROWSER).status_code == 200
    assert status(desk.engine, anna) == "active"


# --- the issue online ------------------------------------------------------------------


def send_to_readers(desk: Desk, settings: Settings) -> tuple[int, Any]:
    issue = approved_issue(desk.engine)
    transport = open_transport(settings.smtp_url, settings.outbox)
    try:
        return issue.id, send_issue(issue.id, desk.engine, settings, transport, lambda: NOW)
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("name", "greeting"),
    [
        ("Tom Baker", "Dear Tom Baker,"),
        ("Анна Петрова", "Dear Анна Петрова,"),
        ("", "Dear reader,"),
        ("O'Brien & <Sons>", "Dear O&#39;Brien &amp; &lt;Sons&gt;,"),
    ],
)
def test_the_issue_online_is_the_readers_own_copy(
    desk: Desk, client: FlaskClient, smtp_settings: Settings, name: str, greeting: str
) -> None:
    (reader,) = seed_readers(desk.engine, (("reader@example.org", name),))
    issue_id, report = send_to_readers(desk, smtp_settings)
    assert report.status == "sent"
    token = reader_token(SECRET, reader)

    response = client.get(f"/view/{issue_id}/{token}")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert greeting in html.replace("&#x27;", "&#39;")
    assert "<Sons>" not in html
    assert "Главное за неделю" in html
    assert f"https://news.example.org/unsubscribe/{token}" in html
    assert f"https://news.example.org/view/{issue_id}/{token}" in html
    assert "reader@example.org" in html


@pytest.mark.parametrize("which", ["approved, not sent", "no such issue"])
def test_an_issue_not_sent_is_not_online(desk: Desk, client: FlaskClient, which: str) -> None:
    (reader,) = seed_readers(desk.engine, (("reader@example.org", "Tom"),))
    issue = approved_issue(desk.engine)
    issue_id = issue.id if which == "approved, not sent" else issue.id + 100
    response = client.get(f"/view/{issue_id}/{reader_token(SECRET, reader)}")
    assert response.status_code == 404
    assert "Главное" not in response.get_data(as_text=True)
    with desk.engine.connect() as conn:
        assert get_issue(conn, issue.id).status == "approved"


# --- the privacy policy --------------------------------------------------------------------


def policy_block(response: Any) -> Any:
    document = lxml.html.document_fromstring(response.get_data(as_text=True))
    (block,) = document.find_class("policy")
    return block


@pytest.mark.parametrize(
    ("path", "version", "heading"),
    [
        ("/privacy", "2026-12-01", "Privacy policy 2026-12-01"),
        ("/privacy/2026-12-01", "2026-12-01", "Privacy policy 2026-12-01"),
        ("/privacy/2026-11-01", "2026-11-01", "Newsletter privacy policy"),
    ],
)
def test_privacy_policy_pages_render_markdown(
    desk: Desk, client: FlaskClient, path: str, version: str, heading: str
) -> None:
    publish(desk.engine, "2026-12-01", 1)
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert f"Privacy policy, version {version}" in text_of(response)
    block = policy_block(response)
    assert [h.text_content() for h in block.iter("h1")] == [heading]
    assert "#" not in block.text_content()


def test_the_published_policy_shows_its_sections(desk: Desk, client: FlaskClient) -> None:
    block = policy_block(client.get("/privacy/2026-11-01"))
    sections = [h.text_content() for h in block.iter("h2")]
    assert sections[:2] == ["Who is responsible", "What we collect"]
    assert "Your email address" in [s.text_content() for s in block.iter("strong")]


def test_an_unknown_policy_version_is_404(desk: Desk, client: FlaskClient) -> None:
    response = client.get("/privacy/1999-01-01")
    assert response.status_code == 404
    assert "1999-01-01" in response.get_data(as_text=True)


def test_an_unknown_policy_version_is_not_reflected_as_html(
    desk: Desk, client: FlaskClient
) -> None:
    response = client.get("/privacy/<img src=x onerror=alert(1)>")
    assert response.status_code == 404
    assert "<img" not in response.get_data(as_text=True) or response.mimetype == "text/plain"


def test_raw_html_in_a_policy_is_shown_as_text(desk: Desk, client: FlaskClient) -> None:
    text = (
        "# Policy\n\n<script>alert(1)</script>\n\n"
        'Inline <img src=x onerror="alert(2)"> too, and a [link](javascript:alert(3)).\n'
    )
    publish(desk.engine, "2026-12-24", 1, text=text)
    response = client.get("/privacy/2026-12-24")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    document = lxml.html.document_fromstring(html)
    assert document.xpath("//script | //img | //*[@onerror]") == []
    assert not [a for a in document.iter("a") if "javascript" in (a.get("href") or "")]
    assert "alert(1)" in policy_block(response).text_content()

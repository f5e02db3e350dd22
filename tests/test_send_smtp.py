"""An approved issue sent to a real SMTP server on loopback, read back as a mail client would."""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default

import lxml.html
import pytest
import sqlalchemy as sa

from newsletter.delivery.ledger import counts as ledger_counts
from newsletter.delivery.send import send_issue, send_test
from newsletter.errors import StateError
from newsletter.readers.tokens import read_reader_token
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.pool import open_transport

from .conftest import NOW, READERS, SECRET, approved_issue, seed_readers

REQUIRED = (
    "From", "To", "Subject", "Date", "Message-ID", "List-Id",
    "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
)  # fmt: skip


def clock():
    return NOW


def send(engine: sa.Engine, settings: Settings, issue_id: int, **options: bool):
    transport = open_transport(settings.smtp_url, settings.outbox)
    try:
        return send_issue(issue_id, engine, settings, transport, clock, **options)
    finally:
        transport.close()


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def sent(desk, smtp_settings, smtp_server):
    reader_ids = seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    report = send(desk.engine, smtp_settings, issue.id)
    return issue, report, reader_ids, {r.recipients[0]: r for r in smtp_server.handler.received}


def test_every_reader_gets_one_copy_with_every_header_defect_free(sent) -> None:
    _issue, report, _ids, received = sent
    assert report.sent == 3 and report.failed == 0 and report.status == "sent"
    assert sorted(received) == sorted(e for e, _ in READERS)
    for address, got in received.items():
        message = parse(got.data)
        for name in REQUIRED:
            assert message[name] is not None, f"{name} missing for {address}"
            assert not message[name].defects, (name, message[name].defects)
        assert not message.defects
        assert message["Subject"] == "Главное за неделю: футбол, политика и экономика"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["List-Id"] == "The Weekly <weekly.example.org>"
        assert message["To"].addresses[0].addr_spec == address
        assert got.sender == "weekly@example.org"
    anna = parse(received["anna@example.org"].data)
    assert anna["To"].addresses[0].display_name == "Анна Петрова"
    assert str(anna["From"]) == "Еженедельник <weekly@example.org>"


def test_parts_in_order_and_raw_lines_within_limits(sent) -> None:
    _issue, _report, _ids, received = sent
    for got in received.values():
        message = parse(got.data)
        assert message.get_content_type() == "multipart/alternative"
        types = [part.get_content_type() for part in message.iter_parts()]
        assert types == ["text/plain", "text/html"]
        for part in message.iter_parts():
            assert part.get_content_charset() == "utf-8"
            assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
        assert max(len(line) for line in got.data.split(b"\r\n")) <= 998
        assert b"\n" not in got.data.replace(b"\r\n", b"")


def test_cards_carry_inline_styles_and_cyrillic_survives(sent) -> None:
    _issue, _report, _ids, received = sent
    message = parse(received["tom@example.org"].data)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    document = lxml.html.document_fromstring(html)
    styled = [e for e in document.iter() if e.get("class")]
    assert styled, "the template should mark its components with classes"
    unstyled = [e.get("class") for e in styled if not e.get("style")]
    assert unstyled == [], f"class-only styling left after inlining: {unstyled}"
    cards = document.find_class("card")
    assert len(cards) == 5 and all(card.get("style") for card in cards)
    assert "Арсенал" in html and "Арсенал" in text
    assert "Dear Tom Baker," in text


def test_each_reader_has_their_own_unsubscribe_link_everywhere(sent) -> None:
    _issue, _report, ids, received = sent
    for (address, _name), subscriber_id in zip(READERS, ids, strict=True):
        message = parse(received[address].data)
        header = str(message["List-Unsubscribe"])
        https = re.search(r"<(https://news\.example\.org/unsubscribe/([^>]+))>", header)
        assert https and "<mailto:" in header
        url, token = https.group(1), https.group(2)
        assert read_reader_token(SECRET, token) == subscriber_id
        assert f'href="{url}"' in message.get_body(("html",)).get_content()
        assert url in message.get_body(("plain",)).get_content()


def test_sending_twice_sends_nothing_the_second_time(
    desk, smtp_settings, smtp_server, sent
) -> None:
    issue, _report, _ids, _received = sent
    again = send(desk.engine, smtp_settings, issue.id)
    assert again.sent == 0 and again.already_sent == 3
    assert len(smtp_server.handler.received) == 3
    with desk.engine.connect() as conn:
        assert ledger_counts(conn, issue.id) == {"sent": 3}


def test_ledger_records_message_id_and_relay_reply(desk, sent) -> None:
    issue, *_ = sent
    with desk.engine.connect() as conn:
        rows = conn.execute(
            sa.select(db.deliveries.c.message_id, db.deliveries.c.reply).where(
                db.deliveries.c.issue_id == issue.id
            )
        ).all()
    assert all(r.reply.startswith("250") and r.message_id.startswith("<newsletter.") for r in rows)
    assert len({r.message_id for r in rows}) == 3


def test_refused_recipient_is_failed_in_the_ledger_and_others_still_get_it(
    desk, smtp_settings, smtp_server
) -> None:
    seed_readers(desk.engine)
    smtp_server.handler.refuse["tom@example.org"] = "550 5.1.1 <tom@example.org>: no such user"
    issue = approved_issue(desk.engine)
    report = send(desk.engine, smtp_settings, issue.id)
    assert (report.sent, report.failed) == (2, 1)
    assert "550 5.1.1" in report.failures[0]
    with desk.engine.connect() as conn:
        assert ledger_counts(conn, issue.id) == {"sent": 2, "failed": 1}
    assert sorted(r.recipients[0] for r in smtp_server.handler.received) == [
        "anna@example.org",
        "noname@example.net",
    ]


def test_test_copy_goes_to_the_editor_only_and_is_marked(desk, smtp_settings, smtp_server) -> None:
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    transport = open_transport(smtp_settings.smtp_url, smtp_settings.outbox)
    send_test(issue.id, ["editor@example.org"], desk.engine, smtp_settings, transport, NOW)
    transport.close()
    [got] = smtp_server.handler.received
    message = parse(got.data)
    assert got.recipients == ["editor@example.org"]
    assert message["Subject"].startswith("[TEST] ")
    assert message["X-Newsletter-Test"] == "yes"
    assert "TEST" in message.get_body(("html",)).get_content()
    with desk.engine.connect() as conn:
        assert ledger_counts(conn, issue.id) == {}


def test_dry_run_sends_and_records_nothing(desk, smtp_settings, smtp_server) -> None:
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    report = send(desk.engine, smtp_settings, issue.id, dry_run=True)
    assert report.dry_run and report.audience == 3 and report.sent == 0
    assert smtp_server.handler.received == []
    with desk.engine.connect() as conn:
        assert ledger_counts(conn, issue.id) == {}


def test_a_draft_is_not_sent(desk, smtp_settings, smtp_server) -> None:
    from newsletter.curation.issues import unapprove

    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    with desk.engine.begin() as conn:
        unapprove(conn, issue.id, NOW)
    with pytest.raises(StateError, match="is draft: only an approved issue is sent"):
        send(desk.engine, smtp_settings, issue.id)
    assert smtp_server.handler.received == []


def test_a_reader_who_left_after_the_snapshot_is_skipped(desk, smtp_settings, smtp_server) -> None:
    from newsletter.delivery.ledger import snapshot_audience

    ids = seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    with desk.engine.begin() as conn:
        snapshot_audience(conn, issue.id, NOW)
        conn.execute(db.issues.update().values(status="sending"))
        conn.execute(
            db.subscribers.update()
            .where(db.subscribers.c.id == ids[1])
            .values(status="unsubscribed")
        )
    report = send(desk.engine, smtp_settings, issue.id)
    assert (report.sent, report.skipped) == (2, 1)
    assert "tom@example.org" not in [r.recipients[0] for r in smtp_server.handler.received]


def test_a_reader_at_an_internationalised_domain_gets_the_issue(
    desk, smtp_settings, smtp_server
) -> None:
    seed_readers(desk.engine, (("ivan@пример.рф", "Иван"), ("tom@example.org", "Tom")))
    issue = approved_issue(desk.engine)
    report = send(desk.engine, smtp_settings, issue.id)
    assert (report.sent, report.uncertain, report.paused) == (2, 0, None)
    recipients = sorted(r.recipients[0] for r in smtp_server.handler.received)
    assert recipients == ["ivan@xn--e1afmkfd.xn--p1ai", "tom@example.org"]

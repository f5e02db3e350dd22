"""Messages: prepared once, filled per reader, and the result is what a full build would give."""

from __future__ import annotations

import email
import re
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from email.policy import default

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from itsdangerous import Signer

from newsletter.compose.markers import ReaderValues, RenderedIssue, personalise
from newsletter.compose.messages import Sender, build_message, header_address, prepare_message
from newsletter.compose.rendering import Site, render_issue
from newsletter.curation.issues import check_line
from newsletter.errors import ConfigError, InputError
from newsletter.models import Article, Issue, IssueItem, Reader
from newsletter.readers.tokens import READER, TokenError, read_reader_token, reader_token

from .conftest import NOW, ROOT, SECRET


def an_issue(title: str = "Title", summary: str = "Summary", subject: str = "Subject") -> Issue:
    article = Article(
        id=1,
        url="https://example.org/a?x=1&y=2",
        title=title,
        summary=summary,
        section="News",
        image_url="https://example.org/a.jpg",
        image_alt="A picture",
    )
    return Issue(
        id=7,
        send_date=date(2026, 11, 27),
        status="approved",
        subject=subject,
        preheader="Preheader text that is long enough to show in the inbox list.",
        items=(IssueItem(article=article, position=1),),
    )


SITE = Site(
    name="The Weekly",
    url="https://example.org",
    support_url="https://example.org/support",
    privacy_url="https://example.org/privacy",
    postal_address="1 Example Street",
)


PLAIN = render_issue(an_issue(), SITE, ROOT / "templates")  # rendered once for the module


def a_sender(settings_obj) -> Sender:
    return Sender.from_settings(settings_obj)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def build(
    rendered: RenderedIssue, sender: Sender, reader: Reader
) -> tuple[EmailMessage, ReaderValues]:
    prepared = prepare_message(rendered, sender, 7, NOW)
    values = sender.reader_values(reader, 7)
    return parse(build_message(prepared, reader, values, "<m@example.org>")), values


def test_a_script_title_arrives_escaped_in_html_and_as_text_in_text(settings) -> None:
    rendered = render_issue(an_issue(title="<script>alert(1)</script>"), SITE, ROOT / "templates")
    message, _ = build(rendered, a_sender(settings), Reader(1, "a@example.org", "Ann"))
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in message.get_body(("plain",)).get_content()


def test_a_reader_name_with_markup_or_line_breaks_cannot_inject(settings) -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    evil = 'Eve\r\nBcc: victim@example.org\r\n<b onclick="x">'
    message, _ = build(rendered, a_sender(settings), Reader(1, "eve@example.org", evil))
    assert message["Bcc"] is None
    assert all(not message[h].defects for h in ("To", "Subject", "From"))
    assert "\n" not in str(message["To"]) and "\r" not in str(message["To"])
    html = message.get_body(("html",)).get_content()
    assert "<b onclick" not in html and "&lt;b onclick=&quot;x&quot;&gt;" in html


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Hello\r\nBcc: x@example.org", "subject: must be one line without control characters"),
        ("Tab\there", "subject: must be one line without control characters"),
        ("x" * 201, "subject: 201 characters, at most 200"),
    ],
)
def test_subject_with_line_breaks_is_refused(value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_line("subject", value, 200)


def test_filled_message_equals_personalised_render(settings) -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    reader = Reader(5, "ivan@пример.рф", "Иван «Ваня» O'Brien & Co")
    message, values = build(rendered, a_sender(settings), reader)
    html, text = personalise(rendered, values)
    assert lf(message.get_body(("html",)).get_content()) == lf(html)
    assert lf(message.get_body(("plain",)).get_content()) == lf(text)
    assert message["To"].addresses[0].display_name == reader.name
    assert message["To"].addresses[0].domain == "xn--e1afmkfd.xn--p1ai"


def lf(text: str) -> str:
    """Line ends as a mail client hands them over; MIME text travels with CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def assert_round_trip(rendered: RenderedIssue, sender: Sender, reader: Reader) -> None:
    message, values = build(rendered, sender, reader)
    html, text = personalise(rendered, values)
    assert lf(message.get_body(("plain",)).get_content()) == lf(text)
    assert lf(message.get_body(("html",)).get_content()) == lf(html)
    assert not message.defects


FAST = hypothesis_settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.slow  # many generated examples
@FAST
@given(name=st.text(max_size=80))
def test_any_reader_name_round_trips_through_the_encoding(settings, name: str) -> None:
    assert_round_trip(PLAIN, Sender.from_settings(settings), Reader(3, "r@example.org", name))


@pytest.mark.slow  # many generated examples
@hypothesis_settings(FAST, max_examples=25)
@given(title=st.text(min_size=1, max_size=120), summary=st.text(max_size=300))
def test_any_article_text_round_trips_through_the_encoding(
    settings, title: str, summary: str
) -> None:
    rendered = render_issue(an_issue(title=title, summary=summary), SITE, ROOT / "templates")
    assert_round_trip(rendered, Sender.from_settings(settings), Reader(3, "r@example.org", "Ann"))


def test_article_text_cannot_pose_as_a_reader_marker(settings) -> None:
    first = render_issue(an_issue(), SITE, ROOT / "templates")
    guessed = f"NL{first.nonce}TEMAIL0E"  # a marker from an earlier render
    second = render_issue(an_issue(title=guessed), SITE, ROOT / "templates")
    message, _ = build(second, a_sender(settings), Reader(1, "secret@example.org", ""))
    assert guessed in message.get_body(("plain",)).get_content()


def test_reader_tokens_cannot_be_moved_or_altered() -> None:
    token = reader_token(SECRET, 41)
    assert read_reader_token(SECRET, token) == 41
    forged = token.replace(token.split(".")[0], reader_token(SECRET, 42).split(".")[0])
    for bad in (forged, token[:-2], token + "x", reader_token("another-secret", 41), ""):
        with pytest.raises(TokenError):
            read_reader_token(SECRET, bad)


@given(st.integers(min_value=0, max_value=10**12), st.text(min_size=1))
def test_reader_tokens_are_what_itsdangerous_signs(subscriber_id: int, secret: str) -> None:
    signed = Signer(secret, salt=READER).sign(str(subscriber_id)).decode("ascii")
    assert reader_token(secret, subscriber_id) == signed


def test_each_reader_gets_their_own_token_in_their_own_copy(settings) -> None:
    rendered = render_issue(an_issue(), SITE, ROOT / "templates")
    sender = a_sender(settings)
    a, va = build(rendered, sender, Reader(1, "a@example.org", ""))
    _b, vb = build(rendered, sender, Reader(2, "b@example.org", ""))
    assert va.unsubscribe_url != vb.unsubscribe_url
    assert va.unsubscribe_url in str(a["List-Unsubscribe"])
    assert vb.unsubscribe_url not in a.as_string()


def test_sending_without_a_secret_key_is_refused(settings) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: is not set"):
        Sender.from_settings(replace(settings, secret_key=None))


def test_header_address_encodes_non_ascii_names() -> None:
    encoded = header_address(Reader(1, "a@example.org", "Анна"))
    assert encoded.isascii() and encoded.endswith("<a@example.org>")


def test_message_ids_repeat_within_a_desk_and_never_across_desks(settings) -> None:
    """A resumed send builds a reader's copy again with the same Message-ID; another desk on
    the same domain, or this desk's database made anew (a new key), never gives one of its
    IDs, which Gmail would drop as a duplicate."""
    from newsletter.compose.messages import message_id

    here = a_sender(settings)
    elsewhere = a_sender(replace(settings, secret_key="another desk's key, 32 chars or more!"))
    assert here.domain == elsewhere.domain
    assert message_id(7, 1, here) == message_id(7, 1, here)
    ours = {message_id(issue, reader, here) for issue in range(1, 20) for reader in range(1, 50)}
    theirs = {message_id(i, r, elsewhere) for i in range(1, 20) for r in range(1, 50)}
    assert len(ours) == 19 * 49 and not ours & theirs
    parsed = parse(b"Message-ID: " + message_id(7, 1, here).encode() + b"\r\n\r\nx")
    assert not parsed["Message-ID"].defects


def test_an_issue_is_bulk_mail_and_a_notice_is_auto_generated(settings) -> None:
    sender = a_sender(settings)
    reader = Reader(1, "a@example.org", "Ann")
    issue, _ = build(PLAIN, sender, reader)
    assert issue["Precedence"] == "bulk" and issue["Auto-Submitted"] is None
    notice = prepare_message(PLAIN, sender, 0, NOW, list_headers=False, notice=True)
    values = sender.reader_values(reader, 0)
    mail = parse(build_message(notice, reader, values, "<n@example.org>"))
    assert mail["Auto-Submitted"] == "auto-generated" and mail["Precedence"] is None


def test_a_line_that_starts_with_from_survives_mbox_storage(settings) -> None:
    """An editor's note line "From the editor" would be stored as ">From the editor" by an
    mbox and break the DKIM body hash: it travels as =46rom and reads as From."""
    rendered = render_issue(an_issue(summary="From the editor: a note.\nFrom here on, news."),
                            SITE, ROOT / "templates")  # fmt: skip
    sender = a_sender(settings)
    prepared = prepare_message(rendered, sender, 7, NOW)
    reader = Reader(1, "a@example.org", "From Somewhere")
    raw = build_message(prepared, reader, sender.reader_values(reader, 7), "<m@example.org>")
    assert not any(line.startswith(b"From ") for line in raw.split(b"\r\n"))
    message = parse(raw)
    text = message.get_body(("plain",)).get_content()
    assert "From the editor: a note." in text and "From here on, news." in text


@pytest.mark.parametrize(
    ("name", "longest"),
    [("漢" * 300, 78), ("Анна " * 60, 78), ('Eve, "the" <x@y> ' * 15, 78), ("A" * 300, 78)],
)  # a word of 300 letters too: encoded words break where the letters do not
def test_a_long_name_gives_a_valid_folded_to_header(settings, name: str, longest: int) -> None:
    """RFC 5322 caps a line at 998 octets (78 recommended), RFC 2047 an encoded word at 75
    characters: a 300-character name is folded, and still names only its reader."""
    reader = Reader(1, "a@example.org", name.strip())
    sender = a_sender(settings)
    prepared = prepare_message(PLAIN, sender, 7, NOW)
    raw = build_message(prepared, reader, sender.reader_values(reader, 7), "<m@example.org>")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    to_lines = re.search(rb"\r\nTo: .*?\r\n(?=\S)", head, re.S)
    assert to_lines and max(len(line) for line in to_lines.group(0).split(b"\r\n")) <= longest
    words = re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head)
    assert all(len(w) <= 75 for w in words)
    to = parse(raw)["To"]
    assert not to.defects and [a.addr_spec for a in to.addresses] == ["a@example.org"]
    # whitespace between encoded words is no part of the name (RFC 2047 6.2); Python's
    # parser keeps it, mail clients drop it
    assert to.addresses[0].display_name.replace(" ", "") == name.strip().replace(" ", "")


def test_one_click_unsubscribe_is_offered_over_https_only(settings) -> None:
    """RFC 8058: the one-click POST needs an https URI; over http the issue keeps its
    List-Unsubscribe (link and mailto) without List-Unsubscribe-Post, and preflight says why."""
    from newsletter.compose.issue import render_checked

    reader = Reader(1, "a@example.org", "Ann")
    secure, _ = build(PLAIN, a_sender(settings), reader)
    assert secure["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain_settings = replace(settings, base_url="http://news.example.org")
    plain, _ = build(PLAIN, a_sender(plain_settings), reader)
    assert plain["List-Unsubscribe-Post"] is None
    assert "http://news.example.org/unsubscribe/" in str(plain["List-Unsubscribe"])
    _, report = render_checked(an_issue(), plain_settings, a_sender(plain_settings))
    assert "one-click-http" in {f.code for f in report.findings}
    _, report = render_checked(an_issue(), settings, a_sender(settings))
    assert "one-click-http" not in {f.code for f in report.findings}

"""Bounce and complaint mail: return paths, real bounces from a Maildir, ARF, auto-replies,
forgeries, mbox, the SMTP listener, hygiene and the send guard, and a full cycle."""

from __future__ import annotations

import json
import smtplib
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from newsletter.app import Desk
from newsletter.bounces.classify import classify
from newsletter.bounces.mailboxes import process_sources
from newsletter.cli import cli
from newsletter.compose.returnpath import ReturnPath, ReturnPathReader, return_paths
from newsletter.curation.issues import approve, new_issue, pick, set_fields
from newsletter.delivery.notices import send_notices
from newsletter.readers.consent import Evidence, current_policy
from newsletter.readers.optin import Limits, SignUp, sign_up
from newsletter.readers.subscribers import add_active_reader, get_subscriber
from newsletter.readers.suppression import is_suppressed
from newsletter.reasons import read
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.base import MemoryTransport

from .conftest import NOW, SECRET, approved_issue, free_port, seed_readers

BOUNCES = Path(__file__).parent / "bounces"
BOUNCE_ADDRESS = "bounces@news.example.org"

# flufl.bounce's samples: (file, the addresses its own tests expect, what we make of it)
SAMPLES = [
    ("dsn_01.txt", ["userx@example.com"], "hard"),  # 5.0.0: counts toward the limit
    ("dsn_02.txt", ["zzzzz@example.uk"], "soft"),  # failed, but 4.4.7
    ("dsn_05.txt", ["userx@example.cz"], "delayed"),  # Action: delayed 4.4.1: no bounce
    ("dsn_09.txt", ["userx@example.com"], "hard"),
    ("dsn_12.txt", ["userx@example.jp"], "gone"),  # 5.1.1
    ("dsn_17.txt", ["userx@example.fi"], "delayed"),  # Action: delayed 4.3.0
    ("postfix_01.txt", ["xxxxx@local.ie"], "gone"),  # 550 5.1.1
    ("exim_01.txt", ["userx@its.example.nl"], "gone"),  # 553 5.1.1
    ("qmail_01.txt", ["userx@example.de"], "hard"),
    ("simple_01.txt", ["bbbsss@example.com"], "hard"),
    ("sendmail_01.txt", ["zzzzz@shaft.coal.nl", "zzzzz@nfg.nl"], "hard"),
    ("microsoft_01.txt", ["userx@example.COM"], "hard"),
    ("yahoo_01.txt", ["userx@example.com"], "soft"),  # gave up after retrying: expired
    ("smtp32_01.txt", ["userx@example.ph"], "soft"),  # "failed 20 attempts": expired
    ("groupwise_01.txt", ["userx@example.EDU"], "hard"),
    ("simple_03.txt", ["userx@example.za"], "delayed"),  # "will keep trying": a warning
    ("llnl_01.txt", ["user1@example.gov"], "hard"),
    ("dumbass_01.txt", [], "unrecognised"),  # no bounce flufl.bounce can read
]


@pytest.fixture
def bounce_settings(settings: Settings) -> Settings:
    return replace(settings, bounce_address=BOUNCE_ADDRESS)


@pytest.fixture
def bdesk(bounce_settings: Settings, desk: Desk) -> Desk:
    return Desk(bounce_settings)


def run(desk: Desk, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=desk, catch_exceptions=False)


def maildir(root: Path, messages: list[bytes]) -> Path:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for number, raw in enumerate(messages):
        (root / "new" / f"{number:04d}.test").write_bytes(raw)
    return root


def folder(root: Path, name: str) -> list[Path]:
    return sorted((root / f".{name}" / "cur").glob("*")) if (root / f".{name}").is_dir() else []


def reader(engine: sa.Engine, ref: str | int):
    with engine.connect() as conn:
        return get_subscriber(conn, ref)


def events(engine: sa.Engine, subscriber_id: int) -> list[sa.RowMapping]:
    e = db.consent_events
    with engine.connect() as conn:
        query = sa.select(e).where(e.c.subscriber_id == subscriber_id).order_by(e.c.id)
        return list(conn.execute(query).mappings())


def dsn(to: str, final: str, status: str = "5.1.1", action: str = "failed", n: int = 1) -> bytes:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: <{to}>
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn.{n}.{status}@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {final}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{final}>: Recipient address rejected: User unknown

--b
Content-Type: text/rfc822-headers

Return-Path: <{to}>
From: The Weekly <weekly@example.org>
To: {final}
Subject: The week

--b--
""".encode()


def arf(to: str, mail_from: str, rcpt: str, n: int = 1) -> bytes:
    """A feedback report as RFC 5965 shows one (its section 3, example 2)."""
    return f"""From: <abusedesk@mail.example.net>
Date: Thu, 26 Nov 2026 09:00:00 +0000
Subject: FW: The week
To: <{to}>
Message-ID: <arf.{n}@mail.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="part1"

--part1
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 26 Nov 2026 09:00:00 +0000.

--part1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{mail_from}>
Original-Rcpt-To: <{rcpt}>
Arrival-Date: Thu, 26 Nov 2026 09:00:00 +0000
Reporting-MTA: dns; mail.example.net
Source-IP: 192.0.2.1

--part1
Content-Type: message/rfc822
Content-Disposition: inline

From: The Weekly <weekly@example.org>
To: {rcpt}
Subject: The week
Message-ID: <newsletter.1.1@example.org>

The week's stories.
--part1--
""".encode()


def plain(to: str, subject: str, headers: str = "", n: int = 1) -> bytes:
    return (
        f"From: Tom Baker <tom@example.org>\nTo: <{to}>\nSubject: {subject}\n"
        f"Message-ID: <plain.{n}@example.org>\n{headers}\nHello there.\n"
    ).encode()


def test_return_paths_are_short_signed_and_checked() -> None:
    path = return_paths(SECRET, BOUNCE_ADDRESS, 7, "weekly@example.org")
    address = path(1234)
    assert address.startswith("bounces+7-1234-") and address.endswith("@news.example.org")
    assert len(address.split("@")[0]) <= len("bounces+7-1234-") + 12
    check = ReturnPathReader(SECRET, BOUNCE_ADDRESS)
    [token] = check.candidates(f"To: <{address.upper()}>")  # servers that fold case
    assert check.check(token) == ReturnPath(7, 1234)
    signature = token.rsplit("-", 1)[1]
    assert check.check(f"7-1235-{signature}") is None  # moved to another reader
    assert check.check(f"8-1234-{signature}") is None  # or another issue
    assert check.check(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert ReturnPathReader("another key", BOUNCE_ADDRESS).check(token) is None
    assert return_paths(SECRET, None, 7, "weekly@example.org")(1234) == "weekly@example.org"
    assert check.is_ours(address) and check.is_ours("Bounces@News.Example.org")
    assert not check.is_ours("bouncesx@news.example.org") and not check.is_ours("a@b.org")


def test_real_bounces_from_a_maildir_change_the_readers_they_name(
    bdesk: Desk, tmp_path: Path
) -> None:
    readers = tuple((f"reader{n}@readers.example.org", "") for n in range(len(SAMPLES)))
    ids = seed_readers(bdesk.engine, readers)
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")
    messages = []
    for (name, addresses, _kind), (ours, _), sid in zip(SAMPLES, readers, ids, strict=True):
        raw = (BOUNCES / name).read_bytes()
        for address in addresses:  # the recipient rewritten to one of our readers
            assert address.encode() in raw, (name, address)
            raw = raw.replace(address.encode(), ours.encode())
        messages.append(delivered_to(path(sid), raw))
    box = maildir(tmp_path / "Maildir", messages)
    result = run(bdesk, "bounces", "process", str(box))
    assert result.exit_code == 0, result.output
    expected = {
        "gone": "bounced", "hard": "active", "soft": "active", "delayed": "active",
        "unrecognised": "active",
    }  # fmt: skip
    for (name, _addresses, kind), sid in zip(SAMPLES, ids, strict=True):
        found = reader(bdesk.engine, sid)
        assert found.status == expected[kind], name
        assert found.bounce_count == (1 if kind in ("gone", "hard") else 0), name
        if kind == "gone":
            assert events(bdesk.engine, sid)[-1]["kind"] == "bounced"
            assert "5.1.1" in events(bdesk.engine, sid)[-1]["detail"]
    assert "delayed 3, hard 11, soft 3, unrecognised 1" in result.output
    assert (
        "kept aside: " in result.output
        and "changed: reader4@readers.example.org: bounced" in result.output
    )
    assert len(folder(box, "Processed")) == 17 and len(folder(box, "Unrecognised")) == 1
    assert not list((box / "new").iterdir()) and not list((box / "cur").iterdir())
    # a second hard bounce of another kind reaches NEWSLETTER_BOUNCE_LIMIT (2)
    again = maildir(tmp_path / "Again", [delivered_to(path(ids[8]), (BOUNCES / "qmail_01.txt")
        .read_bytes().replace(b"userx@example.de", readers[8][0].encode())
        .replace(b"Message-Id:", b"X-Old-Id:"))])  # fmt: skip
    run(bdesk, "bounces", "process", str(again))
    assert reader(bdesk.engine, ids[8]).status == "bounced"


def delivered_to(return_path: str, raw: bytes) -> bytes:
    """A bounce as the bounce mailbox holds it: the return path it came back to in the
    header Postfix's local delivery adds."""
    return f"X-Original-To: {return_path}\n".encode() + raw


def test_a_confirmation_mail_that_bounces_names_its_reader_by_its_own_return_path(
    bdesk: Desk, tmp_path: Path
) -> None:
    """Notices carry a signed return path too (no issue): their bounces are not set aside."""
    with bdesk.engine.begin() as conn:
        request = SignUp("lena@gone.example.net", True, "", Evidence(source="test"))
        mail = sign_up(conn, request, Limits(), SECRET, NOW)
    assert mail is not None
    relay = MemoryTransport()
    assert send_notices([mail], bdesk.engine, bdesk.settings, relay, NOW).sent == 1
    [envelope] = relay.sent
    assert ReturnPathReader(SECRET, BOUNCE_ADDRESS).check(
        envelope.sender.split("+", 1)[1].split("@")[0]
    ) == ReturnPath(0, mail.subscriber_id)

    box = maildir(tmp_path / "Maildir", [dsn(envelope.sender, "lena@gone.example.net")])
    report = process_sources(bdesk.engine, bdesk.settings, [str(box)], NOW)

    assert report.kinds == {"hard": 1}
    b = db.bounce_mail
    with bdesk.engine.connect() as conn:
        kept = conn.execute(sa.select(b.c.kind, b.c.subscriber_id, b.c.issue_id)).one()
    assert tuple(kept) == ("hard", mail.subscriber_id, None)


def test_a_maildir_message_that_cannot_be_moved_is_recorded_and_listed_as_left(
    bdesk: Desk, tmp_path: Path
) -> None:
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid)
    box = maildir(tmp_path / "Maildir", [dsn(path, "anna@example.org")])
    (box / ".Processed").write_text("")  # a file where the folder would go

    result = run(bdesk, "bounces", "process", str(box))

    assert result.exit_code == 2
    assert f"left in place: {box}: new/0000.test not moved to .Processed: Not a" in result.output
    assert f"Error: {box}: 1 message read but left in place" in result.stderr
    assert reader(bdesk.engine, sid).status == "bounced"
    assert [p.name for p in (box / "new").iterdir()] == ["0000.test"]


def test_the_same_messages_twice_change_nothing(bdesk: Desk, tmp_path: Path) -> None:
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid)
    mbox = tmp_path / "bounces.mbox"
    mbox.write_bytes(
        b"".join(
            b"From MAILER-DAEMON Thu Nov 26 09:00:00 2026\n" + dsn(path, "anna@example.org",
                                                                  "4.2.2", "delayed", n) + b"\n"
            for n in range(3)
        )
    )  # fmt: skip
    for _ in range(2):
        report = process_sources(bdesk.engine, bdesk.settings, [str(mbox)], NOW)
    assert report.kinds == {"duplicate": 3} and report.read == 3
    assert reader(bdesk.engine, sid).status == "active"
    with bdesk.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.bounce_mail)).scalar() == 3


def test_soft_bounces_change_a_reader_only_after_five_within_thirty_days(
    bdesk: Desk, tmp_path: Path
) -> None:
    """Soft: a delivery given up on with a temporary code (a "failed" 4.2.2); a "delayed"
    warning is no bounce at all."""
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid)
    old = [dsn(path, "anna@example.org", "4.2.2", "failed", n) for n in range(4)]
    process_sources(bdesk.engine, bdesk.settings, [str(maildir(tmp_path / "a", old))], NOW)
    later = NOW + timedelta(days=31)  # the four are out of the window now
    new = [dsn(path, "anna@example.org", "4.2.2", "failed", n) for n in range(10, 14)]
    process_sources(bdesk.engine, bdesk.settings, [str(maildir(tmp_path / "b", new))], later)
    assert reader(bdesk.engine, sid).status == "active"
    fifth = [dsn(path, "anna@example.org", "4.2.2", "failed", 14)]
    process_sources(bdesk.engine, bdesk.settings, [str(maildir(tmp_path / "c", fifth))], later)
    assert reader(bdesk.engine, sid).status == "bounced"
    assert events(bdesk.engine, sid)[-1]["detail"].startswith("5 temporary failures in 30 days")


def test_complaints_auto_replies_forgeries_and_other_mail_land_where_they_belong(
    bdesk: Desk, tmp_path: Path
) -> None:
    anna, tom, noname = seed_readers(bdesk.engine)
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")
    forged = path(tom).rsplit("-", 1)[0] + "-000000000000@news.example.org"
    messages = [
        arf("fbl@news.example.org", path(anna), "xxxxxxxx@example.org"),  # redacted rcpt
        plain(path(tom), "Out of Office: back on Monday", "Auto-Submitted: auto-replied\n", 2),
        plain(path(tom), "Automatic reply: The week", "X-Autoreply: yes\n", 3),
        dsn(forged, "tom@example.org", n=4),
        plain(BOUNCE_ADDRESS, "Please change my address", n=5),
        dsn(path(noname), "someone-else@forward.example.net", n=6),  # mangled: the path decides
    ]
    box = maildir(tmp_path / "Maildir", messages)
    report = process_sources(bdesk.engine, bdesk.settings, [str(box)], NOW)
    assert report.kinds == {
        "complaint": 1,
        "autoreply": 2,
        "forged": 1,
        "unrecognised": 1,
        "hard": 1,
    }
    assert reader(bdesk.engine, anna).status == "complained"
    assert (
        events(bdesk.engine, anna)[-1]["detail"] == "feedback report (abuse) from SomeGenerator/1.0"
    )
    with bdesk.engine.connect() as conn:
        assert is_suppressed(conn, "anna@example.org")
    assert (
        reader(bdesk.engine, tom).status == "active" and reader(bdesk.engine, tom).bounce_count == 0
    )
    assert reader(bdesk.engine, noname).status == "bounced"
    assert len(folder(box, "Processed")) == 5
    [aside] = folder(box, "Unrecognised")
    assert b"Please change my address" in aside.read_bytes()
    assert report.aside == [f"{box} new/0004.test"]


def test_the_smtp_listener_takes_mail_for_the_bounce_address_only(bdesk: Desk) -> None:
    from newsletter.bounces.listener import start_listener

    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid)
    port = free_port()
    controller = start_listener(bdesk.engine, bdesk.settings, "127.0.0.1", port)
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("", ["postmaster@news.example.org"], b"Subject: x\n\nx\n")
            smtp.sendmail("", [path], dsn("bounces@news.example.org", "gone@example.net"))
    finally:
        controller.stop()
    assert reader(bdesk.engine, sid).status == "bounced"  # the envelope recipient decided


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("missing", "{tmp}/missing: no such file or folder"),
        ("notmaildir/", "{tmp}/notmaildir: not a Maildir: no cur, new, tmp folder"),
        ("letter.txt", "{tmp}/letter.txt: not an mbox file: it does not start with 'From '"),
        ("imaps://user:hunter2@/INBOX", "imaps://user:***@/INBOX: not an IMAP URL like imaps://user:pass@host/INBOX"),
        ("imap://mail.example.org:99999/INBOX", "imap://mail.example.org:99999/INBOX: bad port in the IMAP URL"),
        ("imaps://mail.example.org/INBOX", "imaps://mail.example.org/INBOX: the IMAP URL needs a user and a password: imaps://user:pass@host/INBOX"),
        ("pop3://u:p@mail.example.org/", "pop3://u:***@mail.example.org/: not an IMAP URL like imaps://user:pass@host/INBOX"),
        ("imap://u:p@127.0.0.1:{port}/INBOX", "imap://u:***@127.0.0.1:{port}/INBOX: cannot connect: "),
    ],
)  # fmt: skip
def test_unreadable_sources_are_refused_by_name_before_anything_is_read(
    bdesk: Desk, tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "notmaildir").mkdir()
    (tmp_path / "letter.txt").write_text("Dear editor,\n")
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    good = maildir(tmp_path / "good", [dsn(BOUNCE_ADDRESS, "anna@example.org")])
    port = free_port()
    text = source.format(port=port)
    if "://" not in text:
        text = str(tmp_path / text)
    result = CliRunner().invoke(cli, ["bounces", "process", str(good), text], obj=bdesk)
    assert result.exit_code == 2, result.output
    assert expected.format(tmp=tmp_path, port=port) in result.output
    assert "hunter2" not in result.output
    assert reader(bdesk.engine, sid).status == "active"  # nothing was read
    assert len(list((good / "new").iterdir())) == 1


def _two_issues(desk: Desk, settings: Settings) -> tuple[int, int]:
    first = approved_issue(desk.engine)
    with desk.engine.begin() as conn:
        second = new_issue(conn, date(2026, 12, 4), NOW)
        articles = conn.execute(sa.text("SELECT id FROM articles ORDER BY id LIMIT 3")).scalars()
        pick(conn, second.id, list(articles), NOW)
        set_fields(conn, second.id, NOW, subject="The next week")
        approve(conn, second.id, NOW)
    return first.id, second.id


def test_full_cycle_bounced_readers_are_not_mailed_the_next_issue(
    desk: Desk, smtp_settings: Settings, smtp_server, tmp_path: Path
) -> None:
    settings = replace(smtp_settings, bounce_address=BOUNCE_ADDRESS)
    sdesk = Desk(settings)
    readers = tuple((f"reader{n:02d}@example.org", "") for n in range(40))
    seed_readers(sdesk.engine, readers)
    first, second = _two_issues(sdesk, settings)
    assert run(sdesk, "send", str(first)).exit_code == 0
    paths = {got.recipients[0]: got.sender for got in smtp_server.handler.received}
    assert len(paths) == 40 and len(set(paths.values())) == 40
    assert all(p.startswith(f"bounces+{first}-") for p in paths.values())
    gone = ["reader03@example.org", "reader17@example.org", "reader31@example.org"]
    box = maildir(tmp_path / "Maildir", [dsn(paths[a], a, n=i) for i, a in enumerate(gone)])
    assert run(sdesk, "bounces", "process", str(box)).exit_code == 0
    status = run(sdesk, "status", str(first))
    assert "hard: 3 (7.50% of 40 delivered): userunknown 3" in status.output
    assert "complaints: 0 (0.00% of 40 delivered)" in status.output
    refused = CliRunner().invoke(cli, ["send", str(second)], obj=sdesk)
    assert refused.exit_code == 6
    assert (
        f"issue {first} had a hard-bounce rate of 7.50% (3 of 40: userunknown 3), above 5.0%"
        in refused.output
    )
    smtp_server.handler.received.clear()
    assert run(sdesk, "send", str(second), "--force").exit_code == 0
    mailed = {got.recipients[0] for got in smtp_server.handler.received}
    assert len(mailed) == 37 and not mailed & set(gone)
    with sdesk.engine.connect() as conn:
        d = db.deliveries
        rows = conn.execute(
            sa.select(d.c.status, d.c.outcome, d.c.outcome_detail).where(
                d.c.issue_id == first, d.c.outcome.is_not(None)
            )
        ).all()
    assert len(rows) == 3 and all(r.status == "sent" and r.outcome == "hard" for r in rows)
    assert all("5.1.1" in r.outcome_detail for r in rows)


def test_mail_refused_later_for_our_reasons_refuses_the_next_send_and_spares_the_readers(
    desk: Desk, smtp_settings: Settings, smtp_server, tmp_path: Path
) -> None:
    """A block-list incident seen in the returned mail: no reader is touched, the status
    counts it by reason, and the next send waits until the newsroom has fixed it."""
    settings = replace(smtp_settings, bounce_address=BOUNCE_ADDRESS)
    sdesk = Desk(settings)
    seed_readers(sdesk.engine, tuple((f"reader{n:02d}@example.org", "") for n in range(40)))
    first, second = _two_issues(sdesk, settings)
    assert run(sdesk, "send", str(first)).exit_code == 0
    paths = {got.recipients[0]: got.sender for got in smtp_server.handler.received}
    listed = [f"reader{n:02d}@example.org" for n in (2, 9, 30)]
    spf = "reader11@example.org"
    mails = [
        dsn(paths[a], a, "5.7.1", n=i).replace(
            b"Recipient address rejected: User unknown", b"client IP listed at zen.spamhaus.org"
        )
        for i, a in enumerate(listed)
    ]
    mails.append(dsn(paths[spf], spf, "5.7.23", n=9).replace(
        b"Recipient address rejected: User unknown", b"SPF check failed for 192.0.2.7"
    ))  # fmt: skip
    assert run(sdesk, "bounces", "process", str(maildir(tmp_path / "M", mails))).exit_code == 0
    for address in (*listed, spf):
        found = reader(sdesk.engine, address)
        assert (found.status, found.bounce_count) == ("active", 0), address
    status = run(sdesk, "status", str(first), "--json")
    later = json.loads(status.output)["hygiene"]
    assert (later["hard"], later["our_side"]) == (0, 4)
    assert later["reasons"] == {"ours": {"blocked": 3, "securityerror": 1}}
    assert (
        "our side: 4 (10.00% of 40 delivered): blocked 3, securityerror 1"
        in run(sdesk, "status", str(first)).output
    )
    refused = CliRunner().invoke(cli, ["send", str(second)], obj=sdesk)
    assert refused.exit_code == 6, refused.output
    assert (
        f"issue {first} had an our-side refusal rate of 10.00% (4 of 40: blocked 3, "
        "securityerror 1), above 2.0%; the receivers refuse the newsroom's mail" in refused.output
    )


def test_one_complaint_in_forty_refuses_the_next_send(
    desk: Desk, smtp_settings: Settings, smtp_server, tmp_path: Path
) -> None:
    settings = replace(smtp_settings, bounce_address=BOUNCE_ADDRESS)
    sdesk = Desk(settings)
    seed_readers(sdesk.engine, tuple((f"r{n}@example.org", "") for n in range(40)))
    first, second = _two_issues(sdesk, settings)
    run(sdesk, "send", str(first))
    path = next(
        g.sender for g in smtp_server.handler.received if g.recipients == ["r5@example.org"]
    )
    box = maildir(tmp_path / "Maildir", [arf("fbl@news.example.org", path, "r5@example.org")])
    run(sdesk, "bounces", "process", str(box))
    refused = CliRunner().invoke(cli, ["send", str(second)], obj=sdesk)
    assert (
        refused.exit_code == 6 and "complaint rate of 2.50% (1 of 40), above 0.3%" in refused.output
    )
    assert reader(sdesk.engine, "r5@example.org").status == "complained"
    # the Friday job refuses alike, and tells the editors why
    from newsletter.curation.issues import get_issue
    from newsletter.schedule.job import FridayJob

    alerted = Desk(replace(settings, editors=("desk@example.org",)))
    with sdesk.engine.connect() as conn:
        day = get_issue(conn, second).send_date
    before = len(smtp_server.handler.received)
    result = FridayJob(alerted, lambda: NOW).send(day)
    assert result.outcome == "failed" and "complaint rate of 2.50%" in result.message
    [alert] = smtp_server.handler.received[before:]
    assert alert.recipients == ["desk@example.org"]


def test_without_a_bounce_address_the_envelope_sender_stays_the_from_address(
    desk: Desk, smtp_settings: Settings, smtp_server
) -> None:
    seed_readers(desk.engine)
    issue = approved_issue(desk.engine)
    assert run(Desk(smtp_settings), "send", str(issue.id)).exit_code == 0
    assert {got.sender for got in smtp_server.handler.received} == {"weekly@example.org"}


def test_a_reader_added_after_a_token_bounce_is_not_confused(bdesk: Desk, tmp_path: Path) -> None:
    """A valid return path for a reader who no longer exists is recorded, and changes no one."""
    with bdesk.engine.begin() as conn:
        sid = add_active_reader(
            conn, "anna@example.org", "", Evidence("tests"), current_policy(conn), NOW
        )
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid + 1)
    report = process_sources(
        bdesk.engine,
        bdesk.settings,
        [str(maildir(tmp_path / "m", [dsn(path, "anna@example.org")]))],
        NOW,
    )
    assert report.kinds == {"unmatched": 1} and reader(bdesk.engine, sid).status == "active"


def test_an_unsubscribe_request_by_mail_withdraws_the_reader_at_once(
    desk: Desk, smtp_settings: Settings, smtp_server, tmp_path: Path
) -> None:
    """The List-Unsubscribe mailto goes to the bounce address; its subject carries the token."""
    import re
    from email import message_from_bytes
    from email.policy import default
    from urllib.parse import unquote

    settings = replace(smtp_settings, bounce_address=BOUNCE_ADDRESS)
    sdesk = Desk(settings)
    seed_readers(sdesk.engine)
    issue = approved_issue(sdesk.engine)
    assert run(sdesk, "send", str(issue.id)).exit_code == 0
    to_tom = next(m for m in smtp_server.handler.received if m.recipients == ["tom@example.org"])
    header = str(message_from_bytes(to_tom.data, policy=default)["List-Unsubscribe"])
    mailto = re.search(r"<mailto:([^?>]+)\?subject=([^>]+)>", header)
    assert mailto is not None and mailto.group(1) == BOUNCE_ADDRESS
    request = plain(mailto.group(1), unquote(mailto.group(2)), n=41)
    forged = plain(BOUNCE_ADDRESS, "unsubscribe 3.not-a-valid-token", n=42)
    box = maildir(tmp_path / "Maildir", [request, forged])
    first = run(sdesk, "bounces", "process", str(box))
    assert first.exit_code == 0, first.output
    assert "tom@example.org: unsubscribed" in first.output
    tom = reader(sdesk.engine, "tom@example.org")
    assert tom.status == "unsubscribed"
    withdrawn = [e for e in events(sdesk.engine, tom.id) if e["kind"] == "withdrawn"]
    assert [e["source"] for e in withdrawn] == ["mail: List-Unsubscribe mailto"]
    assert len(folder(box, "Unrecognised")) == 1  # the forged one is kept aside
    again = run(sdesk, "bounces", "process", str(maildir(tmp_path / "Again", [request])))
    assert again.exit_code == 0 and again.output.splitlines() == ["read 1 messages: duplicate 1"]
    assert reader(sdesk.engine, "anna@example.org").status == "active"


def test_with_signed_return_paths_a_report_naming_none_is_kept_for_a_person(
    bdesk: Desk, tmp_path: Path
) -> None:
    """A complaint or a bounce anyone could mail to the bounce address, naming a reader
    but no return path of ours, changes no one: it is kept aside, with what it claims."""
    seed_readers(bdesk.engine)
    complaint = arf("bounces@news.example.org", "fbl@mail.example.com", "anna@example.org", n=77)
    gone = (BOUNCES / "postfix_01.txt").read_bytes().replace(b"xxxxx@local.ie", b"tom@example.org")
    bounce = dsn(BOUNCE_ADDRESS, "tom@example.org", "5.1.1", n=78)
    for forged in (complaint, gone, bounce):
        assert b"bounces+" not in forged
    box = maildir(tmp_path / "Maildir", [complaint, gone, bounce])
    result = run(bdesk, "bounces", "process", str(box))
    assert result.exit_code == 0 and "unrecognised 3" in result.output
    for address in ("anna@example.org", "tom@example.org"):
        found = reader(bdesk.engine, address)
        assert (found.status, found.bounce_count) == ("active", 0), address
    assert len(folder(box, "Unrecognised")) == 3
    with bdesk.engine.connect() as conn:
        kept = conn.execute(sa.select(db.bounce_mail.c.diagnostic).order_by("key")).scalars()
        claims = " ".join(kept)
    assert "a hard report naming no return path of ours (tom@example.org)" in claims
    assert "a complaint report naming no return path of ours" in claims


def dsn_saying(status: str, diagnostic: str, action: str = "failed") -> bytes:
    return dsn("bounces@news.example.org", "anna@example.org", status, action).replace(
        f"550 {status} <anna@example.org>: Recipient address rejected: User unknown".encode(),
        diagnostic.encode(),
    )


@pytest.mark.parametrize(
    ("status", "diagnostic", "action", "kind", "reason"),
    [
        ("5.1.1", "550 5.1.1 <anna@example.org>: User unknown", "failed", "hard", "userunknown"),
        ("5.1.1", "550 5.7.1 IP address blacklisted", "failed", "ours", "blocked"),
        ("5.1.0", "550 5.1.0 <bounce@news.example.org> sender rejected", "failed", "ours",
         "securityerror"),
        ("5.1.0", "550 5.1.0 SPF check failed for 192.0.2.7", "failed", "ours", "securityerror"),
        ("5.1.3", "550 5.1.3 listed at zen.spamhaus.org", "failed", "ours", "blocked"),
        ("5.1.1", "550 5.1.1 too many recipients this hour", "failed", "ours", "ratelimited"),
        ("5.2.2", "552 5.2.2 Mailbox full", "failed", "soft", "mailboxfull"),
        # our reverse DNS, not the reader's domain; our own sender address, whatever follows
        ("5.7.1", "550 5.7.1 Rejected: connection from unknown hostname", "failed", "ours",
         "rejected"),
        ("5.7.1", "554 5.7.1 Mail from unknown hosts is not accepted", "failed", "ours",
         "rejected"),
        ("5.1.8", "553 5.1.8 sender user not known", "failed", "ours", "rejected"),
        ("5.1.7", "550 5.1.7 sender mailbox unavailable", "failed", "ours", "rejected"),
        # an earlier DNS hiccup beside a final "user unknown": the user unknown
        ("5.1.1", "550 5.1.1 user unknown; previous attempt: Host not found, try again",
         "failed", "hard", "userunknown"),
        ("4.4.3", "Host not found. Try again later", "failed", "soft", "networkerror"),
        # Office 365 says 5.1.10 (null MX in RFC 7505) for an address it does not have
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
         "address lookup", "failed", "hard", "userunknown"),
        ("5.1.1", "550 5.1.1 User unknown", "delayed", "delayed", ""),
        ("4.4.7", "Delivery time expired", "failed", "soft", "expired"),
    ],
)  # fmt: skip
def test_a_bounce_is_judged_by_its_words_where_they_say_more_than_its_code(
    status: str, diagnostic: str, action: str, kind: str, reason: str
) -> None:
    verdict = classify(dsn_saying(status, diagnostic, action), None)
    assert (verdict.kind, verdict.reason) == (kind, reason)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("550 5.0.0 L'expéditeur n'existe pas", "undefined"),  # the sender: not the reader
     ("550 5.0.0 L’adresse n’existe pas", "userunknown"),  # a typographic apostrophe
     ("550 5.0.0 L'adresse n'existe pas", "userunknown")],
)  # fmt: skip
def test_french_words_for_an_address_that_does_not_exist(text: str, reason: str) -> None:
    assert read(None, text, "", "5.0.0").reason == reason


def test_a_reason_is_read_from_the_first_lines_of_what_a_server_said() -> None:
    """A hostile notice cannot make the reading slow: only its start is read."""
    padded = dsn_saying("5.0.0", "550 5.0.0 " + "did not match a " * 8000 + " user unknown")
    assert classify(padded, None).reason == "undefined"  # the words came too late
    assert classify(dsn_saying("5.0.0", "550 5.0.0 user unknown"), None).reason == "userunknown"


def prose(lines: str) -> bytes:
    return (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n"
        "To: weekly@example.org\nSubject: Returned mail: see transcript for details\n"
        "Message-ID: <prose.1@mx.example.net>\n\n"
        "The original message was received at Mon, 23 Nov 2026 10:00:00 +0000\n\n"
        "   ----- The following addresses had permanent fatal errors -----\n"
        f"{lines}\n"
    ).encode()


def test_a_notice_in_prose_fails_each_address_for_its_own_words() -> None:
    """Two addresses failing for equally bad reasons are both named; one address that
    is the end of another ("na@" in "anna@") is not mistaken for it."""
    both = prose("<anna@example.org> (reason: 550 user unknown)\n\n"
                 "<bob@gone.example.net> (reason: 550 host unknown)")  # fmt: skip
    verdict = classify(both, None)
    assert verdict.kind == "hard" and set(verdict.addresses) == {"anna@example.org",
                                                                 "bob@gone.example.net"}  # fmt: skip
    near = prose("<anna@example.org> (reason: 552 mailbox full)\n\n"
                 "<na@example.org> (reason: 550 no such user)")  # fmt: skip
    verdict = classify(near, None)
    assert (verdict.kind, verdict.addresses) == ("hard", ("na@example.org",))


def test_a_plain_text_delay_warning_is_no_bounce() -> None:
    warning = (
        b"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        b"To: bounces@news.example.org\nSubject: Delayed Mail (still being retried)\n"
        b"Message-ID: <w.1@mx.example.net>\n\n"
        b"This is the mail system at host mx.example.net.\n\n"
        b"####################################################################\n"
        b"# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
        b"####################################################################\n\n"
        b"Your message could not be delivered for more than 4 hour(s).\n"
        b"It will be retried until it is 5 day(s) old.\n\n"
        b"<anna@example.org>: host mx.example.org[192.0.2.1] said: 450 4.2.0 try later\n"
    )
    assert classify(warning, None).kind == "delayed"


def test_a_bounce_for_a_reason_of_ours_leaves_the_reader_alone(bdesk: Desk, tmp_path: Path) -> None:
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    path = return_paths(SECRET, BOUNCE_ADDRESS, 1, "")(sid)
    blocked = [
        dsn(path, "anna@example.org", "5.1.1", n=n).replace(
            b"Recipient address rejected: User unknown", b"client IP blacklisted by Spamhaus"
        )
        for n in range(5)
    ]
    report = process_sources(
        bdesk.engine, bdesk.settings, [str(maildir(tmp_path / "m", blocked))], NOW
    )
    assert report.kinds == {"ours": 5}
    found = reader(bdesk.engine, sid)
    assert (found.status, found.bounce_count) == ("active", 0)


def test_a_refusal_for_our_reasons_naming_no_return_path_is_kept_aside(
    bdesk: Desk, tmp_path: Path
) -> None:
    """It would count against the next send: a forgery must not hold the newsletter."""
    [sid] = seed_readers(bdesk.engine, (("anna@example.org", ""),))
    forged = dsn(BOUNCE_ADDRESS, "anna@example.org", "5.7.1", n=90).replace(
        b"Recipient address rejected: User unknown", b"client IP listed at zen.spamhaus.org"
    )
    report = process_sources(bdesk.engine, bdesk.settings,
                             [str(maildir(tmp_path / "m", [forged]))], NOW)  # fmt: skip
    assert report.kinds == {"unrecognised": 1}
    with bdesk.engine.connect() as conn:
        kept = conn.execute(sa.select(db.bounce_mail.c.diagnostic)).scalar_one()
        outcomes = conn.execute(sa.select(db.deliveries.c.outcome)).scalars().all()
    assert kept == "an our-side report naming no return path of ours (anna@example.org)"
    assert not any(outcomes) and reader(bdesk.engine, sid).status == "active"


def test_a_report_naming_several_readers_marks_every_one(bdesk: Desk) -> None:
    two = arf("abuse@example.org", "weekly@example.org", "anna@example.org").replace(
        b"Original-Rcpt-To: <anna@example.org>\n",
        b"Original-Rcpt-To: <anna@example.org>\nOriginal-Rcpt-To: <tom@example.org>\n",
    )
    assert classify(two, None).addresses == ("anna@example.org", "tom@example.org")


def test_a_microsoft_junk_mail_report_is_a_complaint() -> None:
    jmrp = (
        b"From: staff@hotmail.com\nTo: abuse@example.org\nSubject: complaint about message\n"
        b"Message-ID: <jmrp.1@hotmail.com>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        b"This is an email abuse report.\n\n--b\nContent-Type: message/rfc822\n\n"
        b"X-HmXmrOriginalRecipient: <Anna@Example.org>\nFrom: The Weekly <weekly@example.org>\n"
        b"To: anna@example.org\nSubject: The week\n\nThe week's stories.\n--b--\n"
    )
    verdict = classify(jmrp, None)
    assert (verdict.kind, verdict.addresses) == ("complaint", ("anna@example.org",))
    assert "JMRP" in verdict.diagnostic


def test_an_internationalised_domain_matches_in_either_form_and_garbage_is_no_address(
    desk: Desk, tmp_path: Path
) -> None:
    """Without signed return paths the addresses decide: a bounce naming the ASCII form of
    a reader's Unicode domain finds the reader; a pipe or a spool path finds no one."""
    [sid] = seed_readers(desk.engine, (("neko@地域猫.jp", ""),))
    bounce = dsn("weekly@example.org", "neko@xn--cesupi09d.jp", "5.1.1")
    report = process_sources(
        desk.engine, desk.settings, [str(maildir(tmp_path / "m", [bounce]))], NOW
    )
    assert report.kinds == {"hard": 1}
    assert reader(desk.engine, sid).status == "bounced"
    verdict = classify(dsn("weekly@example.org", "|/usr/bin/procmail", "5.1.1", n=2), None)
    assert all("@" in a and not a.startswith(("|", "/", "@")) for a in verdict.addresses)


def test_a_dsn_naming_several_recipients_judges_each_by_its_own_status() -> None:
    """A full mailbox reported beside an unknown user is not bounced with it."""
    two = dsn("weekly@example.org", "anna@example.org", "5.1.1").replace(
        b"\n--b\nContent-Type: text/rfc822-headers",
        b"Final-Recipient: rfc822; tom@example.org\nAction: failed\nStatus: 4.2.2\n"
        b"Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\n\n"
        b"--b\nContent-Type: text/rfc822-headers",
    )
    verdict = classify(two, None)
    assert (verdict.kind, verdict.addresses) == ("hard", ("anna@example.org",))

"""A relay's refusals read by phase and reason: only the reader's own address failing counts
toward the reader's bounces; a refusal of our mail (at MAIL FROM, or for our reputation,
authentication or content) pauses the send and leaves every reader as they were. Each
case is a real SMTP server on loopback (aiosmtpd) answering as the field's servers do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from newsletter.cli import cli
from newsletter.delivery.send import send_issue
from newsletter.reasons import read
from newsletter.settings import Settings
from newsletter.store import tables as db
from newsletter.transport.pool import open_transport

from .conftest import NOW, ROOT, SECRET, RecordingHandler, approved_issue, free_port, seed_readers

READERS = tuple((f"reader{n}@example.org", f"Reader {n}") for n in range(8))


@dataclass
class Refusing(RecordingHandler):
    """Refuses MAIL FROM, chosen recipients at RCPT, or chosen ones after the body."""

    refuse_mail: str = ""
    refuse_end: dict[str, str] = field(default_factory=dict)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for recipient in envelope.rcpt_tos:
            if recipient in self.refuse_end:
                return self.refuse_end[recipient]
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay() -> Iterator[tuple[Refusing, int]]:
    handler = Refusing()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def send(desk: Any, settings: Settings, issue_id: int) -> Any:
    transport = open_transport(settings.smtp_url, settings.outbox)
    try:
        return send_issue(issue_id, desk.engine, settings, transport, lambda: NOW)
    finally:
        transport.close()


def readers(engine: sa.Engine) -> dict[str, tuple[str, int]]:
    s = db.subscribers
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.email, s.c.status, s.c.bounce_count))
        return {row.email: (row.status, row.bounce_count) for row in rows}


def deliveries(engine: sa.Engine, issue_id: int) -> dict[str, tuple[str, str | None]]:
    d, s = db.deliveries, db.subscribers
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(s.c.email, d.c.status, d.c.reason)
            .join(s, s.c.id == d.c.subscriber_id)
            .where(d.c.issue_id == issue_id)
        )
        return {row.email: (row.status, row.reason) for row in rows}


@pytest.fixture
def setup(
    desk: Any, settings: Settings, relay: tuple[Refusing, int]
) -> tuple[Any, Settings, int, Refusing]:
    handler, port = relay
    seed_readers(desk.engine, READERS)
    issue = approved_issue(desk.engine)
    return desk, replace(settings, smtp_url=f"smtp://127.0.0.1:{port}"), issue.id, handler


UNTOUCHED = {email: ("active", 0) for email, _ in READERS}


def test_a_refusal_at_mail_from_pauses_at_once_and_touches_no_reader(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse_mail = "550 5.7.1 <weekly@example.org>: Sender address rejected: not owned by user"
    report = send(desk, settings, issue_id)
    assert report.paused and "at MAIL FROM" in report.paused and "securityerror" in report.paused
    assert report.failed == 0 and report.sent == 0
    assert readers(desk.engine) == UNTOUCHED
    assert {status for status, _ in deliveries(desk.engine, issue_id).values()} == {"pending"}
    relay.refuse_mail = ""  # the bounce address fixed: the next run sends everyone once
    again = send(desk, settings, issue_id)
    assert again.status == "sent" and again.sent == len(READERS) and not again.paused


def test_a_run_of_block_list_refusals_pauses_the_send_and_touches_no_reader(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {
        e: "550 5.7.1 Service unavailable; client IP blacklisted by Spamhaus" for e, _ in READERS
    }
    report = send(desk, settings, issue_id)
    assert report.paused and "3 readers in a row" in report.paused and "(blocked)" in report.paused
    assert report.failed == 0
    assert readers(desk.engine) == UNTOUCHED
    assert {r for _, r in deliveries(desk.engine, issue_id).values()} <= {"blocked", None}


def test_a_5_1_1_that_says_our_ip_is_listed_is_a_block_not_an_unknown_user(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {e: "550 5.1.1 IP address blacklisted" for e, _ in READERS}
    report = send(desk, settings, issue_id)
    assert report.paused and readers(desk.engine) == UNTOUCHED


def test_only_the_readers_own_address_failing_counts_toward_their_bounces(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {
        "reader0@example.org": "550 5.1.1 <reader0@example.org>: Recipient address rejected: User unknown",
        "reader1@example.org": "552 5.2.2 Mailbox full",
        "reader2@example.org": "450 4.2.0 Mailbox temporarily unavailable",
    }
    report = send(desk, settings, issue_id)
    assert not report.paused and report.failed == 2 and report.deferred == 1
    found = readers(desk.engine)
    assert found["reader0@example.org"] == ("active", 1)  # one hard bounce of two allowed
    assert found["reader1@example.org"] == ("active", 0)  # a full mailbox is no hard bounce
    assert found["reader2@example.org"] == ("active", 0)
    rows = deliveries(desk.engine, issue_id)
    assert rows["reader0@example.org"] == ("failed", "userunknown")
    assert rows["reader1@example.org"] == ("failed", "mailboxfull")
    assert rows["reader2@example.org"][0] == "deferred"
    assert report.reasons == {"userunknown": 2, "mailboxfull": 1}  # the deferred one's too
    assert "reasons: mailboxfull 1, userunknown 2" in report.lines()


def test_spam_refusals_after_the_body_pause_the_send(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse_end = {e: "554 5.7.1 Message rejected as spam" for e, _ in READERS}
    report = send(desk, settings, issue_id)
    assert report.paused and "(spamdetected)" in report.paused
    assert readers(desk.engine) == UNTOUCHED


def test_a_send_with_more_failures_than_the_alert_allows_says_so(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {"reader0@example.org": "550 5.1.1 User unknown"}  # 1 of 8: 12.5 %
    report = send(desk, settings, issue_id)
    assert report.status == "sent" and report.with_failures
    assert "finished with failures: 1 of 8 readers failed (12.5 %" in "\n".join(report.lines())
    assert not replace(report, failure_alert=20.0).with_failures  # under the setting's share
    assert not replace(report, failure_alert=0.0).with_failures  # 0: never


@pytest.mark.parametrize(
    ("code", "text", "phase", "reason"),
    [
        (550, "5.7.1 sender address rejected: not owned by user", "MAIL", "securityerror"),
        (553, "5.1.8 Domain of sender address does not exist", "MAIL", "rejected"),
        (550, "5.1.1 <a@b>: Recipient address rejected: User unknown", "RCPT", "userunknown"),
        (550, "No such user here", "RCPT", "userunknown"),
        (550, "5.1.0 <bounce@example.org> sender rejected", "RCPT", "securityerror"),
        (550, "5.1.3 Client host listed at zen.spamhaus.org", "RCPT", "blocked"),
        (550, "5.1.1 too many recipients this hour", "RCPT", "ratelimited"),
        (550, "5.7.23 SPF validation failed", "RCPT", "securityerror"),
        (552, "5.2.2 Mailbox full", "RCPT", "mailboxfull"),
        (550, "5.2.1 Account disabled", "RCPT", "suspend"),
        (550, "5.1.6 Recipient no longer on server", "RCPT", "hasmoved"),
        (550, "5.1.2 Host unknown: domain not found", "RCPT", "hostunknown"),
        (554, "5.7.1 Message rejected as spam", "end of DATA", "spamdetected"),
        (552, "5.3.4 Message too big for system", "end of DATA", "mesgtoobig"),
        (421, "4.7.0 Try again later, closing connection", "RCPT", "policyviolation"),
        (451, "4.3.0 try again later", "RCPT", "undefined"),  # busy: the reader waits
        (
            550,
            "5.1.1 <policy@example.org>: Recipient address rejected: User unknown",
            "RCPT",
            "userunknown",
        ),  # an address that says policy is still a mailbox
        (550, "5.4.1 Recipient address rejected: Access denied", "RCPT", "userunknown"),
        (451, "4.7.1 Greylisting in action, please come back later", "RCPT", "networkerror"),
        (
            550,
            "Verification failed for <bounce@example.org> Sender verify failed",
            "RCPT",
            "securityerror",
        ),
    ],
)
def test_each_reply_is_read_to_its_reason(code: int, text: str, phase: str, reason: str) -> None:
    assert read(code, text, phase).reason == reason


def test_the_command_line_send_exits_5_and_the_editors_hear_of_it(
    setup: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {
        e: "554 5.7.1 Client host rejected: listed at zen.spamhaus.org" for e, _ in READERS
    }
    monkeypatch.chdir(ROOT)
    env = {
        "NEWSLETTER_DATABASE_URL": settings.database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_SMTP_URL": settings.smtp_url or "",
        "NEWSLETTER_EDITORS": "editor@example.org",
        "NEWSLETTER_BASE_URL": settings.base_url,
    }
    result = CliRunner().invoke(cli, ["send", str(issue_id)], env=env, catch_exceptions=False)
    assert result.exit_code == 5, result.output
    assert "paused: the relay refuses our mail for 3 readers in a row (blocked)" in result.output
    assert readers(desk.engine) == UNTOUCHED
    [alert] = [r for r in relay.received if r.recipients == ["editor@example.org"]]
    assert b"Send paused: issue" in alert.data
    relay.refuse = {}  # delisted: the next run sends everyone once
    result = CliRunner().invoke(cli, ["send", str(issue_id)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "sent now 8" in result.output


def test_one_reader_refused_for_a_reason_of_ours_cannot_stall_the_send(setup: Any) -> None:
    """Its row waits once; refused again in the same send, it is failed without a bounce
    and the others go out: one row does not come round for ever."""
    desk, settings, issue_id, relay = setup
    relay.refuse = {"reader0@example.org": "554 5.7.1 Message rejected as spam"}
    report = send(desk, settings, issue_id)
    assert not report.paused and report.status == "sent" and report.sent == 7
    assert deliveries(desk.engine, issue_id)["reader0@example.org"] == ("failed", "spamdetected")
    assert readers(desk.engine) == UNTOUCHED  # no bounce counted


def test_a_rate_limit_of_ours_spends_none_of_the_readers_attempts(setup: Any) -> None:
    desk, settings, issue_id, relay = setup
    relay.refuse = {e: "451 4.7.1 Sending rate limit exceeded, try later" for e, _ in READERS}
    report = send(desk, settings, issue_id)
    assert report.paused and "(ratelimited)" in report.paused
    d = db.deliveries
    with desk.engine.connect() as conn:
        spent = conn.execute(sa.select(sa.func.max(d.c.attempts)).where(d.c.issue_id == issue_id))
        assert spent.scalar() == 0

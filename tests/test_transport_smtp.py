"""Transports: the outbox writes whole files; SMTP upgrades to TLS and maps relay replies."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from newsletter.errors import Cancelled, ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from newsletter.settings.relays import RelayAddress
from newsletter.transport.base import Envelope
from newsletter.transport.outbox import OutboxTransport
from newsletter.transport.pool import open_transport
from newsletter.transport.smtp import SMTPTransport

from .conftest import RecordingHandler, SMTPServer, free_port

MESSAGE = Envelope("bounces@example.org", "r@example.org", "<m.1@example.org>",
                   b"Subject: hi\r\n\r\n.a line starting with a dot\r\n")  # fmt: skip


def test_outbox_writes_one_whole_file_per_message(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path / "outbox")
    reply = outbox.send(MESSAGE)
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == ["m.1@example.org.eml"]
    # the message as sent, after the Return-Path a mailbox records (where bounces go)
    assert files[0].read_bytes() == b"Return-Path: <bounces@example.org>\r\n" + MESSAGE.data
    assert reply.startswith("250")


def test_outbox_that_cannot_be_written_is_a_temporary_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TemporaryDeliveryError, match="outbox"):
        OutboxTransport(blocker / "inner").send(MESSAGE)


@pytest.fixture
def tls_server() -> Iterator[tuple[SMTPServer, ssl.SSLContext]]:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=server_context,
        require_starttls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield SMTPServer(handler, port), client_context
    finally:
        controller.stop()


def test_starttls_is_used_when_the_relay_offers_it(tls_server) -> None:
    server, client_context = tls_server
    transport = SMTPTransport(RelayAddress.parse(server.url), tls=client_context)
    transport.send(MESSAGE)
    transport.send(MESSAGE)  # the same connection, kept open
    transport.close()
    assert [r.encrypted for r in server.handler.received] == [True, True]
    assert server.handler.received[0].data == MESSAGE.data


def test_a_relay_with_an_untrusted_certificate_is_refused(tls_server) -> None:
    server, _ = tls_server
    transport = SMTPTransport(RelayAddress.parse(server.url))
    with pytest.raises(TemporaryDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        transport.send(MESSAGE)
    assert server.handler.received == []


@pytest.mark.parametrize("pipelining", [False, True])
def test_relay_replies_become_temporary_or_permanent(
    smtp_server: SMTPServer, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    data = MESSAGE.data  # the engine's SMTP path: dot-stuffed bytes, pipelined when offered
    smtp_server.handler.refuse["soft@example.org"] = "451 4.7.1 try again later"
    smtp_server.handler.refuse["hard@example.org"] = "550 5.1.1 no such user"
    transport = SMTPTransport(RelayAddress.parse(smtp_server.url))
    with pytest.raises(TemporaryDeliveryError, match=r"451 4\.7\.1 try again later \(at RCPT\)"):
        transport.send(Envelope("b@example.org", "soft@example.org", "<1@x>", data, pipelining))
    with pytest.raises(PermanentDeliveryError, match=r"550 5\.1\.1 no such user \(at RCPT\)"):
        transport.send(Envelope("b@example.org", "hard@example.org", "<2@x>", data, pipelining))
    assert transport.send(replace(MESSAGE, stuffed=pipelining)).startswith("250 2.0.0")
    transport.close()
    assert [r.recipients for r in smtp_server.handler.received] == [["r@example.org"]]


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_message_taken_back_before_its_body_never_arrives(
    smtp_server: SMTPServer, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    transport = SMTPTransport(RelayAddress.parse(smtp_server.url))
    taken_back = Envelope(
        "b@example.org", "gone@example.org", "<3@x>", MESSAGE.data, pipelining, lambda: False
    )
    with pytest.raises(Cancelled):
        transport.send(taken_back)
    assert transport.send(replace(MESSAGE, stuffed=pipelining)).startswith("250 2.0.0")
    transport.close()
    assert [r.recipients for r in smtp_server.handler.received] == [["r@example.org"]]


def test_a_relay_that_is_not_there_is_a_temporary_failure() -> None:
    transport = SMTPTransport(RelayAddress.parse(f"smtp://127.0.0.1:{free_port()}"), timeout=5)
    with pytest.raises(TemporaryDeliveryError, match=r"127\.0\.0\.1"):
        transport.send(MESSAGE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.org", RelayAddress("relay.example.org", 25, False, None, None)),
        (
            "smtps://u%40x:p%3Aw@relay.example.org",
            RelayAddress("relay.example.org", 465, True, "u@x", "p:w"),
        ),
        ("smtp://relay.example.org:587", RelayAddress("relay.example.org", 587, False, None, None)),
    ],
)
def test_relay_urls(url: str, expected: RelayAddress) -> None:
    assert RelayAddress.parse(url) == expected


def test_a_bad_relay_url_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_URL"):
        open_transport("http://relay.example.org", Path("outbox"))

"""Where finished messages go: an SMTP relay, an outbox folder of .eml files, or memory.

Every transport takes an Envelope and returns the receiving side's reply, or raises
TemporaryDeliveryError (worth retrying) or PermanentDeliveryError (not).
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from .errors import (
    Cancelled,
    ConfigError,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
    UncertainDelivery,
)


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    message_id: str
    data: bytes
    stuffed: bool = False  # lines starting with "." already doubled, for SMTP DATA
    # asked right before the body is handed over; False takes the message back (Cancelled)
    ready: Callable[[], bool] | None = None

    def go_ahead(self) -> None:
        if self.ready is not None and not self.ready():
            raise Cancelled(f"{self.message_id} was taken back before it was handed over")


def ascii_address(address: str) -> str:
    """An internationalised domain in its IDNA form, as SMTP without SMTPUTF8 needs it."""
    local, at, domain = address.rpartition("@")
    if domain.isascii():
        return address
    try:
        return f"{local}{at}{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def unstuff(data: bytes) -> bytes:
    return (data[1:] if data.startswith(b"..") else data).replace(b"\r\n..", b"\r\n.")


class Transport(Protocol):
    wants_stuffed: bool  # SMTP takes dot-stuffed bytes; files and memory take them plain

    def send(self, envelope: Envelope) -> str: ...

    def close(self) -> None: ...


@dataclass
class MemoryTransport:
    """Keeps every message in a list: for tests and for previews."""

    sent: list[Envelope] = field(default_factory=list)
    wants_stuffed = False

    def send(self, envelope: Envelope) -> str:
        envelope.go_ahead()
        if envelope.stuffed:
            envelope = Envelope(
                envelope.sender, envelope.recipient, envelope.message_id, unstuff(envelope.data)
            )
        self.sent.append(envelope)
        return "250 kept in memory"

    def close(self) -> None:
        pass


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass
class OutboxTransport:
    """Writes one .eml file per message, with the envelope sender as Return-Path, as a
    mailbox would hold it; the file appears whole or not at all."""

    folder: Path
    wants_stuffed = False

    def send(self, envelope: Envelope) -> str:
        name = _UNSAFE_NAME.sub("_", envelope.message_id.strip("<>")) + ".eml"
        final = self.folder / name
        partial = self.folder / f".{name}.partial"
        envelope.go_ahead()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            data = unstuff(envelope.data) if envelope.stuffed else envelope.data
            eol = b"\r\n" if data.find(b"\r\n") >= 0 else b"\n"
            with open(partial, "wb") as out:
                # as a delivery agent records it (RFC 5321 4.4): where a bounce would go
                out.write(b"Return-Path: <" + envelope.sender.encode("utf-8") + b">" + eol)
                out.write(data)
            os.replace(partial, final)
        except OSError as exc:
            raise TemporaryDeliveryError(f"outbox {self.folder}: {exc.strerror}") from None
        return f"250 written to {final}"

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class RelayAddress:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> RelayAddress:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("NEWSLETTER_SMTP_URL", f"{url!r} is not smtp://host:port")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@lru_cache(maxsize=1)
def default_tls() -> ssl.SSLContext:
    """One context for every connection, made when a relay first offers TLS: loading the
    system's certificates takes 17 ms, paid before by each of a send's connections
    whether its relay spoke TLS or not."""
    return ssl.create_default_context()


class SMTPTransport:
    """One SMTP connection kept open across messages; STARTTLS whenever offered."""

    wants_stuffed = True

    def __init__(
        self, relay: RelayAddress, timeout: float = 60.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.relay = relay
        self.timeout = timeout
        self.tls = tls  # None: the system's certificates (verifying the relay's), when needed
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        relay = self.relay
        try:
            smtp: smtplib.SMTP
            if relay.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    relay.host, relay.port, timeout=self.timeout, context=self.tls or default_tls()
                )
            else:
                smtp = smtplib.SMTP(relay.host, relay.port, timeout=self.timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls or default_tls())
                    smtp.ehlo()
            if relay.username:
                smtp.login(relay.username, relay.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise RelayUnavailable(
                f"{relay.host}:{relay.port} refused the login: {_reply(exc)}", exc.smtp_code
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise RelayUnavailable(
                f"{relay.host}:{relay.port}: {_reply(exc)}", exc.smtp_code
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(f"{relay.host}:{relay.port}: {exc}") from None
        return smtp

    def send(self, envelope: Envelope) -> str:
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            return self._transact(self._smtp, envelope)
        except smtplib.SMTPResponseException as exc:  # DATA refused before the body went
            self._smtp.rset()
            reply = exc.smtp_error
            _raise_for(exc.smtp_code, reply if isinstance(reply, bytes) else b"", "DATA")
            raise  # unreachable: _raise_for always raises
        except UncertainDelivery:
            self._drop()
            raise
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            raise TemporaryDeliveryError(f"connection lost: {exc}") from None

    def _transact(self, smtp: smtplib.SMTP, envelope: Envelope) -> str:
        # addresses here are normalised already: no need for smtplib's parse per command
        recipient = ascii_address(envelope.recipient)
        if envelope.stuffed and smtp.has_extn("pipelining"):
            return _pipelined(smtp, envelope, recipient, self._drop)
        replies = [("MAIL", *smtp.mail(envelope.sender))]
        if replies[0][1] < 300:
            replies.append(("RCPT", *smtp.rcpt(recipient)))
        for stage, code, text in replies:
            if code >= 300:
                smtp.rset()
                _raise_for(code, text, stage)
        try:
            envelope.go_ahead()
        except Cancelled:
            smtp.rset()
            raise
        if envelope.stuffed:  # smtplib would run its dot-stuffing regex over every byte again
            smtp.putcmd("data")
            code, text = smtp.getreply()
            if code != 354:
                smtp.rset()
                _raise_for(code, text, "DATA")
            smtp.send(envelope.data + b".\r\n")
            code, text = _final_reply(smtp, envelope)
        else:
            code, text = smtp.data(envelope.data)
        if code >= 300:
            _raise_for(code, text, "DATA")
        return f"{code} {text.decode('utf-8', 'replace')}"

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):  # quitting politely is best effort
                pass
            self._drop()


def _pipelined(
    smtp: smtplib.SMTP, envelope: Envelope, recipient: str, drop: Callable[[], None]
) -> str:
    """RFC 2920: MAIL, RCPT and DATA in one write and one round trip, then the body and its
    end in one more. Once the relay said 354 only closing the connection abandons the
    message, so a refusal or a message taken back after that drops the connection."""
    commands = f"MAIL FROM:<{envelope.sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n"
    smtp.send(commands.encode("ascii"))
    replies = [(stage, *smtp.getreply()) for stage in ("MAIL", "RCPT", "DATA")]
    in_data = replies[2][1] == 354
    refused = [reply for reply in replies[:2] if reply[1] >= 300]
    if not in_data:
        refused.append(replies[2])
    if refused:
        if in_data:
            drop()
        else:
            smtp.rset()
        stage, code, text = refused[0]
        _raise_for(code, text, stage)
    try:
        envelope.go_ahead()
    except BaseException:
        drop()
        raise
    smtp.send(envelope.data + b".\r\n")
    code, text = _final_reply(smtp, envelope)
    if code >= 300:
        _raise_for(code, text, "DATA")
    return f"{code} {text.decode('utf-8', 'replace')}"


def _final_reply(smtp: smtplib.SMTP, envelope: Envelope) -> tuple[int, bytes]:
    """The reply to a message's end: lost, the relay may or may not have taken it."""
    try:
        return smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        smtp.close()
        raise UncertainDelivery(f"{envelope.message_id}: no reply after the body: {exc}") from None


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    return f"{exc.smtp_code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"


def _raise_for(code: int, text: bytes, stage: str) -> None:
    reply = f"{code} {text.decode('utf-8', 'replace')} (at {stage})"
    if 400 <= code < 500:
        raise TemporaryDeliveryError(reply, code)
    raise PermanentDeliveryError(reply, code)


def open_transport(smtp_url: str | None, outbox: Path) -> Transport:
    """The relay when one is configured, else the outbox folder."""
    if not smtp_url:
        return OutboxTransport(outbox)
    if "," in smtp_url or "?" in smtp_url:  # several relays, or options: a pool of its own
        from .relays import RelayPool, relay_specs  # relays builds on this module

        return RelayPool(relay_specs(smtp_url))()
    return SMTPTransport(RelayAddress.parse(smtp_url))

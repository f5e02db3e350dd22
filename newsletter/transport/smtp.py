"""One SMTP relay: STARTTLS when offered (or implicit TLS), pipelining, and the reply
read as the transports read it: the receiving side's reply, or TemporaryDeliveryError
(worth retrying), PermanentDeliveryError (not) or UncertainDelivery (it may have gone).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from functools import lru_cache

from newsletter.errors import (
    Cancelled,
    PermanentDeliveryError,
    RelayUnavailable,
    TemporaryDeliveryError,
    UncertainDelivery,
)
from newsletter.reasons import read
from newsletter.settings.relays import RelayAddress
from newsletter.transport.base import Envelope, ascii_address

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]")


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
            _raise_for(code, text, "end of DATA")
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
        _raise_for(code, text, "end of DATA")
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
    """A refusal, read: its phase, its code and the reason its words and code give."""
    words = text.decode("utf-8", "replace")
    reply = f"{code} {words} (at {stage})"
    reason = read(code, words, stage).reason
    if 400 <= code < 500:
        raise TemporaryDeliveryError(reply, code, reason=reason, phase=stage)
    raise PermanentDeliveryError(reply, code, reason=reason, phase=stage)

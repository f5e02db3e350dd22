"""What every transport is: the envelope, the Transport protocol, and the in-memory
transport the tests and dry runs use.

Every transport takes an Envelope and returns the receiving side's reply, or raises
TemporaryDeliveryError (worth retrying) or PermanentDeliveryError (not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from newsletter.errors import Cancelled


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


@contextmanager
def opened(make: Callable[[], Transport]) -> Iterator[Transport]:
    """A transport for the block, closed after it however the block ends."""
    transport = make()
    try:
        yield transport
    finally:
        transport.close()

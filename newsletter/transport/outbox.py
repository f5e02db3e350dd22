"""The embedded default: each message written as an .eml file to the outbox folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import TemporaryDeliveryError
from newsletter.transport.base import Envelope, unstuff
from newsletter.transport.smtp import _UNSAFE_NAME


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

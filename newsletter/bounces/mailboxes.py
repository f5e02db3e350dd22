"""Where bounce mail is read from: a Maildir, an mbox file or an IMAP mailbox; and the run
that reads every message of them once.

A message is recorded (bounce_ledger) in its own transaction, then moved: to the
`Processed` folder, or `Unrecognised` when a person should read it. Nothing is deleted.
An mbox file is only read; the table of processed messages keeps a second run idle.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa

from newsletter.bounces.processor import BounceProcessor, BounceReport
from newsletter.errors import MailboxError
from newsletter.settings import Settings

PROCESSED, UNRECOGNISED = "Processed", "Unrecognised"


@dataclass(frozen=True)
class Mail:
    ref: str  # the message's name within its source
    raw: bytes


class MailSource(Protocol):
    name: str

    def messages(self) -> Iterator[Mail]: ...

    def done(self, mail: Mail, aside: bool) -> None: ...

    def close(self) -> None: ...


class MaildirSource:
    """A Maildir's own messages (new/ and cur/); moved into its `.Processed` or
    `.Unrecognised` Maildir++ folder, as a mail server's IMAP shows them."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        missing = [sub for sub in ("cur", "new", "tmp") if not (path / sub).is_dir()]
        if missing:
            raise MailboxError(self.name, f"not a Maildir: no {', '.join(missing)} folder")

    def messages(self) -> Iterator[Mail]:
        for sub in ("new", "cur"):
            for entry in sorted((self.path / sub).iterdir()):
                if entry.is_file() and not entry.name.startswith("."):
                    try:
                        raw = entry.read_bytes()
                    except OSError as exc:
                        raise MailboxError(str(entry), f"cannot be read: {exc.strerror}") from None
                    yield Mail(f"{sub}/{entry.name}", raw)

    def done(self, mail: Mail, aside: bool) -> None:
        folder = self.path / f".{UNRECOGNISED if aside else PROCESSED}"
        name = Path(mail.ref).name
        if mail.ref.startswith("new/"):
            name += ":2,S" if ":2," not in name else ""
        try:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            os.replace(self.path / mail.ref, folder / "cur" / name)
        except OSError as exc:
            raise MailboxError(
                self.name, f"{mail.ref} not moved to {folder.name}: {exc.strerror}"
            ) from None

    def close(self) -> None:
        pass


class MboxSource:
    """An mbox file, read only."""

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, str(path)
        try:
            with path.open("rb") as probe:
                head = probe.read(5)
        except OSError as exc:
            raise MailboxError(self.name, f"cannot be read: {exc.strerror}") from None
        if head and head != b"From ":
            raise MailboxError(self.name, "not an mbox file: it does not start with 'From '")

    def messages(self) -> Iterator[Mail]:
        box = mailbox.mbox(self.path, create=False)
        try:
            for key in box.iterkeys():
                yield Mail(f"#{key}", box.get_bytes(key))
        finally:
            box.close()

    def done(self, mail: Mail, aside: bool) -> None:
        """Nothing to move: an mbox file is only read; `bounce_mail` remembers each message."""

    def close(self) -> None:
        """Each read opens and closes the file itself."""


_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True)
class ImapAddress:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str
    shown: str  # the URL without its password, for messages

    @classmethod
    def parse(cls, url: str) -> ImapAddress:
        parts = urlsplit(url)
        shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
        try:
            port = parts.port
        except ValueError:
            raise MailboxError(shown, "bad port in the IMAP URL") from None
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise MailboxError(shown, "not an IMAP URL like imaps://user:pass@host/INBOX")
        if not parts.username or parts.password is None:
            raise MailboxError(
                shown, "the IMAP URL needs a user and a password: imaps://user:pass@host/INBOX"
            )
        secure = parts.scheme == "imaps"
        return cls(
            secure,
            parts.hostname,
            port or (993 if secure else 143),
            unquote(parts.username),
            unquote(parts.password),
            unquote(parts.path.strip("/")) or "INBOX",
            shown,
        )


class ImapSource:
    """One IMAP folder; messages are moved (MOVE, or COPY and expunge) to sibling folders."""

    def __init__(self, url: str, context: ssl.SSLContext | None = None) -> None:
        self.address = ImapAddress.parse(url)
        self.name = self.address.shown
        a = self.address
        try:
            if a.secure:
                self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    a.host, a.port, ssl_context=context or ssl.create_default_context(), timeout=30
                )
            else:
                self.imap = imaplib.IMAP4(a.host, a.port, timeout=30)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(self.name, f"cannot connect: {exc}") from None
        try:
            self.imap.login(a.user, a.password)
        except imaplib.IMAP4.error as exc:
            self.imap.logout()
            raise MailboxError(self.name, f"login refused: {exc}") from None
        try:
            status, _ = self.imap.select(_quote(a.folder))
        except imaplib.IMAP4.readonly:  # read messages could not be moved out of it
            self.imap.logout()
            raise MailboxError(self.name, f"folder {a.folder!r} is read-only") from None
        except imaplib.IMAP4.error as exc:
            self.imap.logout()
            raise MailboxError(self.name, f"folder {a.folder!r}: {exc}") from None
        if status != "OK":
            self.imap.logout()
            raise MailboxError(self.name, f"no folder {a.folder!r}")
        self.moved = False
        self.made: set[str] = set()
        _, caps = self.imap.capability()  # after login: servers announce MOVE only then
        self.can_move = (
            b"MOVE" in b" ".join(c for c in caps if isinstance(c, bytes)).upper().split()
        )

    def messages(self) -> Iterator[Mail]:
        status, data = self.imap.uid("SEARCH", "UNDELETED")
        uids = data[0].split() if status == "OK" and data and data[0] else []
        for uid in uids:
            status, fetched = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            for item in fetched:
                if isinstance(item, tuple):
                    yield Mail(uid.decode(), item[1])

    def done(self, mail: Mail, aside: bool) -> None:
        """Move the message to its folder; MailboxError with the server's words if it stays."""
        folder = UNRECOGNISED if aside else PROCESSED
        if folder not in self.made:
            self.imap.create(folder)  # NO when it exists already: a failed move says the rest
            self.made.add(folder)
        failed = f"message {mail.ref} not moved to {folder}"
        try:
            if self.can_move:
                status, reply = self.imap.uid("MOVE", mail.ref, folder)
            else:
                status, reply = self.imap.uid("COPY", mail.ref, folder)
                if status == "OK":
                    failed = f"message {mail.ref} copied to {folder} but not removed"
                    status, reply = self.imap.uid("STORE", mail.ref, "+FLAGS", r"(\Deleted)")
                    self.moved = True
        except imaplib.IMAP4.error as exc:  # imaplib raises on BAD
            status, reply = "BAD", [str(exc).encode()]
        if status != "OK":
            said = b" ".join(r for r in reply if isinstance(r, bytes)).decode("utf-8", "replace")
            raise MailboxError(self.name, f"{failed}: {said}")

    def close(self) -> None:
        # the work is already recorded: a connection lost while saying goodbye loses nothing
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            if self.moved:
                self.imap.expunge()
            self.imap.logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_source(text: str) -> MailSource:
    """An IMAP URL, a Maildir folder or an mbox file."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
        return ImapSource(text)
    path = Path(text)
    if path.is_dir():
        return MaildirSource(path)
    if not path.exists():
        raise MailboxError(text, "no such file or folder")
    return MboxSource(path)


def _read_json_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MailboxError(path, exc.strerror or str(exc)) from None


def process_sources(
    engine: sa.Engine, settings: Settings, sources: list[str], now: datetime
) -> BounceReport:
    """Read every message of every source once; sources are all opened first, so a bad one
    stops the run before anything is read."""
    processor = BounceProcessor(engine, settings)
    opened: list[MailSource] = []
    try:
        report = BounceReport()
        files = [t for t in sources if t.endswith(".json")]  # a provider's events, saved
        bodies = [(t, _read_json_file(t)) for t in files]
        for text in sources:
            if text not in files:
                opened.append(open_source(text))
        for name, body in bodies:
            processor.take_events(body, name, now, report)
        for source in opened:
            for mail in source.messages():
                aside = processor.take(mail.raw, source.name, now, report)
                if aside:
                    report.aside.append(f"{source.name} {mail.ref}")
                try:
                    source.done(mail, aside)
                except MailboxError as exc:  # recorded already: the next run sees a duplicate
                    report.left.append(str(exc))
        return report
    finally:
        for source in opened:
            source.close()

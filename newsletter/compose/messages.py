"""MIME bytes: prepared once per issue, filled per reader.

Everything that is the same for every reader (headers, boundaries, the
quoted-printable bodies) is encoded once. Each literal stretch of a body is
encoded on its own and ends in a soft line break, so a reader's value can be
encoded alone and spliced in between: building one reader's message is a join of
bytes that were ready, plus a few short encodings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.charset import Charset
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache
from html import escape

from newsletter.compose.dkim import DkimSigner
from newsletter.compose.markers import ReaderValues, RenderedIssue, value_for
from newsletter.models import Reader
from newsletter.readers.tokens import reader_token
from newsletter.settings import Settings
from newsletter.transport.base import ascii_address

SOFT_BREAK = b"=\r\n"
_PART = (
    b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
)
PLAIN_HEAD, HTML_HEAD = _PART % b"plain", _PART % b"html"
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class Sender:
    """Who a message is from and where its links point; taken from settings once."""

    from_addr: str
    reply_to: str | None
    list_id: str
    site_name: str
    base_url: str
    unsubscribe_mailbox: str
    domain: str
    secret: str
    signer: DkimSigner | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Sender:
        sender = settings.sender_address
        return cls(
            from_addr=settings.from_addr,
            reply_to=settings.reply_to,
            list_id=settings.list_id,
            site_name=settings.site_name,
            base_url=settings.base_url,
            unsubscribe_mailbox=parseaddr(settings.bounce_address or "")[1] or sender,
            domain=sender.rpartition("@")[2] or "localhost",
            secret=settings.require_secret(),
            signer=DkimSigner.from_settings(settings),
        )

    def reader_values(self, reader: Reader, issue_id: int) -> ReaderValues:
        token = reader_token(self.secret, reader.id)
        return ReaderValues(
            name=one_line(reader.name),
            email=reader.email,
            unsubscribe_url=f"{self.base_url}/unsubscribe/{token}",
            view_url=f"{self.base_url}/view/{issue_id}/{token}",
        )


@dataclass(frozen=True)
class PreparedMessage:
    """One issue's message with the per-reader places left open."""

    head: bytes
    boundary: bytes
    text_parts: tuple[bytes | str, ...]  # encoded literal bytes and marker keys
    html_parts: tuple[bytes | str, ...]
    stuffed_text: tuple[bytes | str, ...]  # the same, dot-stuffed for SMTP
    stuffed_html: tuple[bytes | str, ...]
    fallbacks: tuple[str, ...]
    issue_id: int
    test: bool
    signer: DkimSigner | None
    mailbox: str  # where a mailto: unsubscribe goes
    list_headers: bool  # List-Id and List-Unsubscribe: mail to subscribers, not to sign-ups


def one_line(value: str) -> str:
    """A value safe for a header line: control characters (CR, LF, …) become spaces."""
    return _UNSAFE_IN_HEADER.sub(" ", value).strip()


def qp(text: str) -> bytes:
    """Quoted-printable (C speed), CRLF line ends, lines of at most 76 octets. A line that
    would start with "From " starts with "=46rom " (RFC 2049): mbox storage would write
    ">From " there and break the DKIM body hash. Every encoded stretch, and every value
    filled in, starts a line, so its own start is one too."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(normal.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    encoded = encoded.replace(b"\r\nFrom ", b"\r\n=46rom ")
    return b"=46" + encoded[1:] if encoded.startswith(b"From ") else encoded


def dot_stuff(encoded: bytes) -> bytes:
    """SMTP transparency (RFC 5321 4.5.2) for a stretch that starts at the start of a line."""
    stuffed = encoded.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def encode_parts(split: list[str], stuffed: bool = False) -> tuple[bytes | str, ...]:
    """Literal stretches encoded once, each ending on a line break; marker keys kept.

    Every stretch starts at the start of a line, so dot-stuffing it once here holds
    whatever values are filled in between."""
    parts: list[bytes | str] = []
    for i, piece in enumerate(split):
        if i % 2:
            parts.append(piece)
            continue
        encoded = qp(piece)
        if i + 1 < len(split) and not encoded.endswith(b"\r\n"):
            encoded += SOFT_BREAK
        parts.append(dot_stuff(encoded) if stuffed else encoded)
    return tuple(parts)


def message_id(issue_id: int, subscriber_id: int, sender: Sender) -> str:
    """The same for a reader's copy of an issue however often it is built (a resumed send
    repeats it), and unique to this desk: the issue's tag is keyed by the desk's signing
    key, so two desks on one domain, or a database made anew, never repeat one another's
    (Gmail drops a message whose Message-ID it has seen). The tag is made once per issue,
    not per reader: the per-reader path stays a string format."""
    tag = _issue_tag(sender.secret, issue_id)
    return f"<newsletter.{issue_id}.{subscriber_id}.{tag}@{sender.domain}>"


@lru_cache(maxsize=64)
def _issue_tag(secret: str, issue_id: int) -> str:
    digest = hmac.new(secret.encode(), f"message-id {issue_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:20]


def _fold(name: str, value: str) -> bytes:
    header = policy.SMTP.header_factory(name, value)  # parsed, so RFC 2047 applies
    return str(policy.SMTP.fold(name, header)).encode("ascii")


def prepare_message(
    rendered: RenderedIssue,
    sender: Sender,
    issue_id: int,
    now: datetime,
    *,
    test: bool = False,
    list_headers: bool = True,
    notice: bool = False,
) -> PreparedMessage:
    """The message's fixed part. An issue is bulk mail (`Precedence: bulk`); a notice is
    sent by the desk on its own (`Auto-Submitted: auto-generated`, RFC 3834), so that no
    vacation reply answers either."""
    boundary = ("=_" + secrets.token_hex(12)).encode("ascii")  # "=_" never occurs in QP
    subject = ("[TEST] " if test else "") + one_line(rendered.subject)
    head = [
        _fold("From", sender.from_addr),
        _fold("Reply-To", sender.reply_to) if sender.reply_to else b"",
        _fold("Subject", subject),
        _fold("Date", format_datetime(now)),
        _fold("List-Id", f"{one_line(sender.site_name)} <{sender.list_id}>")
        if list_headers
        else b"",
        # RFC 8058 one-click needs an https link: over http the mailto and the link stay
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        if list_headers and sender.base_url.startswith("https://")
        else b"",
        b"Auto-Submitted: auto-generated\r\n" if notice else b"Precedence: bulk\r\n",
        b"X-Newsletter-Test: yes\r\n" if test else b"",
        b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n',
    ]
    return PreparedMessage(
        head=b"".join(head),
        boundary=boundary,
        text_parts=encode_parts(rendered.split_text()),
        html_parts=encode_parts(rendered.split_html()),
        stuffed_text=encode_parts(rendered.split_text(), stuffed=True),
        stuffed_html=encode_parts(rendered.split_html(), stuffed=True),
        fallbacks=rendered.fallbacks,
        issue_id=issue_id,
        test=test,
        mailbox=sender.unsubscribe_mailbox,
        list_headers=list_headers,
        signer=sender.signer,
    )


def _fill(
    parts: tuple[bytes | str, ...],
    values: ReaderValues,
    fallbacks: tuple[str, ...],
    html: bool,
    stuffed: bool,
) -> list[bytes]:
    encoded: dict[str, bytes] = {}  # a marker that recurs (the view link) is encoded once
    out: list[bytes] = []
    for part in parts:
        if isinstance(part, bytes):
            out.append(part)
            continue
        if part not in encoded:
            value = value_for(part, values, fallbacks)
            text = qp(escape(value) if html else value)
            encoded[part] = (dot_stuff(text) if stuffed else text) + SOFT_BREAK
        out.append(encoded[part])
    return out


_UTF8 = Charset("utf-8")


def header_address(reader: Reader) -> str:
    """To: the reader's name (RFC 2047 encoded when not ASCII) and address (IDNA domain)."""
    return formataddr((one_line(reader.name), ascii_address(reader.email)), charset=_UTF8)


def _to(reader: Reader) -> bytes:
    """The To line: formatted at once for the usual name. A long one (300 CJK characters
    made a 1,241-octet line; RFC 5322 allows 998) is written as encoded words of whole
    characters, at most 75 characters each (RFC 2047), one per folded line: any character
    may stand in an encoded word, so a comma or a quote in the name needs no quoting."""
    line = b"To: " + header_address(reader).encode("ascii") + b"\r\n"
    if len(line) <= 78:
        return line
    words, chunk = [], b""
    for char in one_line(reader.name):
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > 45:  # 45 octets: 60 of base64, a 72-character word
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    folded = [b"=?utf-8?b?" + base64.b64encode(w) + b"?=" for w in words if w]
    address = b"<" + ascii_address(reader.email).encode("ascii") + b">"
    return b"To: " + b"\r\n ".join([*folded, address]) + b"\r\n"


def build_message(
    prepared: PreparedMessage,
    reader: Reader,
    values: ReaderValues,
    msgid: str,
    stuffed: bool = False,
) -> bytes:
    """One reader's complete message, ready for the transport (dot-stuffed for SMTP DATA)."""
    if prepared.signer is not None:  # the signature covers the message as it is delivered
        plain = prepared.signer.sign(_build(prepared, reader, values, msgid, False))
        return dot_stuff(plain) if stuffed else plain
    return _build(prepared, reader, values, msgid, stuffed)


def _build(
    prepared: PreparedMessage, reader: Reader, values: ReaderValues, msgid: str, stuffed: bool
) -> bytes:
    unsubscribe = b""
    if prepared.list_headers:
        token = values.unsubscribe_url.rsplit("/", 1)[1]
        # the token's characters are all URL-safe: only the space needs quoting
        mailto = f"mailto:{prepared.mailbox}?subject=unsubscribe%20{token}"
        header = f"List-Unsubscribe: <{values.unsubscribe_url}>,\r\n <{mailto}>\r\n"
        unsubscribe = header.encode("ascii")
    dash = b"--" + prepared.boundary
    text = prepared.stuffed_text if stuffed else prepared.text_parts
    html = prepared.stuffed_html if stuffed else prepared.html_parts
    chunks = [
        prepared.head,
        _to(reader),
        b"Message-ID: " + msgid.encode("ascii") + b"\r\n",
        unsubscribe,
        b"\r\n",
        dash + b"\r\n",
        PLAIN_HEAD,
        *_fill(text, values, prepared.fallbacks, False, stuffed),
        b"\r\n" + dash + b"\r\n",
        HTML_HEAD,
        *_fill(html, values, prepared.fallbacks, True, stuffed),
        b"\r\n" + dash + b"--\r\n",
    ]
    return b"".join(chunks)

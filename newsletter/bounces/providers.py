"""What sending providers say about a message, as JSON: Amazon SES notifications (bare, or
inside an SNS envelope), Mailgun's, SendGrid's and Postmark's webhook events. Each
bounce, complaint or delivery becomes the same verdict returned mail gets, judged by the
same reasons (newsletter.reasons), one per recipient; everything else is left out.

Who it is about: the signed return path when the event carries the envelope sender
(SES's mail.source, Mailgun's envelope.sender), else the recipient's address."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from newsletter.bounces.classify import judged
from newsletter.bounces.verdict import (
    COMPLAINT,
    DIAGNOSTIC_MAX,
    HARD,
    SOFT,
    Verdict,
    valid_addresses,
)
from newsletter.compose.returnpath import ReturnPathReader
from newsletter.errors import InputError
from newsletter.reasons import enhanced_code

DELIVERED = "delivered"


@dataclass(frozen=True)
class Event:
    key: str  # the event's own identity: a second copy of it changes nothing
    verdict: Verdict
    provider: str


def parse_events(body: bytes | str, where: str = "the JSON") -> list[Any]:
    """The JSON documents of a body: one object, a list of them (SendGrid), or one per line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        document = json.loads(text)
    except json.JSONDecodeError as whole:
        document = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                document.append(json.loads(line))
            except json.JSONDecodeError as exc:
                first = whole if number == 1 else exc
                raise InputError(f"{where}: not JSON: line {number}: {first.msg}") from None
    return document if isinstance(document, list) else [document]


def events(documents: list[Any], reader: ReturnPathReader | None) -> list[Event]:
    """Every bounce, complaint and delivery the documents report, one per recipient."""
    found: list[Event] = []
    for document in documents:
        if not isinstance(document, dict):
            continue
        if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
            try:
                document = json.loads(document["Message"])  # SES through SNS
            except json.JSONDecodeError:
                continue
        for provider, parse in _PARSERS:
            parsed = list(parse(document, reader))
            if parsed:
                found += [Event(key, verdict, provider) for key, verdict in parsed]
                break
    return found


Parsed = Iterator[tuple[str, Verdict]]


def _key(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def _target(reader: ReturnPathReader | None, sender: object) -> Any:
    if reader is None or not isinstance(sender, str):
        return None
    for token in reader.candidates(sender):
        found = reader.check(token)
        if found is not None:
            return found
    return None


def _verdict(
    kind: str, address: object, code: str, diagnostic: str, target: Any, reason: str = ""
) -> Verdict:
    addresses = valid_addresses([address]) if isinstance(address, str) else ()
    detail = " ".join(str(diagnostic).split())[:DIAGNOSTIC_MAX]
    if kind in (HARD, SOFT):
        verdict = judged(kind, addresses, code or enhanced_code(detail) or None, detail)
        return replace(verdict, target=target)
    return Verdict(kind, target, addresses, code or None, detail, reason)


def _ses(document: dict[str, Any], reader: ReturnPathReader | None) -> Parsed:
    kind = document.get("notificationType") or document.get("eventType")
    mail: dict[str, Any] = document["mail"] if isinstance(document.get("mail"), dict) else {}
    if kind not in ("Bounce", "Complaint", "Delivery") or not mail.get("messageId"):
        return
    target = _target(reader, mail.get("source"))
    message_id = mail.get("messageId")
    if kind == "Bounce":
        bounce = document.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for r in bounce.get("bouncedRecipients") or []:
            diagnostic = str(r.get("diagnosticCode") or bounce.get("bounceSubType") or "")
            yield _key("ses", message_id, kind, r.get("emailAddress")), _verdict(
                HARD if hard else SOFT, r.get("emailAddress"), str(r.get("status") or ""),
                diagnostic, target,
            )  # fmt: skip
    elif kind == "Complaint":
        complaint = document.get("complaint") or {}
        for r in complaint.get("complainedRecipients") or []:
            what = complaint.get("complaintFeedbackType") or "abuse"
            yield _key("ses", message_id, kind, r.get("emailAddress")), _verdict(
                COMPLAINT, r.get("emailAddress"), "", f"complaint ({what}) reported by SES",
                target, "feedback",
            )  # fmt: skip
    else:
        delivery = document.get("delivery") or {}
        for address in delivery.get("recipients") or []:
            yield _key("ses", message_id, kind, address), _verdict(
                DELIVERED, address, "", str(delivery.get("smtpResponse") or ""), target,
                "delivered",
            )  # fmt: skip


def _mailgun(document: dict[str, Any], reader: ReturnPathReader | None) -> Parsed:
    data = document.get("event-data")
    if not isinstance(data, dict) or "event" not in data:
        return
    event, status = data.get("event"), data.get("delivery-status") or {}
    envelope = data.get("envelope") or {}
    target = _target(reader, envelope.get("sender"))
    words = " ".join(str(status.get(k) or "") for k in ("code", "message", "description"))
    key = _key("mailgun", data.get("id"), event, data.get("recipient"))
    if event == "failed":
        kind = HARD if data.get("severity") == "permanent" else SOFT
        yield key, _verdict(kind, data.get("recipient"), "", words, target)
    elif event == "complained":
        yield key, _verdict(COMPLAINT, data.get("recipient"), "", "complaint reported by Mailgun",
                            target, "feedback")  # fmt: skip
    elif event == "delivered":
        yield key, _verdict(DELIVERED, data.get("recipient"), "", words, target, "delivered")


def _sendgrid(document: dict[str, Any], reader: ReturnPathReader | None) -> Parsed:
    event = document.get("event")
    if "sg_event_id" not in document or event not in ("bounce", "dropped", "spamreport",
                                                      "delivered", "deferred"):  # fmt: skip
        return
    key = _key("sendgrid", document.get("sg_event_id"))
    address, words = document.get("email"), str(document.get("reason") or "")
    status = str(document.get("status") or "")
    if event in ("bounce", "dropped"):
        kind = SOFT if status.startswith("4") or document.get("type") == "blocked" else HARD
        yield key, _verdict(kind, address, status, f"{status} {words}".strip(), None)
    elif event == "deferred":
        yield key, _verdict(SOFT, address, status, str(document.get("response") or words), None)
    elif event == "spamreport":
        yield key, _verdict(COMPLAINT, address, "", "complaint reported by SendGrid", None,
                            "feedback")  # fmt: skip
    else:
        yield key, _verdict(DELIVERED, address, "", str(document.get("response") or ""), None,
                            "delivered")  # fmt: skip


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "AddressChange"}


def _postmark(document: dict[str, Any], reader: ReturnPathReader | None) -> Parsed:
    record = document.get("RecordType")
    if record not in ("Bounce", "SpamComplaint", "Delivery") or ("Email" not in document and \
            "Recipient" not in document):  # fmt: skip
        return
    address = document.get("Email") or document.get("Recipient")
    key = _key("postmark", document.get("ID") or document.get("MessageID"), record, address)
    details = str(document.get("Details") or document.get("Description") or "")
    if record == "Bounce":
        kind = HARD if document.get("Type") in _POSTMARK_HARD else SOFT
        yield key, _verdict(kind, address, "", details, None)
    elif record == "SpamComplaint":
        yield key, _verdict(COMPLAINT, address, "", "complaint reported by Postmark", None,
                            "feedback")  # fmt: skip
    else:
        yield key, _verdict(DELIVERED, address, "", details, None, "delivered")


_PARSERS = (("ses", _ses), ("mailgun", _mailgun), ("sendgrid", _sendgrid), ("postmark", _postmark))

"""Complaints: feedback-loop reports (ARF, RFC 5965, every Original-Rcpt-To they name)
and Microsoft's junk mail reports (JMRP), each naming the readers who pressed "spam"."""

from __future__ import annotations

import email
import email.message
from email.utils import getaddresses, parseaddr

from newsletter.bounces.verdict import COMPLAINT, DIAGNOSTIC_MAX, Verdict, valid_addresses


def complaint(message: email.message.Message) -> Verdict:
    fields: dict[str, list[str]] = {}
    addresses: list[str] = []
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            fields = _feedback_fields(part)
        elif part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            original = _embedded(part)
            if original is not None:
                addresses += [a for _, a in getaddresses(original.get_all("To", []))]
    addresses = fields.get("original-rcpt-to", []) + addresses  # every one a report names
    reporter = _first(fields, "user-agent") or parseaddr(message.get("From", ""))[1]
    detail = f"feedback report ({_first(fields, 'feedback-type') or 'abuse'}) from {reporter}"
    return Verdict(COMPLAINT, None, valid_addresses(addresses), None, detail[:DIAGNOSTIC_MAX])


def _first(fields: dict[str, list[str]], name: str) -> str:
    return (fields.get(name) or [""])[0]


def junk_report(message: email.message.Message) -> Verdict | None:
    """Microsoft's junk mail reporting (JMRP): not ARF, but the reported message attached
    with the recipient in X-HmXmrOriginalRecipient."""
    for part in message.walk():
        if part.get_content_type() != "message/rfc822":
            continue
        original = _embedded(part)
        recipients = original.get_all("X-HmXmrOriginalRecipient", []) if original else []
        if recipients:
            reporter = parseaddr(message.get("From", ""))[1] or "Microsoft"
            detail = f"junk mail report (JMRP) from {reporter}"
            return Verdict(COMPLAINT, None, valid_addresses(recipients), None, detail)
    return None


def _feedback_fields(part: email.message.Message) -> dict[str, list[str]]:
    """The report's fields, each with every value it has (a report may name several
    Original-Rcpt-To); Python parses message/* bodies into a list of header blocks."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [email.message_from_string(str(payload))]
    fields: dict[str, list[str]] = {}
    for block in blocks:
        if not isinstance(block, email.message.Message):
            continue
        for name, value in block.items():
            fields.setdefault(name.lower(), []).append(str(value).strip())
    return fields


def _embedded(part: email.message.Message) -> email.message.Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
        return payload[0]
    if isinstance(payload, str):
        return email.message_from_string(payload)
    return None

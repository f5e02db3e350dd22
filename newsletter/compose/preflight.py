"""Preflight: what an editor should know before an issue goes out.

Errors block approval and the send: no unsubscribe or privacy link, no subject, and an
HTML part Gmail would clip (which hides the footer's unsubscribe link); only the last
can be overridden (`--force`, the desk's "approve anyway"). Warnings are shown, each
naming the field that fixes it where the editor can fix it (images' text, long lines,
plain-http links).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lxml.html

from newsletter.compose.markers import RenderedIssue
from newsletter.compose.messages import qp
from newsletter.models import IssueItem

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_ADVISED = 78
PREHEADER_RANGE = (40, 140)


FORCIBLE = frozenset({"gmail-clipping"})  # errors an editor may choose to send anyway


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    message: str
    field: str = ""  # what fixes it: "subject", "preheader", "item-12" (an item's editor)


@dataclass(frozen=True)
class Report:
    html_bytes: int
    encoded_html_bytes: int
    text_bytes: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    def blocking(self, force: bool = False) -> tuple[Finding, ...]:
        """The errors that stop approval and the send; `force` lets the forcible pass."""
        return tuple(f for f in self.errors if not (force and f.code in FORCIBLE))

    def refusal(self, what: str, force: bool = False) -> str | None:
        """Why `what` ("issue 3") may not go, or None."""
        blocking = self.blocking(force)
        if not blocking:
            return None
        reasons = "; ".join(f.message for f in blocking)
        hint = (
            ' (newsletter issue approve --force, or the desk\'s "Approve anyway", accepts it)'
            if all(f.code in FORCIBLE for f in blocking)
            else ""
        )
        return f"{what} fails preflight: {reasons}{hint}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "html_bytes": self.html_bytes,
            "encoded_html_bytes": self.encoded_html_bytes,
            "gmail_clip_bytes": GMAIL_CLIP_BYTES,
            "text_bytes": self.text_bytes,
            "findings": [asdict(f) for f in self.findings],
            "ok": not self.errors,
        }

    def lines(self) -> list[str]:
        size = f"HTML {self.html_bytes:,} bytes ({self.encoded_html_bytes:,} encoded"
        out = [f"{size}; Gmail clips above {GMAIL_CLIP_BYTES:,})"]
        out += [f"{f.level}: {f.message}" for f in self.findings] or ["no problems found"]
        return out


def check(
    rendered: RenderedIssue,
    html: str,
    text: str,
    privacy_url: str,
    items: Sequence[IssueItem] = (),
) -> Report:
    """Check one reader's filled copy of a rendered issue; `items` name the field that
    fixes an article's finding."""
    findings = [*_check_lines(rendered), *_check_html(rendered, html, privacy_url, items)]
    if rendered.split_text().count("UNSUBSCRIBEURL0") == 0:
        findings.append(
            Finding("error", "text-unsubscribe", "the text part has no unsubscribe link")
        )
    encoded = len(qp(html))  # the encoding the message uses, so the size is the real one
    if encoded > GMAIL_CLIP_BYTES:
        findings.append(
            Finding(
                "error",
                "gmail-clipping",
                f"the HTML is {encoded:,} bytes encoded: Gmail clips messages above "
                f"{GMAIL_CLIP_BYTES:,} and hides the footer with the unsubscribe link; "
                "remove articles or shorten their summaries",
            )
        )
    unique = tuple(dict.fromkeys(findings))  # one line per problem, not per occurrence
    return Report(len(html.encode()), encoded, len(text.encode()), unique)


def _check_lines(rendered: RenderedIssue) -> list[Finding]:
    found = []
    subject, preheader = rendered.subject, rendered.preheader
    if not subject:
        found.append(Finding("error", "subject-missing", "the subject is empty", "subject"))
    elif len(subject) > SUBJECT_ADVISED:
        found.append(
            Finding(
                "warning",
                "subject-long",
                f"the subject is {len(subject)} characters: inboxes cut it near 60-80; "
                "shorten the subject",
                "subject",
            )
        )
    low, high = PREHEADER_RANGE
    if not preheader:
        found.append(
            Finding(
                "warning",
                "preheader-missing",
                "no preheader: inboxes will show body text; write a preheader",
                "preheader",
            )
        )
    elif not low <= len(preheader) <= high:
        found.append(
            Finding(
                "warning",
                "preheader-length",
                f"the preheader is {len(preheader)} characters; {low}-{high} shows best",
                "preheader",
            )
        )
    return found


def _check_html(
    rendered: RenderedIssue, html: str, privacy_url: str, items: Sequence[IssueItem]
) -> list[Finding]:
    found: list[Finding] = []
    owner = {}  # an image's or a link's address: the item's editor that changes it
    for item in items:
        owner[item.article.url] = f"item-{item.article.id}"
        if item.article.image_url:
            owner[item.article.image_url] = f"item-{item.article.id}"
    marked = lxml.html.document_fromstring(rendered.html)
    hrefs = [a.get("href", "") for a in marked.iter("a")]
    if not any(h.endswith("UNSUBSCRIBEURL0E") for h in hrefs):
        found.append(Finding("error", "unsubscribe-missing", "the HTML has no unsubscribe link"))
    if privacy_url not in hrefs:
        found.append(
            Finding(
                "error",
                "privacy-missing",
                f"the HTML does not link the privacy policy ({privacy_url})",
            )
        )
    document = lxml.html.document_fromstring(html)
    for img in document.iter("img"):
        src = img.get("src", "")
        field = owner.get(src, "")
        if not (img.get("alt") or "").strip():
            what = "; give it an image text" if field else ""
            found.append(
                Finding("warning", "image-alt", f"image without alt text: {src}{what}", field)
            )
        if src.startswith("http:"):
            found.append(
                Finding("warning", "insecure-image", f"image over plain http: {src}", field)
            )
    for a in document.iter("a"):
        href = a.get("href", "")
        if href.startswith("http:"):
            found.append(
                Finding(
                    "warning", "insecure-link", f"link over plain http: {href}", owner.get(href, "")
                )
            )
    return found

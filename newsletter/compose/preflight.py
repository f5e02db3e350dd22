"""Preflight: what an editor should know before an issue goes out.

Errors stop a send (no unsubscribe or privacy link, no subject); warnings are shown
(Gmail clipping, images without alt text, plain-http links, long subject lines).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import lxml.html

from newsletter.compose.messages import qp
from newsletter.compose.rendering import RenderedIssue

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_ADVISED = 78
PREHEADER_RANGE = (40, 140)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    code: str
    message: str


@dataclass(frozen=True)
class Report:
    html_bytes: int
    encoded_html_bytes: int
    text_bytes: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

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


def check(rendered: RenderedIssue, html: str, text: str, privacy_url: str) -> Report:
    """Check one reader's filled copy of a rendered issue."""
    findings = [*_check_lines(rendered), *_check_html(rendered, html, privacy_url)]
    if rendered.split_text().count("UNSUBSCRIBEURL0") == 0:
        findings.append(
            Finding("error", "text-unsubscribe", "the text part has no unsubscribe link")
        )
    encoded = len(qp(html))  # the encoding the message uses, so the size is the real one
    if encoded > GMAIL_CLIP_BYTES:
        findings.append(
            Finding(
                "warning",
                "gmail-clipping",
                f"the HTML is {encoded:,} bytes encoded: Gmail clips messages above "
                f"{GMAIL_CLIP_BYTES:,} and hides the footer with the unsubscribe link",
            )
        )
    unique = tuple(dict.fromkeys(findings))  # one line per problem, not per occurrence
    return Report(len(html.encode()), encoded, len(text.encode()), unique)


def _check_lines(rendered: RenderedIssue) -> list[Finding]:
    found = []
    subject, preheader = rendered.subject, rendered.preheader
    if not subject:
        found.append(Finding("error", "subject-missing", "the subject is empty"))
    elif len(subject) > SUBJECT_ADVISED:
        found.append(
            Finding(
                "warning",
                "subject-long",
                f"the subject is {len(subject)} characters: inboxes cut it near 60-80",
            )
        )
    low, high = PREHEADER_RANGE
    if not preheader:
        found.append(
            Finding("warning", "preheader-missing", "no preheader: inboxes will show body text")
        )
    elif not low <= len(preheader) <= high:
        found.append(
            Finding(
                "warning",
                "preheader-length",
                f"the preheader is {len(preheader)} characters; {low}-{high} shows best",
            )
        )
    return found


def _check_html(rendered: RenderedIssue, html: str, privacy_url: str) -> list[Finding]:
    found: list[Finding] = []
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
        if not (img.get("alt") or "").strip():
            found.append(Finding("warning", "image-alt", f"image without alt text: {src}"))
        if src.startswith("http:"):
            found.append(Finding("warning", "insecure-image", f"image over plain http: {src}"))
    for a in document.iter("a"):
        href = a.get("href", "")
        if href.startswith("http:"):
            found.append(Finding("warning", "insecure-link", f"link over plain http: {href}"))
    return found

"""The issue composed once for a send: rendered, checked by preflight, prepared as
MIME with a slot per reader, and the envelope sender its mail goes out with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parseaddr

from newsletter.compose.markers import RenderedIssue, personalise
from newsletter.compose.messages import PreparedMessage, Sender, prepare_message
from newsletter.compose.preflight import Finding, Report, check
from newsletter.compose.rendering import Site, render_issue
from newsletter.models import Issue, Reader
from newsletter.settings import Settings


@dataclass(frozen=True)
class Composed:
    """An issue rendered and prepared once, ready to be filled per reader."""

    issue: Issue
    rendered: RenderedIssue
    prepared: PreparedMessage
    sender: Sender
    preflight: Report


Checked = tuple[RenderedIssue, Report]


def render_checked(
    issue: Issue, settings: Settings, sender: Sender, *, test: bool = False
) -> Checked:
    """The issue rendered (templates, CSS inlined) and its preflight: the costly part of
    composing, which depends only on the issue, the settings and the template files."""
    rendered = render_issue(issue, Site.from_settings(settings), settings.templates, is_test=test)
    sample = Reader(id=0, email="reader@example.org", name="")
    html, text = personalise(rendered, sender.reader_values(sample, issue.id))
    report = check(rendered, html, text, settings.privacy_link, issue.items)
    if not settings.base_url.startswith("https://"):
        plain = Finding(
            "warning",
            "one-click-http",
            "one-click unsubscribe (RFC 8058) needs an https NEWSLETTER_BASE_URL: "
            "List-Unsubscribe-Post is left out",
        )
        report = replace(report, findings=(*report.findings, plain))
    return rendered, report


def compose(
    issue: Issue,
    settings: Settings,
    now: datetime,
    *,
    test: bool = False,
    rendering: Callable[[Sender], Checked] | None = None,
) -> Composed:
    """The issue ready to be filled per reader. `rendering` gives the rendered issue and its
    preflight when it may come from elsewhere (the preview's cache)."""
    sender = Sender.from_settings(settings)  # the DKIM key is read here, once
    if rendering is None:
        rendered, report = render_checked(issue, settings, sender, test=test)
    else:
        rendered, report = rendering(sender)
    prepared = prepare_message(rendered, sender, issue.id, now, test=test)
    return Composed(issue, rendered, prepared, sender, report)


def envelope_sender(settings: Settings) -> str:
    return parseaddr(settings.bounce_address or "")[1] or settings.sender_address

"""Render once, fill per reader: how much the per-reader path costs against doing it all per reader.

    python bench/build_messages.py [READERS]

Prints the one-off cost of rendering and inlining an issue, the per-reader build
rate of the prepared path, and the naive path (render, inline and build an
EmailMessage for every reader) measured in the same run, with their ratio.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from newsletter.compose.markers import personalise
from newsletter.compose.messages import Sender, build_message, message_id, prepare_message
from newsletter.compose.rendering import Site, render_issue
from newsletter.curation.feeds import parse_feed
from newsletter.models import Article, Issue, IssueItem, Reader
from newsletter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def demo_issue() -> Issue:
    feed = ROOT / "newsletter" / "defaults" / "demo_feed.xml"
    drafts = parse_feed(feed.read_bytes(), str(feed)).drafts
    items = tuple(
        IssueItem(Article(id=n, **draft.__dict__), position=n)
        for n, draft in enumerate(drafts, start=1)
    )
    return Issue(1, date(2026, 11, 27), "approved", "The week in review: sixteen stories",
                 "From the budget vote to the night libraries, picked by our editors.",
                 "Good morning.\n\nThank you for reading.", True, items)  # fmt: skip


def main() -> None:
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    settings = Settings(secret_key="bench-secret", base_url="https://news.example.org")
    site, sender, issue = Site.from_settings(settings), Sender.from_settings(settings), demo_issue()
    templates = ROOT / "templates"

    started = time.perf_counter()
    rendered = render_issue(issue, site, templates)
    prepared = prepare_message(rendered, sender, issue.id, NOW)
    once = time.perf_counter() - started

    people = [Reader(n, f"reader{n}@example.org", f"Читатель {n}") for n in range(readers)]
    started = time.perf_counter()
    size = 0
    for reader in people:
        values = sender.reader_values(reader, issue.id)
        size += len(build_message(prepared, reader, values, message_id(1, reader.id, "x.org")))
    fast = readers / (time.perf_counter() - started)

    naive_count = max(20, readers // 500)
    started = time.perf_counter()
    for reader in people[:naive_count]:
        copy = render_issue(issue, site, templates)
        html, text = personalise(copy, sender.reader_values(reader, issue.id))
        message = EmailMessage(policy=SMTP)
        message["Subject"], message["From"], message["To"] = issue.subject, "a@x.org", reader.email
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        message.as_bytes()
    naive = naive_count / (time.perf_counter() - started)

    print(f"issue: {len(issue.items)} articles, {size / readers / 1024:.1f} KB per message")
    print(f"render + inline + prepare, once per issue: {once * 1000:.1f} ms")
    print(f"prepared path: {fast:,.0f} messages/s built on one core ({readers:,} readers)")
    print(f"naive path:    {naive:,.0f} messages/s ({naive_count} readers)")
    print(f"ratio: {fast / naive:,.0f}x")


if __name__ == "__main__":
    main()

"""The desk's week: the next send (when, what, to how many, and whether a scheduler is
there to send it), the calendar of past and coming issues, starting the issue of any send
day, sending now, a test to oneself, the feed import, and a send followed live."""

from __future__ import annotations

import logging
import threading
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from newsletter.curation import issues as library
from newsletter.delivery.send import send_test
from newsletter.errors import InputError, NewsletterError
from newsletter.publications import of_issue
from newsletter.reports import calendar, live, send_status, week
from newsletter.schedule.job import FridayJob
from newsletter.transport.base import opened
from newsletter.web.desk.issues import wants_json
from newsletter.web.desk.session import (
    bp,
    current_editor,
    desk_newsletter,
    desk_now,
    desk_of_app,
)

SENDS = "DESK_SENDS"  # app.config: the sends this process started, to be joined on the way out
OUTCOMES = "DESK_SEND_OUTCOMES"  # app.config: how each ended, by issue id
log = logging.getLogger(__name__)


@bp.get("/")
def this_week() -> Any:
    """The issue of the next send to come, or the calendar to start it from."""
    desk, (_newsletter, settings) = desk_of_app(), desk_newsletter()
    with desk.engine.connect() as conn:
        day = settings.next_send_day(desk_now())
        issue_id = library.issue_id_for_day(conn, day, settings.newsletter_id)
    if issue_id is not None:
        return redirect(url_for("desk.issue", issue_id=issue_id))
    return issues_page()


@bp.get("/issues")
def issues_page() -> Any:
    desk, now = desk_of_app(), desk_now()
    newsletter, settings = desk_newsletter()
    with desk.engine.connect() as conn:
        days = calendar(conn, settings, now)
        glance = week(conn, settings, now, None)
    # the forms name their newsletter: another tab may have switched the session's since
    return render_template("desk/issues.html", days=days, week=glance, now=now,
                           today=now.astimezone(settings.timezone).date(),
                           newsletter_slug=newsletter.slug)  # fmt: skip


@bp.post("/issues")
def new_issue() -> ResponseReturnValue:
    desk, now = desk_of_app(), desk_now()
    _newsletter, settings = desk_newsletter()
    newsletter_id = settings.newsletter_id
    raw = request.form.get("day", "").strip()
    try:
        day = date.fromisoformat(raw) if raw else settings.next_send_day(now)
        if not settings.send_at.is_send_day(day):
            raise InputError(f"day: {day:%A %d %B %Y} is not a send day ({settings.send_at})")
        if day < now.astimezone(settings.timezone).date():
            raise InputError(f"day: {day:%A %d %B %Y} has passed")
        try:
            with desk.engine.begin() as conn:
                existing = library.issue_id_for_day(conn, day, newsletter_id)
                if existing is not None:  # already started (another tab): open it
                    return redirect(url_for("desk.issue", issue_id=existing), 303)
                issue = library.new_issue(conn, day, now, newsletter_id)
        except sa.exc.IntegrityError:  # started by another tab at the same moment
            with desk.engine.connect() as conn:
                taken = library.issue_id_for_day(conn, day, newsletter_id)
            return redirect(url_for("desk.issue", issue_id=taken), 303)
    except ValueError:
        flash(f"day: {raw[:40]!r} is not a date (YYYY-MM-DD)", "error")
        return redirect(url_for("desk.issues_page"), 303)
    except NewsletterError as exc:
        flash(str(exc), "error")
        return redirect(url_for("desk.issues_page"), 303)
    return redirect(url_for("desk.issue", issue_id=issue.id), 303)


def _back(issue_id: int, message: str, ok: bool) -> ResponseReturnValue:
    flash(message, "ok" if ok else "error")
    return redirect(url_for("desk.issue", issue_id=issue_id), 303)


def _existing(issue_id: int) -> None:
    """A 404 page for an issue that is not there, before anything is done for it."""
    with desk_of_app().engine.connect() as conn:
        library.find_issue_id(conn, issue_id)


@bp.post("/issues/<int:issue_id>/test")
def test(issue_id: int) -> ResponseReturnValue:
    _existing(issue_id)
    desk, editor = desk_of_app(), current_editor()
    try:
        with opened(desk.transport) as transport:
            send_test(issue_id, [editor.email], desk.engine, desk.settings, transport, desk_now())
    except NewsletterError as exc:
        return _back(issue_id, str(exc), False)
    return _back(issue_id, f"test sent to {editor.email}", True)


@bp.post("/issues/<int:issue_id>/import")
def import_feed(issue_id: int) -> ResponseReturnValue:
    _existing(issue_id)
    desk = desk_of_app()
    if not desk.settings.feed_url:
        return _back(issue_id, "NEWSLETTER_FEED_URL is not set: the desk does not know the feed",
                     False)  # fmt: skip
    try:
        reports = desk.import_feeds([desk.settings.feed_url])
    except NewsletterError as exc:
        return _back(issue_id, str(exc), False)
    return _back(issue_id, "; ".join(
        f"feed: {r.added} added, {r.updated} updated, {len(r.skipped)} skipped" for r in reports
    ), True)  # fmt: skip


@bp.post("/issues/<int:issue_id>/send")
def send_now(issue_id: int) -> ResponseReturnValue:
    """Send an approved issue now, not at its time: the editor types the number of readers
    it goes to, so a slip of the mouse mails nobody. The send runs in this process and is
    followed on the status page; if the process stops, `newsletter send` resumes it."""
    _existing(issue_id)
    desk, now = desk_of_app(), desk_now()
    with desk.engine.connect() as conn:
        settings = of_issue(conn, desk.settings, issue_id)
        glance = week(conn, settings, now, issue_id)
    found = glance.issue
    assert found is not None
    typed = request.form.get("confirm", "").replace(",", "").replace(" ", "").strip()
    if found.status != "approved":
        return _back(issue_id, f"issue {issue_id} is {found.status}: approve it first", False)
    if typed != str(glance.audience):
        return _back(issue_id, f"not sent: type {glance.audience} (the number of readers) to "
                     "confirm", False)  # fmt: skip
    if glance.sending:
        return _back(issue_id, f"not sent: {glance.sending} is sending now", False)
    job = FridayJob(desk, desk.now, settings=settings)
    outcomes = current_app.config.setdefault(OUTCOMES, {})
    outcomes.pop(issue_id, None)

    def send() -> None:
        result = job.send(found.send_date, issue_ref=str(issue_id))
        if result.outcome != "standby":  # another press's send goes on: nothing ended
            outcomes[issue_id] = result  # shown on the status page: paused, failed, sent …
        log.info("send now of issue %s: %s", issue_id, " / ".join(result.lines()))

    sender = threading.Thread(target=send, name=f"send-issue-{issue_id}", daemon=True)
    current_app.config.setdefault(SENDS, []).append(sender)
    sender.start()
    flash(f"sending issue {issue_id} to {glance.audience} readers now", "ok")
    return redirect(url_for("desk.status", issue_id=issue_id), 303)


# The ledger's words, as an editor says them
WORDS = {
    "pending": "waiting", "queued": "about to go", "claimed": "being sent", "sent": "sent",
    "failed": "failed", "deferred": "will be tried again", "skipped": "skipped (left the list)",
    "uncertain": "uncertain (not sent again)",
}  # fmt: skip


def status_document(issue_id: int) -> dict[str, Any]:
    desk = desk_of_app()
    with desk.engine.connect() as conn:
        document = send_status(conn, issue_id).document
        document["live"] = live(conn, document["issue"], desk_now())
    document["words"] = {k: WORDS.get(k, k) for k in document["counts"]}
    outcome = current_app.config.get(OUTCOMES, {}).get(issue_id)
    if outcome is not None:  # a send started here ended so: say how, in its own words
        document["ended"] = {"outcome": outcome.outcome, "message": outcome.message}
    return document


@bp.get("/issues/<int:issue_id>/status")
def status(issue_id: int) -> Any:
    document = status_document(issue_id)
    if request.args.get("format") == "json" or wants_json():
        return jsonify(document)
    return render_template("desk/status.html", s=document, words=WORDS)


def join_sends(app: Any, timeout: float | None = None) -> None:
    """Wait for the sends this app started (a test's end, a server's shutdown)."""
    for sender in list(app.config.get(SENDS, [])):
        sender.join(timeout)


@bp.app_template_filter("span")
def span(seconds: float | None) -> str:
    """A while in an editor's words: "2 days 14 hours", "35 minutes", "under a minute"."""
    if seconds is None:
        return "unknown"
    later, seconds = seconds >= 0, abs(seconds)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (minutes, "minute")]
    words = " ".join(f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n)
    words = words or ("under a minute" if seconds < 60 else "")
    return words if later else f"{words} ago"


@bp.app_context_processor
def _archive_words() -> dict[str, Any]:
    from newsletter.web.archive import slug  # the archive's own address for an issue

    return {"archive_words": slug}


@bp.app_template_filter("count")
def count(number: int) -> str:
    return f"{number:,}"

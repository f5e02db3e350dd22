"""The desk's issue pages: the week, the list of issues, one issue beside its preview
with the article pool, and the actions on it (pick, remove, move, edit, approve, test,
import the feed), and a send's status."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any

from flask import (
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from newsletter.compose.copies import preview_copy
from newsletter.curation import issues as library
from newsletter.curation.articles import list_articles, list_sections
from newsletter.delivery.ledger import counts as ledger_counts
from newsletter.delivery.send import send_test
from newsletter.errors import InputError, NewsletterError, NotFound
from newsletter.reports import send_status
from newsletter.transport.base import opened
from newsletter.web.desk.session import F, bp, current_editor, desk_now, desk_of_app, safe_next


def _send_day() -> Any:
    return desk_of_app().settings.send_day(desk_now())


@bp.get("/")
def week() -> Any:
    day = _send_day()
    with desk_of_app().engine.connect() as conn:
        issue_id = library.issue_id_for_day(conn, day)
    if issue_id is not None:
        return redirect(url_for("desk.issue", issue_id=issue_id))
    return issues_page(day)


@bp.get("/issues")
def issues_page(day: Any = None) -> Any:
    engine = desk_of_app().engine
    with engine.connect() as conn:
        found = library.list_issues(conn)
        counts = {i.id: ledger_counts(conn, i.id) for i in found}
    return render_template("desk/issues.html", issues=found, counts=counts,
                           new_day=day or _send_day())  # fmt: skip


@bp.post("/issues")
def new_issue() -> ResponseReturnValue:
    with desk_of_app().engine.begin() as conn:
        issue = library.new_issue(conn, _send_day(), desk_now())
    return redirect(url_for("desk.issue", issue_id=issue.id), 303)


def _pool_filters() -> dict[str, Any]:
    q = request.args.get("q", "").strip()
    section = request.args.get("section", "").strip()
    days = request.args.get("days", "").strip()
    since = None
    if days.isdigit():
        now = desk_now()
        since = datetime.combine(now.date(), time(), now.tzinfo) - timedelta(days=int(days))
    return {"search": q or None, "section": section or None, "since": since}


@bp.get("/issues/<int:issue_id>")
def issue(issue_id: int) -> Any:
    desk = desk_of_app()
    as_email = request.args.get("as", "").strip() or None
    filters = _pool_filters()
    with desk.engine.connect() as conn:
        found = library.get_issue(conn, issue_id)
        pool = list_articles(conn, limit=60, **filters)
        sections = list_sections(conn)
    preflight, problem = None, None
    try:
        copy = preview_copy(desk.engine, desk.settings, issue_id, as_email, desk_now())
        preflight = copy.composed.preflight
    except NewsletterError as exc:  # an unknown reader, a template error: say so beside it
        problem = str(exc)
    picked = {item.article.id for item in found.items}
    return render_template("desk/issue.html", issue=found, pool=pool, picked=picked,
                           sections=[s for s in sections if s], preflight=preflight,
                           problem=problem, as_email=as_email or "", args=request.args,
                           editor=current_editor(), feed_url=desk.settings.feed_url)  # fmt: skip


def _action(func: F) -> F:
    """A POST on an issue: run it, flash the outcome, and go back to the issue (303)."""

    @wraps(func)
    def wrapper(issue_id: int) -> ResponseReturnValue:
        try:
            message = func(issue_id)
            if message:
                flash(message, "ok")
        except NewsletterError as exc:
            flash(str(exc), "error")
        back = request.form.get("back") or url_for("desk.issue", issue_id=issue_id)
        return redirect(safe_next(back), 303)

    return wrapper  # type: ignore[return-value]


def _article_id() -> int:
    raw = request.form.get("article", "")
    if not raw.isdigit():
        raise InputError(f"article: not an article id: {raw!r}")
    return int(raw)


@bp.post("/issues/<int:issue_id>/pick")
@_action
def pick(issue_id: int) -> str:
    with desk_of_app().engine.begin() as conn:
        library.pick(conn, issue_id, [_article_id()], desk_now())
    return "added"


@bp.post("/issues/<int:issue_id>/unpick")
@_action
def unpick(issue_id: int) -> str:
    with desk_of_app().engine.begin() as conn:
        library.unpick(conn, issue_id, [_article_id()], desk_now())
    return "removed"


@bp.post("/issues/<int:issue_id>/move")
@_action
def move(issue_id: int) -> str:
    article = _article_id()
    with desk_of_app().engine.begin() as conn:
        found = library.get_issue(conn, issue_id)
        order = [item.article.id for item in found.items]
        if article not in order:
            raise NotFound(f"article {article} is not in issue {issue_id}")
        position = request.form.get("position", "")
        if position.isdigit():  # dragged and dropped there
            library.move(conn, issue_id, article, int(position), desk_now())
            return ""
        step = -1 if request.form.get("direction") == "up" else 1
        target = min(max(order.index(article) + step, 0), len(order) - 1)
        library.move(conn, issue_id, article, target + 1, desk_now())
    return ""


@bp.post("/issues/<int:issue_id>/item")
@_action
def item(issue_id: int) -> str:
    with desk_of_app().engine.begin() as conn:
        library.set_item(conn, issue_id, _article_id(), desk_now(),
                         title=request.form.get("title", ""),
                         summary=request.form.get("summary", ""),
                         alt=request.form.get("alt"))  # fmt: skip
    return "article text saved"


@bp.post("/issues/<int:issue_id>/fields")
@_action
def fields(issue_id: int) -> str:
    form = request.form
    with desk_of_app().engine.begin() as conn:
        library.set_fields(conn, issue_id, desk_now(), subject=form.get("subject", ""),
                           preheader=form.get("preheader", ""), note=form.get("note", ""),
                           appeal=form.get("appeal") == "on",
                           by_section=form.get("by_section") == "on")  # fmt: skip
    return "saved"


@bp.post("/issues/<int:issue_id>/approve")
@_action
def approve(issue_id: int) -> str:
    desk_of_app().approve(issue_id, force=request.form.get("force") == "on")
    return "approved: it goes out at the next send time"


@bp.post("/issues/<int:issue_id>/unapprove")
@_action
def unapprove(issue_id: int) -> str:
    with desk_of_app().engine.begin() as conn:
        library.unapprove(conn, issue_id, desk_now())
    return "back to draft"


@bp.post("/issues/<int:issue_id>/test")
@_action
def test(issue_id: int) -> str:
    desk, editor = desk_of_app(), current_editor()
    with opened(desk.transport) as transport:
        send_test(issue_id, [editor.email], desk.engine, desk.settings, transport, desk_now())
    return f"test sent to {editor.email}"


@bp.post("/issues/<int:issue_id>/import")
@_action
def import_feed(issue_id: int) -> str:
    desk = desk_of_app()
    if not desk.settings.feed_url:
        raise InputError("NEWSLETTER_FEED_URL is not set: the desk does not know the feed")
    reports = desk.import_feeds([desk.settings.feed_url])
    return "; ".join(
        f"feed: {r.added} added, {r.updated} updated, {len(r.skipped)} skipped" for r in reports
    )


def _status(issue_id: int) -> dict[str, Any]:
    with desk_of_app().engine.connect() as conn:
        return send_status(conn, issue_id).document


@bp.get("/issues/<int:issue_id>/status")
def status(issue_id: int) -> Any:
    document = _status(issue_id)
    if request.args.get("format") == "json":
        return jsonify(document)
    return render_template("desk/status.html", s=document)

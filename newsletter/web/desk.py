"""The editors' desk: log in, put the week's issue together beside its preview, approve
it, send yourself a test, follow a send, look up a reader. Server-rendered forms that
work without JavaScript; every action calls the same library functions as the CLI.

Every POST carries the session's CSRF token; every page but the login needs a login.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from newsletter.app import Desk
from newsletter.compose.copies import preview_copy
from newsletter.curation import issues as library
from newsletter.curation.articles import import_sources, list_articles, list_sections
from newsletter.curation.fetch import FetchLimits
from newsletter.delivery.ledger import counts as ledger_counts
from newsletter.delivery.send import send_test
from newsletter.editors import (
    Editor,
    begin_attempt,
    close_session,
    log_in,
    open_session,
    session_editor,
)
from newsletter.errors import InputError, NewsletterError, NotFound
from newsletter.readers.access import export_csv, export_subscriber
from newsletter.readers.subscribers import (
    STATUSES,
    count_by_status,
    get_subscriber,
    list_subscribers,
)
from newsletter.reports import send_status
from newsletter.transport.base import opened

bp = Blueprint("desk", __name__, url_prefix="/desk", template_folder="templates")
F = TypeVar("F", bound=Callable[..., Any])


def _desk() -> Desk:
    desk: Desk = current_app.config["DESK"]
    return desk


def _now() -> datetime:
    return _desk().now()


def csrf_token() -> str:
    """The session's token for forms; made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


@bp.app_context_processor
def _forms() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")  # they only ever show; every other one is checked


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    if request.method not in SAFE_METHODS:
        sent = request.form.get("csrf", "")
        if not hmac.compare_digest(sent, session.get("csrf") or "\0"):
            abort(400, "the form was too old or not from this desk: reload the page and retry")
    if request.endpoint in ("desk.login", "desk.login_form", "static"):
        return None
    editor = signed_in()
    if editor is None:
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("desk.login", next=request.full_path))
        abort(401)
    g.editor = editor
    return None


def signed_in() -> Editor | None:
    """The editor of this browser's session, while it is open (not logged out, not
    expired, the account still there)."""
    token = session.get("editor_session")
    if not isinstance(token, str):
        return None
    with _desk().engine.connect() as conn:
        return session_editor(conn, token, _now())


def _editor() -> Editor:
    editor: Editor = g.editor
    return editor


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/desk") and not target.startswith("//"):
        return target
    return url_for("desk.week")


@bp.get("/login")
def login() -> Any:
    csrf_token()
    return render_template("desk/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_form() -> Any:
    desk, email, now = _desk(), request.form.get("email", ""), _now()
    failure: NewsletterError | None = None
    ip = request.remote_addr or ""
    try:  # the attempt is recorded, and committed, before its password is checked
        attempt = begin_attempt(desk.engine, email, ip, now)
    except NewsletterError as exc:
        return render_template("desk/login.html", error=str(exc), email=email,
                               next=request.form.get("next", "")), exc.status  # fmt: skip
    with desk.engine.begin() as conn:
        try:
            editor = log_in(conn, email, request.form.get("password", ""), ip, now, attempt)
            earlier = session.get("editor_session")
            if isinstance(earlier, str):  # signing in again ends this browser's last session
                close_session(conn, earlier)
            token = open_session(conn, editor, now)
        except NewsletterError as exc:
            failure = exc
    if failure is not None:
        return render_template("desk/login.html", error=str(failure), email=email,
                               next=request.form.get("next", "")), failure.status  # fmt: skip
    session.clear()  # a new session on login: no fixation
    session.permanent = True  # the cookie expires with the session (SESSION_LIFETIME)
    session["editor_session"] = token
    csrf_token()
    return redirect(_safe_next(request.form.get("next")), 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = session.get("editor_session")
    if isinstance(token, str):
        with _desk().engine.begin() as conn:
            close_session(conn, token)
    session.clear()
    return redirect(url_for("desk.login"), 303)


def _send_day() -> Any:
    return _desk().settings.send_day(_now())


@bp.get("/")
def week() -> Any:
    day = _send_day()
    with _desk().engine.connect() as conn:
        issue_id = library.issue_id_for_day(conn, day)
    if issue_id is not None:
        return redirect(url_for("desk.issue", issue_id=issue_id))
    return issues_page(day)


@bp.get("/issues")
def issues_page(day: Any = None) -> Any:
    engine = _desk().engine
    with engine.connect() as conn:
        found = library.list_issues(conn)
        counts = {i.id: ledger_counts(conn, i.id) for i in found}
    return render_template("desk/issues.html", issues=found, counts=counts,
                           new_day=day or _send_day())  # fmt: skip


@bp.post("/issues")
def new_issue() -> ResponseReturnValue:
    with _desk().engine.begin() as conn:
        issue = library.new_issue(conn, _send_day(), _now())
    return redirect(url_for("desk.issue", issue_id=issue.id), 303)


def _pool_filters() -> dict[str, Any]:
    q = request.args.get("q", "").strip()
    section = request.args.get("section", "").strip()
    days = request.args.get("days", "").strip()
    since = None
    if days.isdigit():
        now = _now()
        since = datetime.combine(now.date(), time(), now.tzinfo) - timedelta(days=int(days))
    return {"search": q or None, "section": section or None, "since": since}


@bp.get("/issues/<int:issue_id>")
def issue(issue_id: int) -> Any:
    desk = _desk()
    as_email = request.args.get("as", "").strip() or None
    filters = _pool_filters()
    with desk.engine.connect() as conn:
        found = library.get_issue(conn, issue_id)
        pool = list_articles(conn, limit=60, **filters)
        sections = list_sections(conn)
    preflight, problem = None, None
    try:
        copy = preview_copy(desk.engine, desk.settings, issue_id, as_email, _now())
        preflight = copy.composed.preflight
    except NewsletterError as exc:  # an unknown reader, a template error: say so beside it
        problem = str(exc)
    picked = {item.article.id for item in found.items}
    return render_template("desk/issue.html", issue=found, pool=pool, picked=picked,
                           sections=[s for s in sections if s], preflight=preflight,
                           problem=problem, as_email=as_email or "", args=request.args,
                           editor=_editor(), feed_url=desk.settings.feed_url)  # fmt: skip


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
        return redirect(_safe_next(back), 303)

    return wrapper  # type: ignore[return-value]


def _article_id() -> int:
    raw = request.form.get("article", "")
    if not raw.isdigit():
        raise InputError(f"article: not an article id: {raw!r}")
    return int(raw)


@bp.post("/issues/<int:issue_id>/pick")
@_action
def pick(issue_id: int) -> str:
    with _desk().engine.begin() as conn:
        library.pick(conn, issue_id, [_article_id()], _now())
    return "added"


@bp.post("/issues/<int:issue_id>/unpick")
@_action
def unpick(issue_id: int) -> str:
    with _desk().engine.begin() as conn:
        library.unpick(conn, issue_id, [_article_id()], _now())
    return "removed"


@bp.post("/issues/<int:issue_id>/move")
@_action
def move(issue_id: int) -> str:
    article = _article_id()
    with _desk().engine.begin() as conn:
        found = library.get_issue(conn, issue_id)
        order = [item.article.id for item in found.items]
        if article not in order:
            raise NotFound(f"article {article} is not in issue {issue_id}")
        position = request.form.get("position", "")
        if position.isdigit():  # dragged and dropped there
            library.move(conn, issue_id, article, int(position), _now())
            return ""
        step = -1 if request.form.get("direction") == "up" else 1
        target = min(max(order.index(article) + step, 0), len(order) - 1)
        library.move(conn, issue_id, article, target + 1, _now())
    return ""


@bp.post("/issues/<int:issue_id>/item")
@_action
def item(issue_id: int) -> str:
    with _desk().engine.begin() as conn:
        library.set_item(conn, issue_id, _article_id(), _now(),
                         title=request.form.get("title", ""),
                         summary=request.form.get("summary", ""))  # fmt: skip
    return "article text saved"


@bp.post("/issues/<int:issue_id>/fields")
@_action
def fields(issue_id: int) -> str:
    form = request.form
    with _desk().engine.begin() as conn:
        library.set_fields(conn, issue_id, _now(), subject=form.get("subject", ""),
                           preheader=form.get("preheader", ""), note=form.get("note", ""),
                           appeal=form.get("appeal") == "on")  # fmt: skip
    return "saved"


@bp.post("/issues/<int:issue_id>/approve")
@_action
def approve(issue_id: int) -> str:
    with _desk().engine.begin() as conn:
        library.approve(conn, issue_id, _now())
    return "approved: it goes out at the next send time"


@bp.post("/issues/<int:issue_id>/unapprove")
@_action
def unapprove(issue_id: int) -> str:
    with _desk().engine.begin() as conn:
        library.unapprove(conn, issue_id, _now())
    return "back to draft"


@bp.post("/issues/<int:issue_id>/test")
@_action
def test(issue_id: int) -> str:
    desk, editor = _desk(), _editor()
    with opened(desk.transport) as transport:
        send_test(issue_id, [editor.email], desk.engine, desk.settings, transport, _now())
    return f"test sent to {editor.email}"


@bp.post("/issues/<int:issue_id>/import")
@_action
def import_feed(issue_id: int) -> str:
    desk = _desk()
    if not desk.settings.feed_url:
        raise InputError("NEWSLETTER_FEED_URL is not set: the desk does not know the feed")
    reports = import_sources(
        desk.engine, [desk.settings.feed_url], _now(), FetchLimits.from_settings(desk.settings)
    )
    return "; ".join(
        f"feed: {r.added} added, {r.updated} updated, {len(r.skipped)} skipped" for r in reports
    )


def _status(issue_id: int) -> dict[str, Any]:
    with _desk().engine.connect() as conn:
        return send_status(conn, issue_id).document


@bp.get("/issues/<int:issue_id>/status")
def status(issue_id: int) -> Any:
    document = _status(issue_id)
    if request.args.get("format") == "json":
        return jsonify(document)
    return render_template("desk/status.html", s=document)


@bp.get("/readers")
def readers() -> Any:
    q = request.args.get("q", "").strip().lower()
    wanted = request.args.get("status", "")
    with _desk().engine.connect() as conn:
        counts = count_by_status(conn)
        rows = list_subscribers(conn, wanted if wanted in STATUSES else None, q or None,
                                limit=100, newest_first=True)  # fmt: skip
    return render_template("desk/readers.html", counts=counts, rows=rows, q=q,
                           wanted=wanted, statuses=STATUSES)  # fmt: skip


@bp.get("/readers/<int:subscriber_id>")
def reader(subscriber_id: int) -> Any:
    with _desk().engine.connect() as conn:
        found = get_subscriber(conn, subscriber_id)
        document = export_subscriber(conn, subscriber_id)
    return render_template("desk/reader.html", reader=found, document=document)


@bp.get("/readers/<int:subscriber_id>/export.json")
def reader_export(subscriber_id: int) -> Response:
    with _desk().engine.connect() as conn:
        document = export_subscriber(conn, subscriber_id)
    response = jsonify(document)
    response.headers["Content-Disposition"] = f"attachment; filename=reader-{subscriber_id}.json"
    return response


@bp.get("/readers/export.csv")
def readers_export() -> Response:
    with _desk().engine.connect() as conn:
        text = export_csv(conn)
    disposition = {"Content-Disposition": "attachment; filename=readers.csv"}
    return Response(text, mimetype="text/csv", headers=disposition)

"""The desk's door: the blueprint, the editors' sign-in and sign-out, the CSRF token every
POST carries, and the guard that sends a visitor without a session to the login page.
The pages themselves are `issues` and `readers`, registered on this blueprint."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from newsletter.app import Desk
from newsletter.editors import (
    Editor,
    begin_attempt,
    close_session,
    log_in,
    open_session,
    session_editor,
)
from newsletter.errors import NewsletterError, NotFound
from newsletter.models import Issue
from newsletter.publications import (
    Newsletter,
    get_newsletter,
    list_newsletters,
    shown_name,
    view,
)
from newsletter.settings import Settings

bp = Blueprint("desk", __name__, url_prefix="/desk")
F = TypeVar("F", bound=Callable[..., Any])


def desk_of_app() -> Desk:
    """The desk (the composition root) this app serves."""
    desk: Desk = current_app.config["DESK"]
    return desk


def desk_now() -> datetime:
    return desk_of_app().now()


def desk_newsletter() -> tuple[Newsletter, Settings]:
    """The newsletter the editor works on: `?newsletter=SLUG` switches to one (and the
    session keeps it), else the one they had, else the desk's first."""
    desk = desk_of_app()
    with desk.engine.connect() as conn:
        found = list_newsletters(conn)
    by_slug = {one.slug: one for one in found}
    asked = request.args.get("newsletter")
    if asked is not None:
        if asked not in by_slug:
            raise NotFound(f"there is no newsletter {asked[:40]!r}")
        session["newsletter"] = asked
    kept = session.get("newsletter")
    chosen = by_slug.get(kept, found[0]) if isinstance(kept, str) else found[0]
    return chosen, view(desk.settings, chosen)


def issue_settings(issue: Issue) -> Settings:
    """The settings an issue's page works with: its newsletter's, which the page's header
    shows as the one worked on (a page only looks: the session keeps its choice)."""
    desk = desk_of_app()
    with desk.engine.connect() as conn:
        newsletter = get_newsletter(conn, issue.newsletter_id)
    g.newsletter_shown = newsletter.slug
    return view(desk.settings, newsletter)


def _all() -> list[Newsletter]:
    with desk_of_app().engine.connect() as conn:
        return list_newsletters(conn)


@bp.app_context_processor
def _newsletters() -> dict[str, Any]:
    def switcher() -> tuple[list[tuple[str, str]], str]:
        """The desk's newsletters (slug, name), for the switch in the page's header (one:
        none shown), and the one worked on."""
        found = _all()
        kept = g.get("newsletter_shown") or session.get("newsletter")
        names = [(one.slug, shown_name(desk_of_app().settings, one)) for one in found]
        return names, kept if isinstance(kept, str) else found[0].slug

    return {"newsletter_switcher": switcher}


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
    with desk_of_app().engine.connect() as conn:
        return session_editor(conn, token, desk_now())


def current_editor() -> Editor:
    editor: Editor = g.editor
    return editor


def safe_next(target: str | None) -> str:
    """Where to go after a login or a change: a page of the desk or of the previews on
    this site, never another site ("//evil.example", "/\\evil.example", "https://…")."""
    unsafe = not target or "\\" in target or any(c < " " or c == "\x7f" for c in target)
    if not unsafe and target and not target.startswith("//"):
        parts = urlsplit(target)
        ours = parts.path == "/desk" or parts.path.startswith(("/desk/", "/preview/"))
        if not parts.scheme and not parts.netloc and ours:
            return target
    return url_for("desk.this_week")


@bp.get("/login")
def login() -> Any:
    csrf_token()
    return render_template("desk/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_form() -> Any:
    desk, email, now = desk_of_app(), request.form.get("email", ""), desk_now()
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
    return redirect(safe_next(request.form.get("next")), 303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = session.get("editor_session")
    if isinstance(token, str):
        with desk_of_app().engine.begin() as conn:
            close_session(conn, token)
    session.clear()
    return redirect(url_for("desk.login"), 303)

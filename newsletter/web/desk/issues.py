"""The desk's issue page: one issue beside its preview with the article pool, and the
changes made on it (pick, remove, move, edit, approve, hold, undo).

Every change carries the revision the editor's page showed and is refused when the issue
moved on since (another tab, another editor), so nothing is overwritten unseen. A change
asked for with `Accept: application/json` (the page's script, which saves as the editor
types and picks without a reload) is answered in JSON; a plain form post is answered
with the page again, as it works without JavaScript."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import flash, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from newsletter.compose.copies import preview_copy
from newsletter.compose.preflight import Finding
from newsletter.curation import issues as library
from newsletter.curation.articles import list_articles, list_sections
from newsletter.errors import EditConflict, InputError, NewsletterError, NotFound, StateError
from newsletter.models import Issue
from newsletter.reports import week
from newsletter.web.desk.session import (
    bp,
    current_editor,
    desk_now,
    desk_of_app,
    issue_settings,
    safe_next,
)

Undo = dict[str, Any]  # what the last remove or move undoes: {"do", "article", "position", …}
Change = Callable[[sa.Connection, int], tuple[str, Undo | None]]


def wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


def _pool_filters() -> dict[str, Any]:
    q = request.args.get("q", "").strip()
    section = request.args.get("section", "").strip()
    days = request.args.get("days", "").strip()
    since = None
    if days.isascii() and days.isdigit() and len(days) <= 4:  # a filter: odd input ignored
        now = desk_now()
        since = datetime.combine(now.date(), time(), now.tzinfo) - timedelta(days=int(days))
    return {"search": q or None, "section": section or None, "since": since}


@dataclass(frozen=True)
class Group:
    """Preflight findings of one kind, with what to do about them."""

    level: str
    title: str
    advice: str
    findings: tuple[Finding, ...]


# a kind of finding: its title for n of them, and what the editor can do
_KINDS = {
    "image-alt": ("{n} image(s) without an image text",
                  "Readers whose mail hides images, and screen readers, get nothing. Write an "
                  "image text for each in its article's editor."),
    "insecure-image": ("{n} image(s) over plain http",
                       "Some mail clients warn or refuse them. The feed gives these addresses: "
                       "ask for https there; nothing to do here."),
    "insecure-link": ("{n} link(s) over plain http",
                      "The feed gives these addresses; readers' clients may warn. Nothing to "
                      "do here unless a link is yours to change."),
}  # fmt: skip


def preflight_groups(findings: tuple[Finding, ...]) -> list[Group]:
    """Errors first, then warnings; one group per kind, in the order first met."""
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding.code, []).append(finding)
    result = []
    for code, found in groups.items():
        title, advice = _KINDS.get(code, ("", ""))
        if not title or (len(found) == 1 and code not in _KINDS):
            title = found[0].message[:1].upper() + found[0].message[1:]
        result.append(Group(found[0].level, title.format(n=len(found)), advice, tuple(found)))
    return sorted(result, key=lambda g: g.level != "error")


@bp.get("/issues/<int:issue_id>")
def issue(issue_id: int) -> Any:
    desk = desk_of_app()
    as_email = request.args.get("as", "").strip() or None
    filters = _pool_filters()
    now = desk_now()
    with desk.engine.connect() as conn:
        found = library.get_issue(conn, issue_id)
        pool = list_articles(conn, limit=60, **filters)
        sections = list_sections(conn)
        settings = issue_settings(found)
        glance = week(conn, settings, now, found.id)
    preflight, problem = None, None
    try:
        copy = preview_copy(desk.engine, desk.settings, issue_id, as_email, now)
        preflight = copy.composed.preflight
    except NewsletterError as exc:  # an unknown reader, a template error: say so beside it
        problem = str(exc)
    picked = {item.article.id for item in found.items}
    titles = {f"item-{i.article.id}": i.title for i in found.items}
    undo = session.get("undo")
    return render_template(
        "desk/issue.html", issue=found, pool=pool, picked=picked,
        sections=[s for s in sections if s], preflight=preflight, problem=problem,
        groups=preflight_groups(preflight.findings) if preflight else [], titles=titles,
        as_email=as_email or "", args=request.args, editor=current_editor(),
        feed_url=desk.settings.feed_url, week=glance, now=now,
        undo=undo if isinstance(undo, dict) and undo.get("issue") == found.id else None,
    )  # fmt: skip


def _answer(
    issue_id: int,
    message: str,
    ok: bool,
    undo: Undo | None,
    status: int,
    conflict: bool = False,
    revision: int | None = None,
) -> ResponseReturnValue:
    """`revision`: the one this change made, read in its own transaction (read after it,
    another editor's save could slip in between and be taken for this one's)."""
    if wants_json():
        if request.endpoint in _RELOADING and ok:  # the page reloads and shows it
            flash(message, "ok")
        if revision is None:  # a refusal: the revision the issue is at now
            with desk_of_app().engine.connect() as conn:
                revision = library.get_issue(conn, issue_id).revision
        body = {"ok": ok, "message": message, "revision": revision, "undo": undo,
                "conflict": conflict}  # fmt: skip
        return jsonify(body), status
    if message:
        flash(message, "ok" if ok else "error")
    back = request.form.get("back") or url_for("desk.issue", issue_id=issue_id)
    return redirect(safe_next(back), 303)


# a change of the issue's state: the page's script reloads the whole page after it
_RELOADING = frozenset(
    {"desk.approve", "desk.unapprove", "desk.hold", "desk.release", "desk.in_archive"}
)


def change(func: Change) -> Callable[[int], ResponseReturnValue]:
    """A change to an issue, in one transaction after its revision check; the undo it
    offers is kept in the editor's session (one step: the last remove or move)."""

    @wraps(func)
    def wrapper(issue_id: int) -> ResponseReturnValue:
        try:
            with desk_of_app().engine.begin() as conn:
                library.find_issue_id(conn, issue_id)  # a 404 before anything else
                library.expect_revision(conn, issue_id, number("revision"))
                message, undo = func(conn, issue_id)
                made = library.get_issue(conn, issue_id).revision
        except NotFound:
            raise
        except NewsletterError as exc:
            conflict = isinstance(exc, EditConflict)
            if conflict and not wants_json():
                raise  # a page saying so: the browser's Back brings the typed text back
            return _answer(issue_id, str(exc), False, None, exc.status, conflict)
        if undo is not None:
            session["undo"] = {"issue": issue_id, **undo}
        elif func.__name__ not in _KEEP_UNDO:
            session.pop("undo", None)  # the list changed again: the last step is gone
        return _answer(issue_id, message, True, undo, 200, revision=made)

    return wrapper


# typing in the fields leaves the list as it was: the last remove or move stays undoable
_KEEP_UNDO = frozenset({"undo_last", "fields", "item", "in_archive"})
NUMBER_MAX = 2**31 - 1  # what every database here stores in an integer column


def number(field: str, text: str | None = None) -> int:
    """A form's whole number: plain ASCII digits, in range; else the field is named."""
    raw = (request.form.get(field, "") if text is None else text).strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and int(raw) <= NUMBER_MAX):
        what = "missing" if not raw else f"not a number: {raw[:20]!r}"
        hint = ": reload the page" if field == "revision" else ""
        raise InputError(f"{field}: {what}{hint}")
    return int(raw)


def _article_id() -> int:
    return number("article")


def _short(title: str) -> str:
    """A title as a message names it (the undo lives in the session's cookie)."""
    return title if len(title) <= 80 else title[:79].rstrip() + "…"


def _item(issue: Issue, article_id: int) -> tuple[int, str]:
    for item in issue.items:
        if item.article.id == article_id:
            return item.position, item.title
    raise NotFound(f"article {article_id} is not in issue {issue.id}")


@bp.post("/issues/<int:issue_id>/pick")
@change
def pick(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    found = library.pick(conn, issue_id, [_article_id()], desk_now())
    return f"added “{found.items[-1].title}”", None


@bp.post("/issues/<int:issue_id>/unpick")
@change
def unpick(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    article = _article_id()
    position, title = _item(library.get_issue(conn, issue_id), article)
    library.unpick(conn, issue_id, [article], desk_now())
    what = f"removed “{_short(title)}”"
    return what, {"do": "pick", "article": article, "position": position, "what": what}


@bp.post("/issues/<int:issue_id>/move")
@change
def move(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    article = _article_id()
    found = library.get_issue(conn, issue_id)
    before, title = _item(found, article)
    if request.form.get("position", "").strip():  # dragged and dropped there
        target = number("position")
    else:
        step = -1 if request.form.get("direction") == "up" else 1
        target = min(max(before + step, 1), len(found.items))
    if target == before:
        return "", None
    library.move(conn, issue_id, article, target, desk_now())
    what = f"moved “{_short(title)}” to {target}"
    return what, {"do": "move", "article": article, "position": before, "what": what}


@bp.post("/issues/<int:issue_id>/undo")
@change
def undo_last(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    last = session.get("undo")
    if not isinstance(last, dict) or last.get("issue") != issue_id:
        raise StateError("there is nothing to undo on this issue")
    session.pop("undo", None)
    article, position = int(last["article"]), int(last["position"])
    if last["do"] == "pick":
        library.pick(conn, issue_id, [article], desk_now(), position=position)
    else:
        library.move(conn, issue_id, article, position, desk_now())
    return f"undone: {last['what']}", None


@bp.post("/issues/<int:issue_id>/item")
@change
def item(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    form = request.form
    library.set_item(conn, issue_id, _article_id(), desk_now(), title=form.get("title", ""),
                     summary=form.get("summary", ""), alt=form.get("alt"))  # fmt: skip
    return "article text saved", None


@bp.post("/issues/<int:issue_id>/fields")
@change
def fields(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    form = request.form
    library.set_fields(conn, issue_id, desk_now(), subject=form.get("subject", ""),
                       preheader=form.get("preheader", ""), note=form.get("note", ""),
                       appeal=form.get("appeal") == "on",
                       by_section=form.get("by_section") == "on")  # fmt: skip
    return "saved", None


@bp.post("/issues/<int:issue_id>/approve")
def approve(issue_id: int) -> ResponseReturnValue:
    try:
        desk_of_app().approve(issue_id, force=request.form.get("force") == "on",
                              revision=number("revision"))  # fmt: skip
    except NotFound:
        raise
    except NewsletterError as exc:
        conflict = isinstance(exc, EditConflict)
        if conflict and not wants_json():
            raise
        return _answer(issue_id, str(exc), False, None, exc.status, conflict)
    session.pop("undo", None)
    return _answer(issue_id, "approved: it goes out at the send time above", True, None, 200)


@bp.post("/issues/<int:issue_id>/unapprove")
@change
def unapprove(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    library.unapprove(conn, issue_id, desk_now())
    return "back to draft: it will not go out unless approved again", None


@bp.post("/issues/<int:issue_id>/hold")
@change
def hold(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    found = library.hold(conn, issue_id, desk_now())
    return f"held: nothing goes out on {found.send_date:%A %d %B}; release it to go on", None


@bp.post("/issues/<int:issue_id>/release")
@change
def release(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    library.release(conn, issue_id, desk_now())
    return "released: a draft again, to be approved", None


@bp.post("/issues/<int:issue_id>/archive")
@change
def in_archive(conn: sa.Connection, issue_id: int) -> tuple[str, Undo | None]:
    shown = request.form.get("shown") == "yes"
    library.set_in_archive(conn, issue_id, shown, desk_now())
    if shown:
        return "shown in the public archive once sent", None
    return "kept out of the public archive", None

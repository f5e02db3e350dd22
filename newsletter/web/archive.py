"""The newsletter's public face, for people deciding whether to sign up: the archive of
sent issues (a paged list, newest first; each issue as readers got it with every
reader-specific part removed; an Atom feed), and /archive/latest, the preview the
sign-up form links to. No login; an issue its editors keep out is not found."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from newsletter.app import Desk
from newsletter.compose.archive import public_copy
from newsletter.compose.rendering import Site, render_issue
from newsletter.curation.issues import archived, get_issue
from newsletter.errors import NewsletterError, NotFound
from newsletter.language import long_date
from newsletter.models import Issue
from newsletter.publications import get_newsletter, view
from newsletter.readers.consent import newsletter_policy
from newsletter.web.chosen import chosen, several
from newsletter.web.error_pages import reader_error
from newsletter.web.signup import policy_url
from newsletter.web.words import _

bp = Blueprint("archive", __name__)
bp.register_error_handler(NewsletterError, reader_error)

PER_PAGE = 20
FEED_ENTRIES = 20
# an issue's page: its own styles and images, no script, a form that posts to us only
ARCHIVE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
)


def _desk() -> Desk:
    desk: Desk = current_app.config["DESK"]
    return desk


def slug(subject: str) -> str:
    """The subject as an address's words: "Главное за неделю" -> "главное-за-неделю"."""
    words = re.sub(r"[^\w]+", "-", subject.lower()).strip("-_")
    return words[:60].rstrip("-_") or "issue"


def issue_path(issue: Issue) -> str:
    return url_for("archive.issue_page", issue_id=issue.id, words=slug(issue.subject))


def _shown(issue_id: int) -> Issue:
    with _desk().engine.connect() as conn:
        try:
            found = get_issue(conn, issue_id)
        except NotFound:
            found = None
    if found is None or found.status != "sent" or not found.in_archive:
        raise NotFound(_("There is no issue %(id)s in the archive.", id=issue_id))
    return found


@bp.get("/archive")
def archive_list() -> Any:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise NotFound(_("There is no such page of the archive."))
    page = int(raw)
    desk = _desk()
    one = _one_newsletter()
    with desk.engine.connect() as conn:
        issues, total = archived(conn, PER_PAGE, (page - 1) * PER_PAGE, one)
    if page > 1 and not issues:
        raise NotFound(_("There is no such page of the archive."))
    site = Site.from_settings(chosen()[1] if one else desk.settings)
    language = desk.settings.language
    return render_template(
        "archive.html", site=site, title=_("The archive of %(site)s", site=site.name),
        entries=[(i, issue_path(i), long_date(i.send_date, language)) for i in issues],
        page=page, pages=max(1, -(-total // PER_PAGE)), total=total,
        canonical=desk.settings.base_url + url_for("archive.archive_list", newsletter=_asked()),
    )  # fmt: skip


def _asked() -> str | None:
    return request.args.get("newsletter") or None


def _one_newsletter() -> int | None:
    """The newsletter `?newsletter=SLUG` names (its issues only), or None: every one's."""
    return chosen()[0].id if _asked() else None


@bp.get("/archive/latest")
def latest() -> ResponseReturnValue:
    """The newest issue readers got: the sign-up form's preview, a link that stays."""
    one = _one_newsletter()
    with _desk().engine.connect() as conn:
        issues, _total = archived(conn, 1, newsletter_id=one)
    if not issues:
        return redirect(url_for("archive.archive_list", newsletter=_asked()))
    return redirect(issue_path(issues[0]))


@bp.get("/archive/<int:issue_id>")
@bp.get("/archive/<int:issue_id>-<words>")
def issue_page(issue_id: int, words: str = "") -> ResponseReturnValue:
    issue = _shown(issue_id)
    if words != slug(issue.subject):
        return redirect(issue_path(issue), 301)  # one address per issue
    desk = _desk()
    with desk.engine.connect() as conn:
        newsletter = get_newsletter(conn, issue.newsletter_id)
        policy = newsletter_policy(conn, newsletter.id)
    settings = view(desk.settings, newsletter)
    site = Site.from_settings(settings)
    page_url = settings.base_url + issue_path(issue)
    signup = url_for("signup.subscribe_page", newsletter=newsletter.slug if several() else None)
    head = render_template("_archive_head.html", issue=issue, site=site, url=page_url)
    template = current_app.jinja_env.get_template("_archive_foot.html")
    foot = template.render(site=site, policy=policy, action=signup,
                           policy_url=policy_url(settings, policy),
                           archive=url_for("archive.archive_list"))  # fmt: skip
    rendered = render_issue(issue, site, settings.templates)
    html = public_copy(rendered, page_url=page_url, signup_url=settings.base_url + signup,
                       signup_words=_("Sign up"), head=head, foot=foot)  # fmt: skip
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/archive/feed.atom")
def feed() -> Response:
    desk = _desk()
    one = _one_newsletter()
    with desk.engine.connect() as conn:
        issues, _total = archived(conn, FEED_ENTRIES, newsletter_id=one)
    base = desk.settings.base_url
    site = Site.from_settings(chosen()[1] if one else desk.settings)
    xml = render_template(
        "archive.atom.xml", site=site, base=base, issues=issues,
        links={i.id: base + issue_path(i) for i in issues},
        updated=max((i.sent_at for i in issues if i.sent_at), default=None),
    )  # fmt: skip
    return Response(xml, mimetype="application/atom+xml")

"""Pages readers reach from their mail: confirm, unsubscribe (RFC 8058 one-click too),
agree to a new policy, read an issue online, read the privacy policy. No login: the
signed token in the link is the reader's key."""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from markdown_it import MarkdownIt
from markupsafe import Markup

from newsletter.app import Desk
from newsletter.compose.markers import personalise
from newsletter.compose.messages import Sender
from newsletter.compose.rendering import Site, render_issue
from newsletter.curation.issues import get_issue
from newsletter.delivery.notice_queue import queue_mails
from newsletter.errors import NewsletterError, NotFound
from newsletter.language import long_date
from newsletter.models import Reader
from newsletter.publications import of_issue, of_reader, view
from newsletter.readers.consent import Evidence, current_policy, get_policy
from newsletter.readers.optin import confirm, confirm_target
from newsletter.readers.subscribers import (
    get_subscriber,
    reconsent,
    reconsent_target,
    subscriptions,
    unsubscribe,
)
from newsletter.readers.tokens import TokenError, read_reader_token, reader_token
from newsletter.settings import Settings
from newsletter.web import MAIL_CSP
from newsletter.web.chosen import several
from newsletter.web.error_pages import reader_error
from newsletter.web.signup import wake_notices_after_answer
from newsletter.web.words import _

bp = Blueprint("public", __name__, template_folder="templates")
bp.register_error_handler(NewsletterError, reader_error)


def _desk() -> Desk:
    desk: Desk = current_app.config["DESK"]
    return desk


def page(
    title: str,
    *paragraphs: str,
    status: int = 200,
    settings: Settings | None = None,
    template: str = "public.html",
    **extra: Any,
) -> tuple[str, int]:
    """A reader's page, in the name of the newsletter `settings` are the view of."""
    site = Site.from_settings(settings or _desk().settings)
    html = render_template(template, title=title, paragraphs=paragraphs, site=site, **extra)
    return html, status


def _of_reader(subscriber_id: int) -> Settings:
    desk = _desk()
    with desk.engine.connect() as conn:
        return of_reader(conn, desk.settings, subscriber_id)


def _evidence(source: str) -> Evidence:
    return Evidence(
        source=source, ip=request.remote_addr, user_agent=request.headers.get("User-Agent")
    )


@bp.errorhandler(TokenError)
def bad_token(error: TokenError) -> tuple[str, int]:
    return page(_("This link does not work"), _(str(error)), status=400, problem=True)


# Opening a link (GET, and HEAD, which mail scanners send) only ever shows a page; the
# change is the page's button, a POST route of its own.


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> tuple[str, int]:
    desk = _desk()
    with desk.engine.connect() as conn:
        found, _policy = confirm_target(
            conn, token, desk.settings.verify_keys(), desk.settings.confirm_ttl, desk.now()
        )
    settings = _of_reader(found.id)
    if found.status != "pending":
        return page(_("You are already subscribed"), _("Nothing has changed."), settings=settings)
    return page(_("Confirm your subscription"), _("One click and the newsletter is on its way."),
                button=_("Yes, send me the newsletter"), settings=settings)  # fmt: skip


@bp.post("/confirm/<token>")
def confirm_click(token: str) -> tuple[str, int]:
    desk = _desk()
    now = desk.now()
    keys = desk.settings.verify_keys()
    with desk.engine.begin() as conn:
        welcome = confirm(conn, token, _evidence(request.url), keys,
                          desk.settings.confirm_ttl, now)  # fmt: skip
        queue_mails(conn, [welcome] if welcome else [], now)
    if welcome is None:
        return page(_("You are already subscribed"), _("Nothing has changed."))
    wake_notices_after_answer()
    settings = _of_reader(welcome.subscriber_id)
    day = settings.next_send_day(now)
    return page(
        _("You are subscribed"),
        _("The next issue arrives on %(date)s.", date=long_date(day, settings.language)),
        settings=settings,
    )


def _no_more(settings: Settings) -> str:
    """What unsubscribing ends: with several newsletters, this one only."""
    if not several():
        return _("You will get no more newsletters at this address.")
    return _("You will get no more of %(newsletter)s at this address; the other newsletters "
             "you subscribe to keep coming.", newsletter=settings.site_name)  # fmt: skip


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> tuple[str, int]:
    subscriber_id = read_reader_token(_desk().settings.verify_keys(), token)  # a bad link
    settings = _of_reader(subscriber_id)  # says so at once
    return page(_("Unsubscribe"), _no_more(settings), button=_("Unsubscribe"), settings=settings,
                manage=_manage_link(token))  # fmt: skip


def _manage_link(token: str) -> str | None:
    return url_for("public.subscriptions_page", token=token) if several() else None


@bp.post("/unsubscribe/<token>")
def unsubscribe_click(token: str) -> tuple[str, int] | Response:
    desk = _desk()
    subscriber_id = read_reader_token(desk.settings.verify_keys(), token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    source = "one-click (RFC 8058)" if one_click else "unsubscribe page"
    # a reader erased since has nothing left to unsubscribe: the answer is the same
    with desk.engine.begin() as conn, contextlib.suppress(NotFound):
        unsubscribe(conn, subscriber_id, _evidence(source), desk.now())
    if one_click:  # RFC 8058: a plain 200, no redirect, no cookie
        return Response("Unsubscribed.\n", status=200, mimetype="text/plain")
    settings = _of_reader(subscriber_id)
    return page(_("You are unsubscribed"), _no_more(settings), settings=settings,
                manage=_manage_link(token))  # fmt: skip


@bp.get("/subscriptions/<token>")
def subscriptions_page(token: str) -> tuple[str, int]:
    """Every newsletter of the desk, and whether this address gets it: an unsubscribe
    button for each it gets (that newsletter only), a sign-up link for the others."""
    desk = _desk()
    subscriber_id = read_reader_token(desk.settings.verify_keys(), token)
    secret = desk.settings.require_secret()
    with desk.engine.connect() as conn:
        rows = subscriptions(conn, subscriber_id)
    if not rows:
        raise NotFound(_("There is nothing left to show for this address."))
    states = {
        "active": _("You get it."),
        "reconsent": _("You get it once you agree to the new privacy policy."),
        "pending": _("Waiting for you to confirm your address."),
    }
    shown = []
    for newsletter, found in rows:
        settings = view(desk.settings, newsletter)
        state = states.get(found.status if found else "", _("You do not get it."))
        gets = found is not None and found.status in states
        mine = reader_token(secret, found.id) if gets and found else None
        shown.append({
            "name": settings.site_name,
            "state": state,
            "unsubscribe": url_for("public.unsubscribe_click", token=mine) if mine else None,
            "subscribe": None if mine else url_for("signup.subscribe_page",
                                                  newsletter=newsletter.slug),
        })  # fmt: skip
    return page(_("Your subscriptions"), template="subscriptions.html", rows=shown)


@bp.get("/reconsent/<token>")
def reconsent_page(token: str) -> tuple[str, int]:
    desk = _desk()
    with desk.engine.connect() as conn:
        waiting, policy = reconsent_target(conn, token, desk.settings.verify_keys(), desk.now())
    if waiting is None:
        return page(_("Nothing to confirm"), _("Your subscription does not wait for an agreement."))
    return page(_("Our privacy policy has changed"),
                _("To keep receiving the newsletter, agree to version %(version)s:",
                  version=policy.version),
                policy.wording, button=_("I agree, keep sending it"))  # fmt: skip


@bp.post("/reconsent/<token>")
def reconsent_click(token: str) -> tuple[str, int]:
    desk = _desk()
    with desk.engine.begin() as conn:
        changed = reconsent(
            conn, token, _evidence(request.url), desk.settings.verify_keys(), desk.now()
        )
    if not changed:
        return page(_("Nothing to confirm"), _("Your subscription does not wait for an agreement."))
    return page(_("Thank you"), _("You will keep receiving the newsletter."))


@bp.get("/view/<int:issue_id>/<token>")
def view_online(issue_id: int, token: str) -> Response:
    desk = _desk()
    subscriber_id = read_reader_token(desk.settings.verify_keys(), token)
    with desk.engine.connect() as conn:
        issue = get_issue(conn, issue_id)
        found = get_subscriber(conn, subscriber_id)
        settings = of_issue(conn, desk.settings, issue.id)
    if issue.status not in ("sending", "sent"):
        raise NotFound(f"issue {issue_id} has not been sent")
    sender = Sender.from_settings(settings)
    reader = Reader(found.id, found.email or "", found.name)
    rendered = render_issue(issue, Site.from_settings(settings), settings.templates)
    html, _text = personalise(rendered, sender.reader_values(reader, issue.id))
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = MAIL_CSP
    return response


@bp.get("/privacy")
@bp.get("/privacy/<version>")
def privacy(version: str | None = None) -> tuple[str, int]:
    with _desk().engine.connect() as conn:
        try:
            policy = get_policy(conn, version) if version else current_policy(conn)
        except NotFound:
            wanted = _("There is no version %(version)s of our privacy policy.", version=version)
            return page(_("Page not found"), wanted, status=404, problem=True)
    body = Markup(MarkdownIt("commonmark", {"html": False}).render(policy.text))
    return page(_("Privacy policy, version %(version)s", version=policy.version), body_html=body)

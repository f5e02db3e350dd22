"""Sign-up for readers: the form at /subscribe, the snippet other pages embed, and a JSON
endpoint for a site's backend. No login and no CSRF token: the double opt-in mail is
the check, and the rate limits keep a flood out.

Every accepted sign-up gets the same answer, whoever the address belongs to (new,
pending, active, unsubscribed or suppressed), so the form cannot tell anyone who reads
the newsletter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    after_this_request,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from newsletter.app import Desk
from newsletter.compose.rendering import Site
from newsletter.curation.issues import archived, check_line
from newsletter.delivery.notice_queue import Drainer, queue_mails
from newsletter.errors import InputError, NewsletterError, NotFound
from newsletter.language import N_
from newsletter.publications import Newsletter
from newsletter.readers.addresses import normalise_address
from newsletter.readers.consent import Evidence, Policy, current_policy, newsletter_policy
from newsletter.readers.optin import Limits, RateLimited, SignUp, sign_up
from newsletter.readers.subscribers import NAME_MAX
from newsletter.settings import Settings
from newsletter.web.chosen import chosen, several
from newsletter.web.error_pages import reader_error
from newsletter.web.words import _, speaks_english

bp = Blueprint("signup", __name__, template_folder="templates")
bp.register_error_handler(NewsletterError, reader_error)

SOURCE_MAX = 2000
PITCH = N_(
    "A hand-picked selection of news, features and analysis, in your mailbox every week. "
    "We send a link to confirm your address first."
)
CHECK_INBOX = "check your inbox"
TICKED = ("yes", "on")  # our value, and what a browser sends for a box without one
RETRY_AFTER = "3600"  # the per-network limit counts the last hour


@dataclass(frozen=True)
class Form:
    """A sign-up as posted: by the page, an embedded copy of it, or a site's backend."""

    newsletter: str | None = None  # its slug; none: the desk's first newsletter
    email: str = ""
    name: str = ""
    consent: bool = False
    policy_version: str | None = None  # the version whose wording the person was shown
    source: str | None = None


class FormInvalid(InputError):
    """One message per field that needs fixing; nothing was stored."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {text}" for field, text in problems.items()))


def check_form(form: Form, policy: Policy) -> dict[str, str]:
    """What is wrong with a sign-up, by field, in the words shown beside it."""
    problems: dict[str, str] = {}
    if not form.email.strip():
        problems["email"] = _("Enter your email address.")
    else:
        try:
            normalise_address(form.email)
        except InputError as exc:  # the input is in the field already: say only what is wrong
            why = str(exc).rpartition("is not a valid address: ")[2]
            # email-validator's detail is English: other languages get the catalogue's words
            problems["email"] = (
                why
                if speaks_english()
                else _("This is not an email address we can write to: check it for a typing error.")
            )
    for field, value, limit in (("name", form.name, NAME_MAX), ("source", form.source, SOURCE_MAX)):
        try:
            check_line(field, value or "", limit)
        except InputError as exc:
            one_line = "one line" in str(exc)
            problems[field] = (
                _("Write it on one line.")
                if one_line
                else _("Shorten it to %(limit)d characters at most.", limit=limit)
            )
    if form.policy_version not in (None, policy.version):
        problems["consent"] = _(
            "Our privacy policy has changed since this form was made: "
            "read the wording below and tick the box again."
        )
    elif form.consent is not True:
        problems["consent"] = _(
            "Tick the box to agree to the privacy policy, or we cannot send it."
        )
    return problems


def _desk() -> Desk:
    desk: Desk = current_app.config["DESK"]
    return desk


def policy_url(settings: Settings, policy: Policy) -> str:
    return f"{settings.base_url}/privacy/{policy.version}"


def take_sign_up(form: Form) -> None:
    """Check and record the consent, and queue the confirmation mail if one is due.

    FormInvalid or RateLimited when refused; otherwise the same quiet return for all."""
    desk = _desk()
    now = desk.now()
    evidence = Evidence(
        source=form.source or _form_url(),
        ip=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
    )
    try:
        newsletter, _settings = chosen(form.newsletter or "")
    except NotFound as exc:
        raise FormInvalid({"newsletter": str(exc)}) from None
    with desk.engine.begin() as conn:
        problems = check_form(form, current_policy(conn))
        if problems:
            raise FormInvalid(problems)
        signup = SignUp(form.email, form.consent, form.name, evidence, newsletter.id)
        mail = sign_up(
            conn, signup, Limits.from_settings(desk.settings), desk.settings.require_secret(), now
        )
        queue_mails(conn, [mail] if mail else [], now)


def wake_notices_after_answer() -> None:
    """Wake the notices' thread once this request's answer has gone. It is woken after
    every sign-up, mailed or not, and the request itself composes and sends nothing:
    neither this answer's time nor the next request's on this worker tells a new address
    from a known one."""
    drainer: Drainer = current_app.config["NOTICES"]

    @after_this_request
    def wake(response: Response) -> Response:
        response.call_on_close(drainer.wake)
        return response


def mail_after(response: Response) -> Response:
    wake_notices_after_answer()
    return response


def _form_url() -> str:
    """Where the form was: the page that posted it (our own, or an article embedding it)."""
    referrer = request.referrer or ""
    if referrer.startswith(("https://", "http://")) and len(referrer) <= SOURCE_MAX:
        return referrer
    return request.url


def _site() -> Site:
    return Site.from_settings(chosen()[1])


def _action(newsletter: Newsletter, absolute: str = "") -> str:
    """Where the form posts: the newsletter's slug rides in the address when the desk
    has several, so an embedded copy keeps to its newsletter."""
    if not several():
        return absolute + url_for("signup.subscribe_page")
    return absolute + url_for("signup.subscribe_page", newsletter=newsletter.slug)


def _signup_page(
    form: Form | None = None, problems: dict[str, str] | None = None, status: int = 200
) -> tuple[str, int]:
    newsletter, settings = chosen()
    with _desk().engine.connect() as conn:
        policy = newsletter_policy(conn, newsletter.id)
    html = render_template(
        "signup.html",
        title=_("Sign up for %(site)s", site=settings.site_name),
        site=Site.from_settings(settings),
        pitch=_(PITCH),
        action=_action(newsletter),
        policy=policy,
        policy_url=policy_url(settings, policy),
        form=form,
        problems=problems or {},
        preview=_preview(settings.base_url, newsletter),
    )
    return html, status


def _preview(base_url: str, newsletter: Newsletter) -> str | None:
    """The newsletter's latest archived issue, for people deciding; None while none was sent."""
    with _desk().engine.connect() as conn:
        issues, _total = archived(conn, 1, newsletter_id=newsletter.id)
    if not issues:
        return None
    if not several():
        return f"{base_url}/archive/latest"
    return f"{base_url}/archive/latest?newsletter={newsletter.slug}"


def _answer_page(title: str, *paragraphs: str, status: int = 200, **extra: Any) -> Response:
    html = render_template("public.html", title=title, paragraphs=paragraphs, site=_site(), **extra)
    return Response(html, status, mimetype="text/html")


@bp.get("/subscribe")
def subscribe_page() -> tuple[str, int] | Response:
    return _signup_page()


@bp.post("/subscribe")
def subscribe_form() -> tuple[str, int] | Response:
    form = Form(
        newsletter=request.args.get("newsletter"),
        email=request.form.get("email", ""),
        name=request.form.get("name", ""),
        consent=request.form.get("consent") in TICKED,
        policy_version=request.form.get("policy_version"),
    )
    try:
        take_sign_up(form)
    except FormInvalid as exc:
        return _signup_page(form, exc.problems, status=400)
    except RateLimited:
        response = _answer_page(
            _("Too many sign-ups"),
            _("Too many sign-ups came from your network in the last hour."),
            _("Please try again in an hour. Nothing was stored."),
            status=429,
            problem=True,
        )
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    answer = _answer_page(
        _("Check your inbox"),
        _(
            "If this address can receive the newsletter, a message with a link to confirm it "
            "is on its way. Open the link to start your subscription."
        ),
        _("No message within a few minutes? Look in the spam folder, or sign up again later."),
    )
    return mail_after(answer)


def embed_snippet() -> Markup:
    """The form a site pastes into its pages: absolute links, the current policy's wording."""
    newsletter, settings = chosen()
    with _desk().engine.connect() as conn:
        policy = newsletter_policy(conn, newsletter.id)
    template = current_app.jinja_env.get_template("_signup_form.html")
    form_macro = template.module.signup_form  # type: ignore[attr-defined]
    snippet: Markup = form_macro(
        _action(newsletter, settings.base_url), policy, policy_url(settings, policy),
        preview=_preview(settings.base_url, newsletter),
    )  # fmt: skip
    return snippet


@bp.get("/subscribe/embed")
def embed_page() -> str:
    snippet = embed_snippet()
    return render_template(
        "embed.html",
        title="The sign-up form for your pages",
        site=_site(),
        snippet=snippet,
        snippet_source=str(snippet),
        text_url=f"{_desk().settings.base_url}/subscribe/embed.txt",
    )


@bp.get("/subscribe/embed.txt")
def embed_text() -> Response:
    return Response(str(embed_snippet()) + "\n", mimetype="text/plain")


def _json(code: int, **body: Any) -> Response:
    response = jsonify(body)
    response.status_code = code
    return response


def _form_from_json(body: Any) -> Form:
    if not isinstance(body, dict):
        raise FormInvalid({"body": 'Send one JSON object: {"email": …, "consent": true}.'})
    problems = {
        field: f"Must be a string, not {type(body[field]).__name__}."
        for field in ("email", "name", "source", "policy_version", "newsletter")
        if body.get(field) is not None and not isinstance(body[field], str)
    }
    if problems:
        raise FormInvalid(problems)
    return Form(
        newsletter=body.get("newsletter") or request.args.get("newsletter"),
        email=body.get("email") or "",
        name=body.get("name") or "",
        consent=body.get("consent") is True,
        policy_version=body.get("policy_version"),
        source=body.get("source"),
    )


@bp.post("/api/subscribe")
def subscribe_api() -> Response:
    if not request.is_json:
        return _json(415, error="send the sign-up as JSON (Content-Type: application/json)")
    try:
        take_sign_up(_form_from_json(request.get_json(silent=True)))
    except FormInvalid as exc:
        field, text = next(iter(exc.problems.items()))
        return _json(400, error=text, field=field)
    except RateLimited as exc:
        response = _json(429, error=str(exc))
        response.headers["Retry-After"] = RETRY_AFTER
        return response
    return mail_after(_json(202, status=CHECK_INBOX))

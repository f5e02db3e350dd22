"""The web app: the editors' desk with its preview, and the readers' pages."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from newsletter.app import Desk
from newsletter.delivery.notice_queue import Drainer
from newsletter.editors import SESSION_LIFETIME
from newsletter.errors import ConfigError, NewsletterError
from newsletter.settings import Settings

MAX_BODY = 256 * 1024  # a sign-up or a desk form is a few kilobytes


def create_app(settings: Settings) -> Flask:
    """The app factory: everything it needs comes from the settings passed in."""
    from newsletter.web import archive, desk, hooks, preview, public, signup

    app = _app(settings)
    the_desk: Desk = app.config["DESK"]
    app.config["NOTICES"] = Drainer(
        the_desk.engine, the_desk.settings, the_desk.transport, the_desk.now
    )
    app.register_blueprint(desk.bp)
    app.register_blueprint(preview.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(signup.bp)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(archive.bp)

    @app.get("/")
    def front() -> ResponseReturnValue:
        """A reader who opens the site's address finds the sign-up; an editor, the desk."""
        return redirect(url_for("desk.this_week" if desk.signed_in() else "signup.subscribe_page"))

    return app


def preview_app(settings: Settings, port: int) -> Flask:
    """`newsletter preview` on a laptop: the preview pages alone, without a login, and only
    for requests addressed to this machine's loopback port. No reader's page is served, so a
    page elsewhere cannot act on readers through it; a page that points a name of its own at
    127.0.0.1 (DNS rebinding) sends that name as Host and is refused."""
    from newsletter.web import preview

    app = _app(settings, PREVIEW_OPEN=True)
    app.register_blueprint(preview.bp)
    hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}

    @app.before_request
    def this_machine_only() -> ResponseReturnValue | None:
        if request.host.lower() not in hosts:
            return Response(
                f"this preview answers only at 127.0.0.1:{port}\n", 421, mimetype="text/plain"
            )
        return None

    return app


def _app(settings: Settings, **config: Any) -> Flask:
    """What every app of ours has: the desk, the session key, the body cap, the headers."""
    from newsletter.compose.rendering import speak
    from newsletter.web import error_pages

    the_desk = Desk(settings).use_kept_key()
    app = Flask(__name__)
    app.config.update(
        DESK=the_desk,
        SECRET_KEY=the_desk.settings.require_secret(),  # signs the session cookie
        SECRET_KEY_FALLBACKS=list(the_desk.settings.older_secret_keys),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # the cookie is written only when the session changes: a preview loading beside an
        # action cannot write back the session as it was before the action (its undo)
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_BODY,  # a larger body is refused (413) before it is read
        **config,
    )
    error_pages.register(app)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    speak(app.jinja_env, the_desk.settings.language)  # the reader pages' words and dates
    form_to = " ".join(sorted({"'self'", _origin(settings.base_url)}))

    @app.before_request
    def script_nonce() -> None:
        g.csp_nonce = secrets.token_urlsafe(16)

    @app.context_processor
    def nonce() -> dict[str, Any]:
        return {"csp_nonce": g.get("csp_nonce", "")}

    @app.after_request
    def careful_headers(response: Response) -> Response:
        """No page of ours is framed by another site or read as another type, and only
        our own scripts run: the desk's carry this answer's nonce."""
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'self'; script-src 'nonce-{g.get('csp_nonce', '')}'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' https: http: data:; "
            f"object-src 'none'; base-uri 'none'; form-action {form_to}; "
            "frame-ancestors 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # the desk frames previews
        response.headers.setdefault("Referrer-Policy", "same-origin")  # tokens stay in our URLs
        return response

    # a refusal's message on a page in the desk's (or the readers') layout, autoescaped:
    # messages quote input (a version, an address) that must not become HTML
    app.register_error_handler(NewsletterError, error_pages.reader_error)

    return app


# An email shown in a browser (the preview's frames, "view online"): its own styles and
# remote images, no script at all, whatever a feed's summary smuggled into it.
MAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def wsgi() -> Flask:
    """For a WSGI server: `waitress-serve --call newsletter.web:wsgi` (settings from the env)."""
    from newsletter.settings import load_settings

    try:  # fail at start-up (no key, a malformed setting), not on a reader's first click
        app = create_app(load_settings())
        app.config["NOTICES"].wake()  # what a stopped process left queued
        return app
    except ConfigError as exc:  # one line on stderr and exit 1, not a traceback
        raise SystemExit(f"newsletter: {exc}") from None

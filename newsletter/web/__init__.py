"""The web app: the editors' desk with its preview, and the readers' pages."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, redirect, request, url_for
from flask.typing import ResponseReturnValue

from ..config import Settings
from ..desk import Desk
from ..editors import SESSION_LIFETIME
from ..errors import ConfigError, NewsletterError

MAX_BODY = 256 * 1024  # a sign-up or a desk form is a few kilobytes


def create_app(settings: Settings) -> Flask:
    """The app factory: everything it needs comes from the settings passed in."""
    from . import desk, preview, public, signup

    app = _app(settings)
    app.register_blueprint(desk.bp)
    app.register_blueprint(preview.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(signup.bp)

    @app.get("/")
    def front() -> ResponseReturnValue:
        """A reader who opens the site's address finds the sign-up; an editor, the desk."""
        return redirect(url_for("desk.week" if desk.signed_in() else "signup.subscribe_page"))

    return app


def preview_app(settings: Settings, port: int) -> Flask:
    """`newsletter preview` on a laptop: the preview pages alone, without a login, and only
    for requests addressed to this machine's loopback port. No reader's page is served, so a
    page elsewhere cannot act on readers through it; a page that points a name of its own at
    127.0.0.1 (DNS rebinding) sends that name as Host and is refused."""
    from . import preview

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
    from . import error_pages

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
        MAX_CONTENT_LENGTH=MAX_BODY,  # a larger body is refused (413) before it is read
        **config,
    )
    error_pages.register(app)

    @app.after_request
    def careful_headers(response: Response) -> Response:
        """No page of ours is framed by another site or read as another type."""
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # the desk frames previews
        response.headers.setdefault("Referrer-Policy", "same-origin")  # tokens stay in our URLs
        return response

    @app.errorhandler(NewsletterError)
    def desk_error(error: NewsletterError) -> Response:
        # plain text: messages quote input (a version, an address) that must not become HTML
        return Response(f"{type(error).__name__}: {error}\n", error.status, mimetype="text/plain")

    return app


def wsgi() -> Flask:
    """For a WSGI server: `waitress-serve --call newsletter.web:wsgi` (settings from the env)."""
    from ..config import load_settings

    try:  # fail at start-up (no key, a malformed setting), not on a reader's first click
        return create_app(load_settings())
    except ConfigError as exc:  # one line on stderr and exit 1, not a traceback
        raise SystemExit(f"newsletter: {exc}") from None

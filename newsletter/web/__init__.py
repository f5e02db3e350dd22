"""The web app: the preview editors keep open beside templates/, and readers' pages."""

from __future__ import annotations

from flask import Flask, Response

from ..config import Settings
from ..desk import Desk
from ..errors import ConfigError, NewsletterError


def create_app(settings: Settings) -> Flask:
    """The app factory: everything it needs comes from the settings passed in."""
    from . import error_pages, preview, public, signup

    app = Flask(__name__)
    app.config["DESK"] = Desk(settings)
    app.register_blueprint(preview.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(signup.bp)
    error_pages.register(app)

    @app.errorhandler(NewsletterError)
    def desk_error(error: NewsletterError) -> Response:
        # plain text: messages quote input (a version, an address) that must not become HTML
        return Response(f"{type(error).__name__}: {error}\n", error.status, mimetype="text/plain")

    return app


def wsgi() -> Flask:
    """For a WSGI server: `waitress-serve --call newsletter.web:wsgi` (settings from the env)."""
    from ..config import load_settings

    try:
        settings = load_settings()
        settings.require_secret()  # fail at start-up, not on a reader's first click
    except ConfigError as exc:  # one line on stderr and exit 1, not a traceback
        raise SystemExit(f"newsletter: {exc}") from None
    return create_app(settings)

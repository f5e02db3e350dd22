"""The web app: the preview editors keep open beside templates/, and readers' pages."""

from __future__ import annotations

from flask import Flask

from ..config import Settings
from ..desk import Desk
from ..errors import NewsletterError


def create_app(settings: Settings) -> Flask:
    """The app factory: everything it needs comes from the settings passed in."""
    from . import preview, public

    app = Flask(__name__)
    app.config["DESK"] = Desk(settings)
    app.register_blueprint(preview.bp)
    app.register_blueprint(public.bp)

    @app.errorhandler(NewsletterError)
    def desk_error(error: NewsletterError) -> tuple[str, int]:
        return f"{type(error).__name__}: {error}", error.status

    return app


def wsgi() -> Flask:
    """For a WSGI server: `waitress-serve --call newsletter.web:wsgi` (settings from the env)."""
    from ..config import load_settings

    return create_app(load_settings())

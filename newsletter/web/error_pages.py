"""Error answers at the web boundary: a page in the readers' layout, JSON under /api/.

No stack trace reaches a browser: Flask logs an unhandled exception with its traceback
(PROPAGATE_EXCEPTIONS off) and the reader gets a plain 500 page. Messages are
rendered through autoescaping templates, never pasted into HTML.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from newsletter.compose.rendering import Site
from newsletter.errors import NewsletterError
from newsletter.language import N_
from newsletter.web.words import _

API = "/api/"
SOMETHING = N_("Something went wrong")
SORRY = N_("Something went wrong on our side. Please try again in a few minutes.")
TITLES = {
    400: N_("That request did not work"),
    404: N_("Page not found"),
    405: N_("That does not work here"),
    413: N_("That was too much"),
    429: N_("Too many requests"),
}
EXPLAIN = {
    404: N_("There is no page at this address. Check the link, or start from the front page."),
    405: N_("This address does not take that kind of request."),
    413: N_("The request was larger than any form of this site sends."),
}


def error_answer(status: int, message: str) -> Response:
    if request.path.startswith(API):
        response = jsonify(error=message)
        response.status_code = status
        return response
    html = render_template(
        "public.html",
        title=_(TITLES.get(status, SOMETHING)),
        paragraphs=[_(message)],
        problem=True,
        site=Site.from_settings(current_app.config["DESK"].settings),
    )
    return Response(html, status, mimetype="text/html")


def http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        return error_answer(status, SORRY)
    response = error_answer(status, EXPLAIN.get(status) or error.description or "")
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def reader_error(error: NewsletterError) -> Response:
    """For the readers' pages: the message on a page; a fault of ours stays in the log."""
    if error.status >= 500:
        current_app.logger.error("%s: %s", type(error).__name__, error)
        return error_answer(error.status, SORRY)
    text = str(error)
    return error_answer(error.status, text[:1].upper() + text[1:])


def register(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.register_error_handler(HTTPException, http_error)

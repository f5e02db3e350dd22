"""Error answers at the web boundary: a page in the readers' layout, the desk's own under
/desk/ (in the desk's words: never an exception's class name), JSON under /api/ and for
the desk's scripts.

No stack trace reaches a browser: Flask logs an unhandled exception with its traceback
(PROPAGATE_EXCEPTIONS off) and the reader gets a plain 500 page. Messages are
rendered through autoescaping templates, never pasted into HTML.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from newsletter.compose.rendering import Site
from newsletter.errors import NewsletterError
from newsletter.language import N_
from newsletter.web.words import _

API = "/api/"
DESK = "/desk"
DESK_TITLES = {
    400: "That did not work",
    401: "Please log in",
    403: "Not for your account",
    404: "Not found",
    405: "That does not work here",
    409: "That cannot be done now",
    413: "That was too much",
    429: "Too many attempts",
}
DESK_SORRY = (
    "Something went wrong on the desk's side; nothing was changed by this request. Try "
    "again, and if it happens again the log of the desk's server says why."
)
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


def _json() -> bool:
    return request.path.startswith(API) or request.accept_mimetypes.best == "application/json"


def error_answer(status: int, message: str) -> Response:
    if _json():
        response = jsonify(error=message, ok=False)
        response.status_code = status
        return response
    if _for_editors():
        _sign_in_shown()
        page = render_template(
            "desk/error.html", status=status, title=DESK_TITLES.get(status, SOMETHING),
            message=message[:1].upper() + message[1:],  # a sentence on the page
            desk="desk.this_week" in current_app.view_functions,
        )  # fmt: skip
        return Response(page, status, mimetype="text/html")
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
        return error_answer(status, _sorry())
    said = EXPLAIN.get(status) or error.description or ""
    response = error_answer(status, said[:1].upper() + said[1:])
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response


def reader_error(error: NewsletterError) -> Response:
    """The message on a page (the readers' or the desk's); a fault of ours stays in the log."""
    if error.status >= 500:
        current_app.logger.error("%s: %s", type(error).__name__, error)
        return error_answer(error.status, _sorry())
    text = str(error)
    return error_answer(error.status, text[:1].upper() + text[1:])


def _sorry() -> str:
    return DESK_SORRY if _for_editors() else SORRY


def _sign_in_shown() -> None:
    """A page no route matched (or one that failed early) shows the signed-in editor's
    layout too: the session is read here, since the desk's guard did not run."""
    if "editor" in g or "desk.this_week" not in current_app.view_functions:
        return
    from newsletter.web.desk.session import signed_in

    try:
        g.editor = signed_in()
    except Exception:  # the database itself may be why this is an error page
        g.editor = None


def _for_editors() -> bool:
    """The desk and its previews: the editors' pages, in the desk's layout."""
    path = request.path
    return path == DESK or path.startswith((DESK + "/", "/preview/"))


def register(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.register_error_handler(HTTPException, http_error)

"""The desk's readers pages: the list by status and address (with when each agreed),
one reader's record, and, for admins only, the readers' data: the exports (one reader's
JSON, everyone's CSV) and erasure."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from newsletter.readers.access import export_csv, export_subscriber, forget
from newsletter.readers.consent import consent_dates
from newsletter.readers.subscribers import (
    STATUSES,
    count_by_status,
    get_subscriber,
    list_subscribers,
)
from newsletter.web.desk.session import (
    bp,
    current_editor,
    desk_newsletter,
    desk_now,
    desk_of_app,
)

F = TypeVar("F", bound=Callable[..., Any])


def admin_only(func: F) -> F:
    """The readers' personal data leaves the desk (or is erased) only for an admin."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_editor().admin:
            abort(403, "only an admin of the desk may export or erase readers' data")
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@bp.get("/readers")
def readers() -> Any:
    q = request.args.get("q", "").strip().lower()
    wanted = request.args.get("status", "")
    newsletter_id = desk_newsletter()[1].newsletter_id  # the newsletter worked on's readers
    with desk_of_app().engine.connect() as conn:
        counts = count_by_status(conn, newsletter_id)
        rows = list_subscribers(conn, wanted if wanted in STATUSES else None, q or None,
                                limit=100, newest_first=True,
                                newsletter_id=newsletter_id)  # fmt: skip
        agreed = consent_dates(conn, [r.id for r in rows])
    return render_template("desk/readers.html", counts=counts, rows=rows, q=q, agreed=agreed,
                           wanted=wanted, statuses=STATUSES, editor=current_editor())  # fmt: skip


@bp.get("/readers/<int:subscriber_id>")
def reader(subscriber_id: int) -> Any:
    with desk_of_app().engine.connect() as conn:
        found = get_subscriber(conn, subscriber_id)
        document = export_subscriber(conn, subscriber_id)
    return render_template("desk/reader.html", reader=found, document=document,
                           editor=current_editor())  # fmt: skip


@bp.post("/readers/<int:subscriber_id>/erase")
@admin_only
def reader_erase(subscriber_id: int) -> Any:
    """Erase a reader's personal data, as `subscribers forget` does; the editor types the
    address to confirm, so the wrong row is never erased by a slip."""
    with desk_of_app().engine.begin() as conn:
        found = get_subscriber(conn, subscriber_id)
        if found.email is None or request.form.get("confirm", "").strip().lower() != found.email:
            flash("not erased: type the reader's address to confirm", "error")
        else:
            forget(conn, subscriber_id, desk_now(), channel=f"desk: {current_editor().email}")
            flash(f"reader {subscriber_id} erased: the address is kept only as a hash, so it "
                  "is never mailed again", "ok")  # fmt: skip
    return redirect(url_for("desk.reader", subscriber_id=subscriber_id), 303)


@bp.get("/readers/<int:subscriber_id>/export.json")
@admin_only
def reader_export(subscriber_id: int) -> Response:
    with desk_of_app().engine.connect() as conn:
        document = export_subscriber(conn, subscriber_id)
    response = jsonify(document)
    response.headers["Content-Disposition"] = f"attachment; filename=reader-{subscriber_id}.json"
    return response


@bp.get("/readers/export.csv")
@admin_only
def readers_export() -> Response:
    newsletter_id = desk_newsletter()[1].newsletter_id
    with desk_of_app().engine.connect() as conn:
        text = export_csv(conn, newsletter_id)
    disposition = {"Content-Disposition": "attachment; filename=readers.csv"}
    return Response(text, mimetype="text/csv", headers=disposition)

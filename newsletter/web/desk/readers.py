"""The desk's readers pages: the list by status and address, one reader's record, and
the exports (one reader's JSON, everyone's CSV)."""

from __future__ import annotations

from typing import Any

from flask import (
    Response,
    jsonify,
    render_template,
    request,
)

from newsletter.readers.access import export_csv, export_subscriber
from newsletter.readers.subscribers import (
    STATUSES,
    count_by_status,
    get_subscriber,
    list_subscribers,
)
from newsletter.web.desk.session import bp, desk_of_app


@bp.get("/readers")
def readers() -> Any:
    q = request.args.get("q", "").strip().lower()
    wanted = request.args.get("status", "")
    with desk_of_app().engine.connect() as conn:
        counts = count_by_status(conn)
        rows = list_subscribers(conn, wanted if wanted in STATUSES else None, q or None,
                                limit=100, newest_first=True)  # fmt: skip
    return render_template("desk/readers.html", counts=counts, rows=rows, q=q,
                           wanted=wanted, statuses=STATUSES)  # fmt: skip


@bp.get("/readers/<int:subscriber_id>")
def reader(subscriber_id: int) -> Any:
    with desk_of_app().engine.connect() as conn:
        found = get_subscriber(conn, subscriber_id)
        document = export_subscriber(conn, subscriber_id)
    return render_template("desk/reader.html", reader=found, document=document)


@bp.get("/readers/<int:subscriber_id>/export.json")
def reader_export(subscriber_id: int) -> Response:
    with desk_of_app().engine.connect() as conn:
        document = export_subscriber(conn, subscriber_id)
    response = jsonify(document)
    response.headers["Content-Disposition"] = f"attachment; filename=reader-{subscriber_id}.json"
    return response


@bp.get("/readers/export.csv")
def readers_export() -> Response:
    with desk_of_app().engine.connect() as conn:
        text = export_csv(conn)
    disposition = {"Content-Disposition": "attachment; filename=readers.csv"}
    return Response(text, mimetype="text/csv", headers=disposition)

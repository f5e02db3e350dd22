"""The admins' page: the desk's accounts (their roles, a new one, signing one out of
every browser) and the settings the desk runs with, secrets hidden."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from newsletter.editors import ROLES, add_editor, end_sessions, list_editors, set_role
from newsletter.errors import NewsletterError, StateError
from newsletter.publications import list_newsletters, view
from newsletter.readers.addresses import normalise_address
from newsletter.settings.table import described
from newsletter.web.desk.readers import admin_only
from newsletter.web.desk.session import bp, current_editor, desk_now, desk_of_app


@bp.get("/admin")
@admin_only
def admin() -> Any:
    desk = desk_of_app()
    with desk.engine.connect() as conn:
        accounts = list_editors(conn)
        rows = [(one, view(desk.settings, one)) for one in list_newsletters(conn)]
    return render_template("desk/admin.html", accounts=accounts, roles=ROLES, settings=described(
        desk.settings), me=current_editor(), newsletter_rows=rows)  # fmt: skip


def _done(message: str, ok: bool = True) -> ResponseReturnValue:
    flash(message, "ok" if ok else "error")
    return redirect(url_for("desk.admin"), 303)


@bp.post("/admin/editors")
@admin_only
def admin_add_editor() -> ResponseReturnValue:
    form = request.form
    try:
        with desk_of_app().engine.begin() as conn:
            address = normalise_address(form.get("email", ""))
            if any(a.email == address for a in list_editors(conn)):
                raise StateError(
                    f"{address} has an account already: change its role above; its owner "
                    "sets a new password with `newsletter editors add`"
                )
            account = add_editor(conn, address, form.get("password", ""), desk_now(),
                                 form.get("role") or "editor")  # fmt: skip
    except NewsletterError as exc:
        return _done(str(exc), False)
    return _done(f"{account.role} {account.email} can log in with the password you chose; "
                 "ask them to keep it to themselves")  # fmt: skip


@bp.post("/admin/editors/<int:editor_id>/role")
@admin_only
def admin_role(editor_id: int) -> ResponseReturnValue:
    try:
        with desk_of_app().engine.begin() as conn:
            account = set_role(conn, editor_id, request.form.get("role", ""))
    except NewsletterError as exc:
        return _done(str(exc), False)
    return _done(f"{account.email} is now {account.role}")


@bp.post("/admin/editors/<int:editor_id>/sign-out")
@admin_only
def admin_sign_out(editor_id: int) -> ResponseReturnValue:
    with desk_of_app().engine.begin() as conn:
        ended = end_sessions(conn, editor_id)
    return _done(f"{ended} session{'' if ended == 1 else 's'} ended")

"""Which newsletter a reader's page is about: `?newsletter=SLUG` (the sign-up form's
address carries it), else the desk's first one; a slug that names none is a 404."""

from __future__ import annotations

from flask import current_app, request

from newsletter.errors import NotFound
from newsletter.publications import (
    FIRST,
    Newsletter,
    choose,
    get_newsletter,
    list_newsletters,
    view,
)
from newsletter.settings import Settings
from newsletter.web.words import _


def chosen(slug: str | None = None) -> tuple[Newsletter, Settings]:
    """The newsletter the request names, with the settings as it sees them."""
    desk = current_app.config["DESK"]
    slug = slug if slug is not None else request.args.get("newsletter")
    with desk.engine.connect() as conn:
        if slug:
            try:
                found = choose(conn, slug[:40])
            except NotFound:
                raise NotFound(_("There is no such newsletter.")) from None
        else:
            found = get_newsletter(conn, FIRST)
    return found, view(desk.settings, found)


def several() -> bool:
    """More than one newsletter: pages name theirs, and forms carry its slug."""
    with current_app.config["DESK"].engine.connect() as conn:
        return len(list_newsletters(conn)) > 1

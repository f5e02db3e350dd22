"""One reader's copy of an issue, for previews in the browser and `render`."""

from __future__ import annotations

import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from newsletter.compose.issue import Checked, Composed, compose, render_checked
from newsletter.compose.markers import ReaderValues, personalise
from newsletter.compose.messages import Sender
from newsletter.curation.issues import get_issue
from newsletter.errors import NotFound
from newsletter.models import Issue, Reader
from newsletter.publications import view_of
from newsletter.readers.addresses import normalise_address
from newsletter.settings import Settings
from newsletter.store import tables as db

SAMPLE_READER = Reader(id=0, email="reader@example.org", name="")
# A preview's links are signed with a key of its own, made when the process starts, which
# no page of the site accepts: a preview (a page, a saved .eml, a copied link) as a reader
# looks like their copy and can confirm, unsubscribe or re-consent no one.
PREVIEW_KEY = secrets.token_urlsafe(32)


@dataclass(frozen=True)
class PreviewCopy:
    issue_id: int
    composed: Composed
    reader: Reader
    values: ReaderValues
    html: str
    text: str


def find_reader(conn: sa.Connection, email: str, newsletter_id: int | None = None) -> Reader:
    """A reader by address: their subscription to the newsletter, where one is named."""
    address = normalise_address(email)
    s = db.subscribers
    query = sa.select(s.c.id, s.c.email, s.c.name).where(s.c.email == address)
    if newsletter_id is not None:
        query = query.where(s.c.newsletter_id == newsletter_id)
    row = conn.execute(query.order_by(s.c.id)).first()
    if row is None:
        raise NotFound(f"no subscriber {address}")
    return Reader(row.id, row.email, row.name)


def preview_copy(
    engine: sa.Engine, settings: Settings, issue_ref: str | int, as_email: str | None, now: datetime
) -> PreviewCopy:
    """An issue as one reader (or a sample reader) gets it, from its newsletter."""
    with engine.connect() as conn:
        issue = get_issue(conn, issue_ref)
        settings = view_of(conn, settings, issue.newsletter_id)
        found = find_reader(conn, as_email, issue.newsletter_id) if as_email else None
    reader = found or SAMPLE_READER
    composed = composed_for_preview(issue, settings, now)
    values = composed.sender.reader_values(reader, issue.id)
    html, text = personalise(composed.rendered, values)
    return PreviewCopy(issue.id, composed, reader, values, html, text)


# An editor's page of an issue renders it for the page's preflight and again for each of
# its two preview frames, ~90 ms each (premailer): the same rendering serves all three
# while nothing it is made from changes. What depends on the moment (the Date header,
# the DKIM key as the file holds it now) is made on every call; sends never use this.
_RENDERED: OrderedDict[Hashable, Checked] = OrderedDict()
_RENDERED_KEPT = 8
_rendered_lock = threading.Lock()


def composed_for_preview(issue: Issue, settings: Settings, now: datetime) -> Composed:
    """The issue composed at `now`, from the rendering made before for the same issue
    (every article and field, compared whole), settings and template files (names,
    sizes, times), when there is one."""
    settings = replace(settings, secret_key=PREVIEW_KEY, older_secret_keys=())
    key = (issue, settings, templates_stamp(settings.templates))

    def rendering(sender: Sender) -> Checked:
        with _rendered_lock:
            checked = _RENDERED.get(key)
            if checked is not None:
                _RENDERED.move_to_end(key)
                return checked
        checked = render_checked(issue, settings, sender)
        with _rendered_lock:
            _RENDERED[key] = checked
            while len(_RENDERED) > _RENDERED_KEPT:
                _RENDERED.popitem(last=False)
        return checked

    return compose(issue, settings, now, rendering=rendering)


def templates_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file under the templates folder with its size and modification time."""
    stamp = []
    for directory, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.stat(path)
            except OSError:  # removed while we looked: the next look sees it gone
                continue
            stamp.append((path, info.st_size, info.st_mtime_ns))
    return tuple(sorted(stamp))

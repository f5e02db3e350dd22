"""One reader's copy of an issue, for previews in the browser and `render`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from . import db
from .addresses import normalise_address
from .config import Settings
from .errors import NotFound
from .issues import get_issue
from .models import Reader
from .rendering import ReaderValues, personalise
from .sending import Composed, compose

SAMPLE_READER = Reader(id=0, email="reader@example.org", name="")


@dataclass(frozen=True)
class PreviewCopy:
    issue_id: int
    composed: Composed
    reader: Reader
    values: ReaderValues
    html: str
    text: str


def find_reader(conn: sa.Connection, email: str) -> Reader:
    address = normalise_address(email)
    s = db.subscribers
    row = conn.execute(sa.select(s.c.id, s.c.email, s.c.name).where(s.c.email == address)).first()
    if row is None:
        raise NotFound(f"no subscriber {address}")
    return Reader(row.id, row.email, row.name)


def preview_copy(
    engine: sa.Engine, settings: Settings, issue_ref: str | int, as_email: str | None, now: datetime
) -> PreviewCopy:
    with engine.connect() as conn:
        issue = get_issue(conn, issue_ref)
        reader = find_reader(conn, as_email) if as_email else SAMPLE_READER
    composed = compose(issue, settings, now)
    values = composed.sender.reader_values(reader, issue.id)
    html, text = personalise(composed.rendered, values)
    return PreviewCopy(issue.id, composed, reader, values, html, text)

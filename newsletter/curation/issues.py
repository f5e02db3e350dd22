"""Curation: one issue per send day, its ordered items, and the rules of its states.

draft -> approved -> sending -> sent; draft or approved -> held (this week's send skips
it) -> draft; draft or approved -> cancelled. An approved issue is frozen until
unapproved; a sent one never changes. Every change counts one more revision, so a page
that showed an older one cannot overwrite what another tab saved meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from newsletter.curation.articles import get_article
from newsletter.errors import EditConflict, InputError, NotFound, StateError
from newsletter.models import Article, Issue, IssueItem
from newsletter.settings.values import SendAt
from newsletter.store import tables as db

ALT_MAX = 300
SUBJECT_MAX = 200
PREHEADER_MAX = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def first_free_send_day(
    conn: sa.Connection, day: date, send_at: SendAt, newsletter_id: int = db.FIRST_NEWSLETTER
) -> date:
    """The first send day on or after `day` that has no issue of the newsletter yet."""
    i = db.issues
    taken = set(
        conn.execute(
            sa.select(i.c.send_date).where(i.c.send_date >= day, i.c.newsletter_id == newsletter_id)
        ).scalars()
    )
    send_date = send_at.day_on_or_after(day)
    while send_date in taken:
        send_date += send_at.period
    return send_date


def issue_id_for_day(
    conn: sa.Connection, day: date, newsletter_id: int = db.FIRST_NEWSLETTER
) -> int | None:
    """The id of a newsletter's issue for a send day, if there is one (one issue per
    newsletter and send day)."""
    i = db.issues
    found = conn.execute(
        sa.select(i.c.id).where(i.c.send_date == day, i.c.newsletter_id == newsletter_id)
    ).scalar()
    return None if found is None else int(found)


def new_issue(
    conn: sa.Connection, send_date: date, now: datetime, newsletter_id: int = db.FIRST_NEWSLETTER
) -> Issue:
    """A newsletter's issue for a send day, with the newsletter's appeal setting."""
    existing = issue_id_for_day(conn, send_date, newsletter_id)
    if existing is not None:
        raise StateError(f"issue {existing} is already the issue for {send_date.isoformat()}")
    appeal = conn.execute(
        sa.select(db.newsletters.c.appeal).where(db.newsletters.c.id == newsletter_id)
    ).scalar()
    if appeal is None:
        raise NotFound(f"no newsletter {newsletter_id}")
    issue_id = conn.execute(
        db.issues.insert().values(
            newsletter_id=newsletter_id,
            send_date=send_date,
            appeal=bool(appeal),
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key
    assert issue_id is not None
    return get_issue(conn, issue_id[0])


def find_issue_id(conn: sa.Connection, ref: str | int) -> int:
    """An issue by its id or by its send date (YYYY-MM-DD: the one issue of that day, of
    whichever newsletter; two newsletters' issues of one day are named by id)."""
    text = str(ref).strip()
    if text.isdigit():
        number = int(text) if text.isascii() and len(text) <= 10 else 0
        found = None
        if 0 < number < 2**31:  # beyond what an integer column holds: no such issue
            found = conn.execute(sa.select(db.issues.c.id).where(db.issues.c.id == number)).scalar()
    else:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InputError(f"issue: {text!r} is neither an issue id nor a date") from None
        i = db.issues
        ids = conn.execute(sa.select(i.c.id).where(i.c.send_date == day).limit(2)).scalars()
        several = list(ids)
        if len(several) > 1:
            raise InputError(f"issue: {text} is the day of several newsletters' issues: use an id")
        found = several[0] if several else None
    if found is None:
        raise NotFound(f"no issue {text}")
    return int(found)


def get_issue(conn: sa.Connection, ref: str | int) -> Issue:
    issue_id = find_issue_id(conn, ref)
    row = conn.execute(sa.select(db.issues).where(db.issues.c.id == issue_id)).mappings().one()
    items = conn.execute(
        sa.select(
            db.articles,
            db.issue_items.c.title.label("title_override"),
            db.issue_items.c.summary.label("summary_override"),
            db.issue_items.c.image_alt.label("alt_override"),
        )
        .join(db.issue_items, db.articles.c.id == db.issue_items.c.article_id)
        .where(db.issue_items.c.issue_id == issue_id)
        .order_by(db.issue_items.c.position)
    ).mappings()
    return Issue(
        id=row["id"],
        newsletter_id=int(row["newsletter_id"]),
        send_date=row["send_date"],
        status=row["status"],
        subject=row["subject"],
        preheader=row["preheader"],
        note=row["note"],
        appeal=bool(row["appeal"]),
        by_section=bool(row["by_section"]),
        clip_forced=bool(row["clip_forced"]),
        approved_at=row["approved_at"],
        sent_at=row["sent_at"],
        revision=int(row["revision"]),
        in_archive=bool(row["in_archive"]),
        items=tuple(
            IssueItem(
                article=Article.from_row(item),
                position=index,
                title_override=item["title_override"],
                summary_override=item["summary_override"],
                alt_override=item["alt_override"],
            )
            for index, item in enumerate(items, start=1)
        ),
    )


def list_issues(
    conn: sa.Connection, limit: int = 50, newsletter_id: int | None = None
) -> list[Issue]:
    """The issues, the latest send day first: of one newsletter, or of them all."""
    query = sa.select(db.issues.c.id).order_by(db.issues.c.send_date.desc(), db.issues.c.id)
    if newsletter_id is not None:
        query = query.where(db.issues.c.newsletter_id == newsletter_id)
    ids = conn.execute(query.limit(limit)).scalars()
    return [get_issue(conn, issue_id) for issue_id in ids]


def _editable(conn: sa.Connection, ref: str | int) -> Issue:
    issue = get_issue(conn, ref)
    if issue.status != "draft":
        hint = " (unapprove it first)" if issue.status == "approved" else ""
        raise StateError(f"issue {issue.id} is {issue.status}: only a draft can change{hint}")
    return issue


def _renumber(conn: sa.Connection, issue_id: int, article_ids: Sequence[int]) -> None:
    for position, article_id in enumerate(article_ids, start=1):
        conn.execute(
            db.issue_items.update()
            .where(db.issue_items.c.issue_id == issue_id)
            .where(db.issue_items.c.article_id == article_id)
            .values(position=position)
        )


def _touch(conn: sa.Connection, issue_id: int, now: datetime, **values: Any) -> None:
    conn.execute(
        db.issues.update()
        .where(db.issues.c.id == issue_id)
        .values(updated_at=now, revision=db.issues.c.revision + 1, **values)
    )


def expect_revision(conn: sa.Connection, ref: str | int, revision: int) -> None:
    """Go on only if the issue is still at `revision` (what the editor's page showed).
    The row is locked for the rest of the transaction, so of two saves made from the same
    revision at the same moment one goes through and the other is refused."""
    issue_id = find_issue_id(conn, ref)
    i = db.issues
    held = conn.execute(
        i.update().where(i.c.id == issue_id, i.c.revision == revision).values(revision=revision)
    ).rowcount
    if not held:
        now = conn.execute(sa.select(i.c.revision).where(i.c.id == issue_id)).scalar_one()
        raise EditConflict(
            f"issue {issue_id} was changed in another tab or by another editor since this "
            f"page was shown (it is at revision {now}, the page showed {revision}): nothing "
            "was saved; your text is still in the fields, so copy what you need and reload"
        )


def pick(
    conn: sa.Connection,
    ref: str | int,
    articles: Sequence[str | int],
    now: datetime,
    *,
    position: int | None = None,
) -> Issue:
    """Append articles (by id or url) in the order given, or put them at `position`
    (1-based). One that was in the issue before comes back with the title, summary and
    image text written for it here."""
    issue = _editable(conn, ref)
    present = {item.article.id for item in issue.items}
    order = _item_ids(issue)
    at = len(order) if position is None else min(max(position, 1), len(order) + 1) - 1
    r = db.removed_items
    for article_ref in articles:
        article = get_article(conn, article_ref)
        if article.id in present:
            raise InputError(f"article {article.id} is already in issue {issue.id}")
        present.add(article.id)
        mine = (r.c.issue_id == issue.id, r.c.article_id == article.id)
        kept = conn.execute(sa.select(r.c.title, r.c.summary, r.c.image_alt).where(*mine)).first()
        conn.execute(r.delete().where(*mine))
        conn.execute(
            db.issue_items.insert().values(
                issue_id=issue.id, article_id=article.id, position=len(order) + 1,
                title=kept.title if kept else None, summary=kept.summary if kept else None,
                image_alt=kept.image_alt if kept else None,
            )
        )  # fmt: skip
        order.insert(at, article.id)
        at += 1
    _renumber(conn, issue.id, order)
    _touch(conn, issue.id, now)
    return get_issue(conn, issue.id)


def _item_ids(issue: Issue) -> list[int]:
    return [item.article.id for item in issue.items]


def _in_issue(conn: sa.Connection, issue: Issue, article_ref: str | int) -> int:
    article = get_article(conn, article_ref)
    if article.id not in _item_ids(issue):
        raise NotFound(f"article {article.id} is not in issue {issue.id}")
    return article.id


def unpick(
    conn: sa.Connection, ref: str | int, articles: Sequence[str | int], now: datetime
) -> Issue:
    issue = _editable(conn, ref)
    gone = {_in_issue(conn, issue, article_ref) for article_ref in articles}
    r = db.removed_items
    conn.execute(r.delete().where(r.c.issue_id == issue.id, r.c.article_id.in_(gone)))
    for item in issue.items:  # kept aside with its text, for an undo or adding it back
        if item.article.id in gone:
            conn.execute(
                r.insert().values(
                    issue_id=issue.id, article_id=item.article.id, position=item.position,
                    title=item.title_override, summary=item.summary_override,
                    image_alt=item.alt_override,
                )
            )  # fmt: skip
    conn.execute(
        db.issue_items.delete()
        .where(db.issue_items.c.issue_id == issue.id)
        .where(db.issue_items.c.article_id.in_(gone))
    )
    _renumber(conn, issue.id, [a for a in _item_ids(issue) if a not in gone])
    _touch(conn, issue.id, now)
    return get_issue(conn, issue.id)


def move(
    conn: sa.Connection, ref: str | int, article: str | int, position: int, now: datetime
) -> Issue:
    """Put one item at a 1-based position; the others keep their order around it."""
    issue = _editable(conn, ref)
    article_id = _in_issue(conn, issue, article)
    if not 1 <= position <= len(issue.items):
        raise InputError(f"position: must be between 1 and {len(issue.items)}, got {position}")
    order = [a for a in _item_ids(issue) if a != article_id]
    order.insert(position - 1, article_id)
    _renumber(conn, issue.id, order)
    _touch(conn, issue.id, now)
    return get_issue(conn, issue.id)


def check_line(field: str, value: str, limit: int) -> str:
    """A one-line text field: no line breaks (they would inject mail headers), not too long."""
    value = value.strip()
    if _CONTROL.search(value):
        raise InputError(f"{field}: must be one line without control characters")
    if len(value) > limit:
        raise InputError(f"{field}: {len(value)} characters, at most {limit}")
    return value


def set_fields(
    conn: sa.Connection,
    ref: str | int,
    now: datetime,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    note: str | None = None,
    appeal: bool | None = None,
    by_section: bool | None = None,
) -> Issue:
    issue = _editable(conn, ref)
    values: dict[str, Any] = {}
    if subject is not None:
        values["subject"] = check_line("subject", subject, SUBJECT_MAX)
    if preheader is not None:
        values["preheader"] = check_line("preheader", preheader, PREHEADER_MAX)
    if note is not None:
        values["note"] = note.replace("\r\n", "\n").strip()
    if appeal is not None:
        values["appeal"] = appeal
    if by_section is not None:
        values["by_section"] = by_section
    _touch(conn, issue.id, now, **values)
    return get_issue(conn, issue.id)


def set_item(
    conn: sa.Connection,
    ref: str | int,
    article: str | int,
    now: datetime,
    *,
    title: str | None = None,
    summary: str | None = None,
    alt: str | None = None,
) -> Issue:
    """Override an item's title, summary or image text here; an empty string restores
    the article's."""
    issue = _editable(conn, ref)
    article_id = _in_issue(conn, issue, article)
    values: dict[str, str | None] = {}
    if title is not None:
        values["title"] = check_line("title", title, SUBJECT_MAX * 2) or None
    if summary is not None:
        values["summary"] = summary.strip() or None
    if alt is not None:
        values["image_alt"] = check_line("alt", alt, ALT_MAX) or None
    conn.execute(
        db.issue_items.update()
        .where(db.issue_items.c.issue_id == issue.id)
        .where(db.issue_items.c.article_id == article_id)
        .values(**values)
    )
    _touch(conn, issue.id, now)
    return get_issue(conn, issue.id)


def approve(
    conn: sa.Connection, ref: str | int, now: datetime, *, clip_forced: bool = False
) -> Issue:
    """Freeze the issue for sending; `clip_forced`: its editor accepts Gmail's clipping."""
    issue = _editable(conn, ref)
    if not issue.items:
        raise StateError(f"issue {issue.id} is empty: pick articles before approving it")
    if not issue.subject:
        raise StateError(f"issue {issue.id} has no subject: set one before approving it")
    _touch(conn, issue.id, now, status="approved", approved_at=now, clip_forced=clip_forced)
    return get_issue(conn, issue.id)


def _back_to_draft(conn: sa.Connection, ref: str | int, now: datetime, was: str) -> Issue:
    issue = get_issue(conn, ref)
    if issue.status != was:
        raise StateError(f"issue {issue.id} is {issue.status}, not {was}")
    _touch(conn, issue.id, now, status="draft", approved_at=None, clip_forced=False)
    return get_issue(conn, issue.id)


def unapprove(conn: sa.Connection, ref: str | int, now: datetime) -> Issue:
    return _back_to_draft(conn, ref, now, "approved")


def set_in_archive(conn: sa.Connection, ref: str | int, shown: bool, now: datetime) -> Issue:
    """Show the issue in the public archive once sent, or keep it out (a correction, a
    legal matter); any state, a sent issue's too: it changes no reader's mail."""
    issue = get_issue(conn, ref)
    _touch(conn, issue.id, now, in_archive=shown)
    return get_issue(conn, issue.id)


def archived(
    conn: sa.Connection, limit: int, offset: int = 0, newsletter_id: int | None = None
) -> tuple[list[Issue], int]:
    """The sent issues the archive shows (of one newsletter, or of all), newest first,
    and how many there are in all."""
    i = db.issues
    shown = sa.and_(i.c.status == "sent", i.c.in_archive.is_(True))
    if newsletter_id is not None:
        shown = sa.and_(shown, i.c.newsletter_id == newsletter_id)
    total = conn.execute(sa.select(sa.func.count()).where(shown)).scalar_one()
    ids = conn.execute(
        sa.select(i.c.id)
        .where(shown)
        .order_by(i.c.send_date.desc(), i.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).scalars()
    return [get_issue(conn, issue_id) for issue_id in ids], int(total)


def hold(conn: sa.Connection, ref: str | int, now: datetime) -> Issue:
    """Keep the issue from going out on its send day (a story pulled, a week off): the
    scheduled send passes it by without an alert, until it is released."""
    issue = get_issue(conn, ref)
    if issue.status not in ("draft", "approved"):
        raise StateError(f"issue {issue.id} is {issue.status}: only a draft or an approved "
                         "issue can be held")  # fmt: skip
    _touch(conn, issue.id, now, status="held", approved_at=None, clip_forced=False)
    return get_issue(conn, issue.id)


def release(conn: sa.Connection, ref: str | int, now: datetime) -> Issue:
    """A held issue back to draft, to be approved again."""
    return _back_to_draft(conn, ref, now, "held")


def cancel(conn: sa.Connection, ref: str | int, now: datetime) -> Issue:
    issue = get_issue(conn, ref)
    if issue.status not in ("draft", "approved", "held"):
        raise StateError(f"issue {issue.id} is {issue.status}: it can no longer be cancelled")
    _touch(conn, issue.id, now, status="cancelled")
    return get_issue(conn, issue.id)
